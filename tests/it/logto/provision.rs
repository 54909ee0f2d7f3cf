//! `logto-provision` against a real PostgreSQL holding tables shaped like Logto's:
//! creates LobeChat's client, changes nothing on a second run, follows a domain change,
//! never duplicates, writes rotated secrets, and turns off the pwned-password check.

use crate::support::logto::Postgres;
use prometheus_stack::config::load_str;
use prometheus_stack::plan::{build, BuildOptions, Exec, Plan, TaskContext};
use prometheus_stack::secrets::SecretStore;
use prometheus_stack::stack::logto::provision::{self, ClientOutcome, ClientSpec};
use std::path::Path;
use std::sync::{Arc, Mutex};

const LOGTO_PW: &str = "logtoPw4Tests";

fn plan(data: &Path, pg_port: u16, domain: &str, air_gapped: bool) -> Plan {
    plan_with(data, pg_port, domain, air_gapped, "")
}

fn plan_with(data: &Path, pg_port: u16, domain: &str, air_gapped: bool, logto_extra: &str) -> Plan {
    let text = format!(
        r#"
[stack]
domain = "{domain}"
data_dir = "{data}"
air_gapped = {air_gapped}

[proxy]
https = "127.0.0.1:27443"
tls = "internal"

[services.logto]
preset = "logto"
release_dir = "/nonexistent/logto"
env = {{ DB_URL = "postgres://logto:${{secret:postgres-logto}}@127.0.0.1:{pg_port}/logto" }}
{logto_extra}

[services.lobechat]
preset = "lobechat"
release_dir = "/nonexistent/lobechat"
env = {{ DATABASE_URL = "postgres://lobechat:x@127.0.0.1:{pg_port}/lobechat" }}
"#,
        data = data.display()
    );
    let (cfg, src) = load_str("stack.toml", None, text).unwrap();
    build(&cfg, &src, BuildOptions { check_host: false }).unwrap()
}

/// Runs the plan's logto-provision task as the supervisor would; returns its log lines.
async fn run_provision(plan: Plan, store: &SecretStore) -> Result<Vec<String>, String> {
    let plan = Arc::new(plan);
    let unit = plan.unit("logto-provision").expect("provision unit");
    let Exec::Task(task) = &unit.exec else {
        panic!("logto-provision is not a task")
    };
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let ctx = TaskContext {
        unit: unit.name.clone(),
        plan: plan.clone(),
        secrets: store.clone(),
        log: Arc::new(move |l| sink.lock().unwrap().push(l)),
    };
    task.run(ctx).await.map_err(|e| e.to_string())?;
    let out = lines.lock().unwrap().clone();
    Ok(out)
}

/// One provisioning run with LobeChat's client `spec` (secret "s3cret").
async fn provision_client(
    db: &mut tokio_postgres::Client,
    spec: &ClientSpec,
    air_gapped: bool,
) -> Result<provision::Report, provision::ProvisionError> {
    provision::provision(
        db,
        Some((spec, "s3cret")),
        None,
        air_gapped,
        "users.invalid",
        "logto-seed",
    )
    .await
}

fn app_row(pg: &Postgres) -> String {
    pg.psql(
        "logto",
        "SELECT tenant_id, type, secret, oidc_client_metadata::text, custom_client_metadata::text, xmin \
         FROM applications WHERE id = 'prometheus-lobechat'",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioning_creates_then_changes_nothing_then_follows_the_domain() {
    let pg = Postgres::start(27101);
    pg.create_db("logto", LOGTO_PW);
    pg.load_logto_schema("logto", "logto");
    let data = tempfile::tempdir().unwrap();
    let store = SecretStore::with_credentials(data.path(), None);
    store.write("postgres-logto", LOGTO_PW, None).unwrap();

    // First run: created, secret generated into our store and written into Logto.
    let log = run_provision(plan(data.path(), pg.port, "example.test", true), &store)
        .await
        .unwrap();
    assert!(
        log.iter().any(|l| l.contains("OIDC client created")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("pwned-password check turned off in 2")),
        "{log:?}"
    );
    let secret = store.read("lobechat-oidc-client-secret").unwrap();
    assert!(secret.len() >= 40);
    let row = app_row(&pg);
    let cols: Vec<&str> = row.split('|').collect();
    assert_eq!(cols[0], "default");
    assert_eq!(cols[1], "Traditional");
    assert_eq!(cols[2], secret);
    let oidc: serde_json::Value = serde_json::from_str(cols[3]).unwrap();
    assert_eq!(
        oidc["redirectUris"],
        serde_json::json!(["https://lobe.example.test:27443/api/auth/callback/logto"])
    );
    assert_eq!(
        oidc["postLogoutRedirectUris"],
        serde_json::json!(["https://lobe.example.test:27443"])
    );
    let custom: serde_json::Value = serde_json::from_str(cols[4]).unwrap();
    assert_eq!(
        custom["corsAllowedOrigins"],
        serde_json::json!(["https://lobe.example.test:27443"])
    );
    assert_eq!(
        pg.psql(
            "logto",
            "SELECT name, value FROM application_secrets WHERE application_id = 'prometheus-lobechat'"
        )
        .unwrap(),
        format!("Default secret|{secret}")
    );
    assert_eq!(
        pg.psql(
            "logto",
            "SELECT tenant_id, password_policy->'rejects'->>'pwned', password_policy->'length'->>'min' \
             FROM sign_in_experiences ORDER BY tenant_id"
        )
        .unwrap(),
        "admin|false|12\ndefault|false|12",
        "air-gapped: no breach check, so at least 12 characters"
    );

    // Second run: nothing written (xmin of every touched row unchanged).
    let snapshot = |pg: &Postgres| {
        (
            app_row(pg),
            pg.psql("logto", "SELECT xmin, value FROM application_secrets")
                .unwrap(),
            pg.psql(
                "logto",
                "SELECT xmin FROM sign_in_experiences ORDER BY tenant_id",
            )
            .unwrap(),
        )
    };
    let before = snapshot(&pg);
    let log = run_provision(plan(data.path(), pg.port, "example.test", true), &store)
        .await
        .unwrap();
    assert_eq!(
        log,
        ["OIDC client unchanged; Logto admin account \"admin\" unchanged"]
    );
    assert_eq!(snapshot(&pg), before);

    // An operator's own setting in the console survives; a domain change moves the URIs.
    pg.psql(
        "logto",
        "UPDATE applications SET oidc_client_metadata = oidc_client_metadata || \
         '{\"backchannelLogoutUri\": \"https://keep.me/logout\"}' WHERE id = 'prometheus-lobechat'",
    )
    .unwrap();
    let log = run_provision(plan(data.path(), pg.port, "other.test", true), &store)
        .await
        .unwrap();
    assert_eq!(
        log,
        ["OIDC client updated (redirectUris, postLogoutRedirectUris, corsAllowedOrigins); Logto admin account \"admin\" unchanged"]
    );
    let row = app_row(&pg);
    let cols: Vec<&str> = row.split('|').collect();
    let oidc: serde_json::Value = serde_json::from_str(cols[3]).unwrap();
    assert_eq!(
        oidc["redirectUris"],
        serde_json::json!(["https://lobe.other.test:27443/api/auth/callback/logto"])
    );
    assert_eq!(oidc["backchannelLogoutUri"], "https://keep.me/logout");
    pg.assert_one_traditional_app();
    assert_eq!(
        pg.psql("logto", "SELECT count(*) FROM applications")
            .unwrap(),
        "2"
    );

    // Rotation: a new value in the store is written into both places.
    store
        .write(
            "lobechat-oidc-client-secret",
            "rotated-secret-value-0123456789",
            None,
        )
        .unwrap();
    let log = run_provision(plan(data.path(), pg.port, "other.test", true), &store)
        .await
        .unwrap();
    assert_eq!(
        log,
        ["OIDC client updated (secret); Logto admin account \"admin\" unchanged"]
    );
    assert_eq!(
        pg.psql(
            "logto",
            "SELECT a.secret = s.value AND s.value = 'rotated-secret-value-0123456789' \
             FROM applications a JOIN application_secrets s ON s.application_id = a.id"
        )
        .unwrap(),
        "t"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioning_is_one_transaction_and_names_a_missing_column() {
    let pg = Postgres::start(27102);
    // A password that must be percent-encoded in the URL.
    let pw = "p@ss/w:rd%?";
    pg.create_db("logto", &pw.replace('\'', "''"));
    pg.load_logto_schema("logto", "logto");
    let url = pg.url("logto", pw, "logto");
    let mut db = provision::connect(&url, "logto").await.unwrap();
    let spec = ClientSpec::lobechat("https://lobe.example.test/");
    assert_eq!(spec.app_url, "https://lobe.example.test");

    // Break the schema after the application insert would have happened: the sign-in
    // experience update fails, and the whole run must leave no application behind.
    pg.psql(
        "logto",
        "ALTER TABLE sign_in_experiences RENAME COLUMN password_policy TO pp",
    )
    .unwrap();
    let err = provision_client(&mut db, &spec, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sign_in_experiences.password_policy"), "{err}");
    assert!(err.contains("logto-seed"), "{err}");
    assert_eq!(
        pg.psql("logto", "SELECT count(*) FROM applications")
            .unwrap(),
        "1",
        "the failed run left a half-made application"
    );

    // Not air-gapped: the policy is not touched at all, so the renamed column is fine.
    let r = provision_client(&mut db, &spec, false).await.unwrap();
    assert_eq!(r.client, Some(ClientOutcome::Created));
    assert_eq!(r.pwned_check_disabled, 0);
    let r = provision_client(&mut db, &spec, false).await.unwrap();
    assert_eq!(r.client, Some(ClientOutcome::Unchanged));

    // A different application type (changed by hand) is put back to Traditional.
    pg.psql("logto", "DELETE FROM application_secrets").unwrap();
    pg.psql(
        "logto",
        "UPDATE applications SET type = 'SPA' WHERE id = 'prometheus-lobechat'",
    )
    .unwrap();
    let r = provision_client(&mut db, &spec, false).await.unwrap();
    assert_eq!(r.client, Some(ClientOutcome::Updated(vec!["type"])));
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioning_without_seeded_tables_says_which_unit_creates_them() {
    let pg = Postgres::start(27103);
    pg.create_db("logto", LOGTO_PW);
    let data = tempfile::tempdir().unwrap();
    let store = SecretStore::with_credentials(data.path(), None);
    store.write("postgres-logto", LOGTO_PW, None).unwrap();
    let err = run_provision(plan(data.path(), pg.port, "example.test", false), &store)
        .await
        .unwrap_err();
    assert!(err.contains("no table applications"), "{err}");
    assert!(err.contains("\"logto-seed\""), "{err}");
}

/// Found by the real Logto (issue 12): Logto connects as the tenant roles its seed makes,
/// not as the database owner, and LobeChat v2 refuses a user without an email claim.
#[tokio::test(flavor = "multi_thread")]
async fn tenant_roles_may_connect_and_every_user_gets_an_email() {
    let pg = Postgres::start(27104);
    pg.create_db("logto", LOGTO_PW);
    pg.load_logto_schema("logto", "logto");
    // As postgres-init leaves the database and Logto's seed (_before_all.sql) the roles.
    pg.psql(
        "postgres",
        "REVOKE CONNECT, TEMPORARY ON DATABASE logto FROM PUBLIC; \
         CREATE ROLE logto_tenant_logto NOINHERIT; \
         CREATE ROLE logto_tenant_logto_default LOGIN PASSWORD 'tenantPw1' IN ROLE logto_tenant_logto;",
    )
    .unwrap();
    pg.psql(
        "logto",
        "GRANT SELECT, INSERT, UPDATE ON users, tenants TO logto_tenant_logto",
    )
    .unwrap();
    let tenant_url = pg.url("logto_tenant_logto_default", "tenantPw1", "logto");
    let refused = tokio_postgres::connect(&tenant_url, tokio_postgres::NoTls)
        .await
        .err()
        .expect("the tenant role must not connect before provisioning");
    let why = refused
        .as_db_error()
        .and_then(|e| e.detail().map(str::to_string));
    assert!(
        why.as_deref().unwrap_or("").contains("CONNECT"),
        "{refused:?}"
    );
    pg.psql(
        "logto",
        "INSERT INTO users (tenant_id, id, username) VALUES ('default', 'u1', 'alice'), ('admin', 'a1', 'root')",
    )
    .unwrap();

    let data = tempfile::tempdir().unwrap();
    let store = SecretStore::with_credentials(data.path(), None);
    store.write("postgres-logto", LOGTO_PW, None).unwrap();
    let log = run_provision(plan(data.path(), pg.port, "example.test", true), &store)
        .await
        .unwrap()
        .join("\n");
    assert!(
        log.contains("CONNECT granted to Logto's tenant roles"),
        "{log}"
    );
    assert!(
        log.contains("1 existing user(s) given a fallback email"),
        "{log}"
    );
    let (_client, _conn) = tokio_postgres::connect(&tenant_url, tokio_postgres::NoTls)
        .await
        .expect("the tenant role connects after provisioning");

    // As Logto inserts: as the tenant's role, tenant_id left to Logto's own trigger.
    pg.psql(
        "logto",
        "SET ROLE logto_tenant_logto_default; \
         INSERT INTO users (id, username) VALUES ('u2', 'bob'); \
         INSERT INTO users (id, username, primary_email) VALUES ('u3', 'carol', 'carol@real.test')",
    )
    .unwrap();
    let emails = |pg: &Postgres| {
        pg.psql(
            "logto",
            "SELECT string_agg(username || '=' || coalesce(primary_email, '-'), ' ' ORDER BY id) FROM users \
             WHERE username <> 'admin'",
        )
        .unwrap()
    };
    assert_eq!(
        emails(&pg),
        "root=- alice=alice@users.invalid bob=bob@users.invalid carol=carol@real.test"
    );

    // A second run changes nothing; a configured domain applies to users made after it.
    let log = run_provision(plan(data.path(), pg.port, "example.test", true), &store)
        .await
        .unwrap()
        .join("\n");
    assert!(
        !log.contains("CONNECT granted") && !log.contains("fallback"),
        "{log}"
    );
    let log = run_provision(
        plan_with(
            data.path(),
            pg.port,
            "example.test",
            true,
            "user_email_domain = \"staff.example.test\"",
        ),
        &store,
    )
    .await
    .unwrap()
    .join("\n");
    assert!(log.contains("user-email fallback installed"), "{log}");
    pg.psql(
        "logto",
        "INSERT INTO users (tenant_id, id, username) VALUES ('default', 'u4', 'dave')",
    )
    .unwrap();
    assert!(
        emails(&pg).ends_with("dave=dave@staff.example.test"),
        "{}",
        emails(&pg)
    );
}
