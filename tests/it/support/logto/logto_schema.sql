-- Tables shaped like Logto's own (logto-io/logto packages/schemas/tables/*.sql, v1.2x–1.4x),
-- reduced to what `logto db seed` creates and provisioning touches. Research:
-- shared/research/lobechat_logto.md §3.4. Column names, types, keys and checks follow
-- the originals; unrelated columns of sign_in_experiences are left out.

create table logto_configs (
  tenant_id varchar(21) not null,
  key varchar(256) not null,
  value jsonb not null default '{}'::jsonb,
  primary key (tenant_id, key)
);

create table tenants (
  id varchar(21) not null,
  db_user varchar(128),
  db_user_password varchar(128),
  name varchar(128) not null default 'My Project',
  tag varchar(64) not null default 'development',
  created_at timestamptz not null default now(),
  is_suspended boolean not null default false,
  primary key (id)
);

create type application_type as enum
  ('Native', 'SPA', 'Traditional', 'MachineToMachine', 'Protected', 'SAML');

create table applications (
  tenant_id varchar(21) not null
    references tenants (id) on update cascade on delete cascade,
  id varchar(21) not null,
  name varchar(256) not null,
  secret varchar(64) not null,
  description text,
  type application_type not null,
  oidc_client_metadata jsonb not null,
  custom_client_metadata jsonb not null default '{}'::jsonb,
  protected_app_metadata jsonb,
  custom_data jsonb not null default '{}'::jsonb,
  is_third_party boolean not null default false,
  created_at timestamptz not null default (now()),
  primary key (id)
);

create index applications__id on applications (tenant_id, id);

create function check_application_type(
  application_id varchar(21), variadic target_type application_type[]
) returns boolean as
$$ begin
  return (select type from applications where id = application_id) = any(target_type);
end; $$ language plpgsql set search_path = public;

create table application_secrets (
  tenant_id varchar(21) not null
    references tenants (id) on update cascade on delete cascade,
  application_id varchar(21) not null
    references applications (id) on update cascade on delete cascade,
  name varchar(256) not null,
  value varchar(64) not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz,
  primary key (tenant_id, application_id, name),
  constraint application_type
    check (check_application_type(application_id, 'MachineToMachine', 'Traditional', 'Protected'))
);

create type sign_in_mode as enum ('SignIn', 'Register', 'SignInAndRegister');

create table sign_in_experiences (
  tenant_id varchar(21) not null
    references tenants (id) on update cascade on delete cascade,
  id varchar(21) not null,
  color jsonb not null,
  branding jsonb not null,
  language_info jsonb not null,
  sign_in jsonb not null,
  sign_up jsonb not null,
  sign_in_mode sign_in_mode not null default 'SignInAndRegister',
  password_policy jsonb not null default '{}'::jsonb,
  mfa jsonb not null default '{}'::jsonb,
  primary key (tenant_id, id)
);

-- Logto's _functions.sql / _after_each.sql: rows inserted as a tenant role get their
-- tenant_id from this BEFORE trigger (so other BEFORE triggers must sort after it).
create function set_tenant_id() returns trigger as
$$ begin
  if new.tenant_id is not null then
    return new;
  end if;
  select tenants.id into new.tenant_id from tenants where tenants.db_user = current_user;
  return new;
end; $$ language plpgsql;

create type users_password_encryption_method as enum
  ('Argon2i', 'Argon2id', 'Argon2d', 'SHA1', 'SHA256', 'MD5', 'Bcrypt', 'Legacy');

create table users (
  tenant_id varchar(21) not null
    references tenants (id) on update cascade on delete cascade,
  id varchar(12) not null,
  username varchar(128),
  primary_email varchar(128),
  primary_phone varchar(128),
  password_encrypted varchar(256),
  password_encryption_method users_password_encryption_method,
  name varchar(128),
  logto_config jsonb not null default '{}'::jsonb,
  is_suspended boolean not null default false,
  is_password_expired boolean not null default false,
  password_updated_at timestamptz,
  created_at timestamptz not null default (now()),
  primary key (id),
  constraint users__username unique (tenant_id, username),
  constraint users__primary_email unique (tenant_id, primary_email)
);

create trigger set_tenant_id before insert on users
  for each row execute procedure set_tenant_id();

create unique index users__id on users (tenant_id, id);

-- The admin account's tables (roles, users_roles, the tenant organization).
create type role_type as enum ('User', 'MachineToMachine');

create table roles (
  tenant_id varchar(21) not null references tenants (id) on update cascade on delete cascade,
  id varchar(21) not null,
  name varchar(128) not null,
  description varchar(128) not null,
  type role_type not null default 'User',
  is_default boolean not null default false,
  primary key (id),
  constraint roles__name unique (tenant_id, name)
);

create table users_roles (
  tenant_id varchar(21) not null references tenants (id) on update cascade on delete cascade,
  id varchar(21) not null,
  user_id varchar(21) not null references users (id) on update cascade on delete cascade,
  role_id varchar(21) not null references roles (id) on update cascade on delete cascade,
  primary key (id),
  constraint users_roles__user_id_role_id unique (tenant_id, user_id, role_id)
);

create table organizations (
  tenant_id varchar(21) not null references tenants (id) on update cascade on delete cascade,
  id varchar(21) not null,
  name varchar(128) not null,
  primary key (id)
);

create table organization_roles (
  tenant_id varchar(21) not null references tenants (id) on update cascade on delete cascade,
  id varchar(21) not null,
  name varchar(128) not null,
  type role_type not null default 'User',
  primary key (id)
);

create table organization_user_relations (
  tenant_id varchar(21) not null references tenants (id) on update cascade on delete cascade,
  organization_id varchar(21) not null references organizations (id) on update cascade on delete cascade,
  user_id varchar(21) not null references users (id) on update cascade on delete cascade,
  primary key (tenant_id, organization_id, user_id)
);

create table organization_role_user_relations (
  tenant_id varchar(21) not null references tenants (id) on update cascade on delete cascade,
  organization_id varchar(21) not null,
  organization_role_id varchar(21) not null references organization_roles (id) on update cascade on delete cascade,
  user_id varchar(21) not null,
  primary key (tenant_id, organization_id, organization_role_id, user_id),
  foreign key (tenant_id, organization_id, user_id)
    references organization_user_relations (tenant_id, organization_id, user_id)
    on update cascade on delete cascade
);

-- What the seed leaves behind: two tenants, the console's own app, one sign-in
-- experience per tenant (the admin tenant's policy written in full, like --dapc does not).
insert into tenants (id, db_user, db_user_password) values
  ('default', 'logto_tenant_logto_default', 'x'),
  ('admin', 'logto_tenant_logto_admin', 'x');

insert into applications (tenant_id, id, name, secret, type, oidc_client_metadata) values
  ('admin', 'admin-console', 'Admin Console', 'internal', 'SPA',
   '{"redirectUris": [], "postLogoutRedirectUris": []}');

insert into sign_in_experiences (tenant_id, id, color, branding, language_info, sign_in, sign_up, password_policy) values
  ('default', 'default', '{}', '{}', '{}', '{}', '{}', '{}'),
  ('admin', 'default', '{}', '{}', '{}', '{}', '{}',
   '{"length": {"min": 8, "max": 256}, "rejects": {"pwned": true, "words": []}}');

-- The admin tenant's roles and the default tenant's organization, as the seed makes them.
insert into roles (tenant_id, id, name, description) values
  ('admin', 'adminuserrole0000000', 'user', 'Default role for admin tenant.'),
  ('admin', 'defaultadminrole0000', 'default:admin', 'Legacy user role for accessing default Management API.');
insert into organizations (tenant_id, id, name) values ('admin', 't-default', 'Tenant default');
insert into organization_roles (tenant_id, id, name) values
  ('admin', 'admin', 'admin'), ('admin', 'collaborator', 'collaborator');

update sign_in_experiences set sign_in_mode = 'Register' where tenant_id = 'admin';

insert into logto_configs (tenant_id, key, value) values ('default', 'seededBy', '"prometheus-stack test fixture"');
