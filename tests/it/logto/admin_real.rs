//! Logto's admin-console account against the REAL Logto schema (security issue 14, point
//! 2a): `logto db seed` from the real Logto 1.42 build creates the tables, provisioning
//! makes the account, and the rows are what a first console sign-up writes
//! (`ProvisionLibrary.createUser` + `provisionForFirstAdminUser`); Logto's own hash-wasm
//! verifies the stored hash. Skipped, saying so, when the real build is absent.

use crate::support::deps;
use crate::support::logto::Postgres;
use prometheus_stack::config::load_str;
use prometheus_stack::plan::{build, BuildOptions, Exec, Plan, TaskContext};
use prometheus_stack::secrets::SecretStore;
use prometheus_stack::stack::logto::admin;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

const PW: &str = "logtoRealSeedPw";

/// The real Logto tree and its node, or None (the test says it skipped).
fn real_logto() -> Option<(PathBuf, PathBuf)> {
    let real = deps().join("real");
    let (tree, node) = (real.join("logto"), real.join("node22/bin/node"));
    if tree.join("packages/cli/bin/logto.js").exists() && node.exists() {
        Some((tree, node))
    } else {
        eprintln!(
            "SKIPPED: the real Logto build is absent ({}; tests/real/build.sh makes it)",
            tree.display()
        );
        None
    }
}

fn plan(data: &Path, port: u16) -> Plan {
    let text = format!(
        r#"
[stack]
domain = "example.test"
data_dir = "{data}"
air_gapped = true

[proxy]
https = "127.0.0.1:27443"
tls = "internal"

[services.logto]
preset = "logto"
release_dir = "/nonexistent/logto"
env = {{ DB_URL = "postgres://logto:${{secret:postgres-logto}}@127.0.0.1:{port}/logto" }}
"#,
        data = data.display()
    );
    let (cfg, src) = load_str("stack.toml", None, text).unwrap();
    build(&cfg, &src, BuildOptions { check_host: false }).unwrap()
}

async fn run_provision(plan: &Arc<Plan>, store: &SecretStore) -> Vec<String> {
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
    task.run(ctx).await.unwrap();
    let out = lines.lock().unwrap().clone();
    out
}

/// `logto db seed --swe` from the real build, as the seed unit runs it.
fn seed(tree: &Path, node: &Path, port: u16) {
    let out = Command::new(node)
        .args(["packages/cli/bin/logto.js", "db", "seed", "--swe"])
        .current_dir(tree)
        .env(
            "DB_URL",
            format!("postgres://logto:{PW}@127.0.0.1:{port}/logto"),
        )
        .env("NODE_ENV", "production")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "logto db seed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Logto's own verifier (hash-wasm's argon2Verify, what core's password check calls).
fn logto_verifies(tree: &Path, node: &Path, hash: &str, password: &str) -> bool {
    let out = Command::new(node)
        .arg("-e")
        .arg("import('hash-wasm').then(h => h.argon2Verify({password: process.env.P, hash: process.env.H})).then(ok => console.log(ok))")
        .current_dir(tree.join("packages/core"))
        .env("P", password)
        .env("H", hash)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        text == "true" || text == "false",
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text == "true"
}

/// The admin user's rows: user, role names, organization role, admin sign-in mode.
fn rows(pg: &Postgres) -> [String; 4] {
    let q = |sql: &str| pg.psql("logto", sql).unwrap();
    [
        q("SELECT id, username, password_encryption_method, logto_config::text, \
           password_updated_at IS NOT NULL, is_password_expired, is_suspended, xmin \
           FROM users WHERE tenant_id = 'admin'"),
        q("SELECT string_agg(r.name, ',' ORDER BY r.name) FROM users_roles ur \
           JOIN roles r ON r.id = ur.role_id JOIN users u ON u.id = ur.user_id \
           WHERE u.username = 'admin' AND ur.tenant_id = 'admin'"),
        q("SELECT o.organization_id || ':' || r.organization_role_id FROM organization_user_relations o \
           JOIN organization_role_user_relations r USING (tenant_id, organization_id, user_id) \
           JOIN users u ON u.id = o.user_id WHERE u.username = 'admin' AND o.tenant_id = 'admin'"),
        q("SELECT sign_in_mode FROM sign_in_experiences WHERE tenant_id = 'admin'"),
    ]
}

fn stored_hash(pg: &Postgres) -> String {
    pg.psql(
        "logto",
        "SELECT password_encrypted FROM users WHERE tenant_id = 'admin' AND username = 'admin'",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_account_matches_a_console_sign_up_on_the_real_schema() {
    let Some((tree, node)) = real_logto() else {
        return;
    };
    let pg = Postgres::start(27105);
    pg.create_db("logto", PW);
    // The seed creates Logto's tenant roles (the postgres preset grants this for it).
    pg.psql("postgres", "ALTER ROLE logto CREATEROLE").unwrap();
    seed(&tree, &node, pg.port);
    // Before: the seed leaves the console open to its first visitor.
    assert_eq!(rows(&pg)[0], "");
    assert_eq!(rows(&pg)[3], "Register");
    // What a first sign-up gets beyond the two named roles: the tenant's default roles.
    let defaults = pg
        .psql(
            "logto",
            "SELECT count(*) FROM roles WHERE tenant_id = 'admin' AND is_default AND name NOT IN ('user', 'default:admin')",
        )
        .unwrap();
    assert_eq!(
        defaults, "0",
        "the real seed has default roles: extend the expectation"
    );

    let data = tempfile::tempdir().unwrap();
    let store = SecretStore::with_credentials(data.path(), None);
    store.write("postgres-logto", PW, None).unwrap();
    let plan = Arc::new(plan(data.path(), pg.port));
    let log = run_provision(&plan, &store).await;
    assert!(
        log.iter()
            .any(|l| l.contains("Logto admin account \"admin\" created; console sign-up closed")),
        "{log:?}"
    );
    let password = store.read(admin::ADMIN_PASSWORD_SECRET).unwrap();
    assert!(password.len() >= 24);
    let after = rows(&pg);
    let user: Vec<&str> = after[0].split('|').collect();
    assert_eq!(user[0].len(), 12, "Logto's short id: {user:?}");
    assert_eq!(
        &user[1..7],
        [
            "admin",
            "Argon2i",
            r#"{"mfa": {"enabled": false}}"#,
            "t",
            "f",
            "f"
        ]
    );
    assert_eq!(after[1], "default:admin,user");
    assert_eq!(after[2], "t-default:admin");
    assert_eq!(after[3], "SignIn");
    let hash = stored_hash(&pg);
    assert!(
        logto_verifies(&tree, &node, &hash, &password),
        "Logto rejects {hash}"
    );
    assert!(!logto_verifies(&tree, &node, &hash, "not-the-password"));

    // Idempotent: a second run writes nothing.
    let log = run_provision(&plan, &store).await;
    assert!(
        log.iter()
            .any(|l| l.contains("Logto admin account \"admin\" unchanged")),
        "{log:?}"
    );
    assert_eq!(rows(&pg), after);

    // Rotation: the staged value becomes the hash; roles stay.
    let next = prometheus_stack::secrets::rotate::pending_name(admin::ADMIN_PASSWORD_SECRET);
    store.write(&next, "rotated-Password-123", None).unwrap();
    let log = run_provision(&plan, &store).await;
    std::fs::remove_file(store.path(&next)).unwrap();
    assert!(
        log.iter().any(|l| l.contains("set from the store")),
        "{log:?}"
    );
    let hash = stored_hash(&pg);
    assert!(logto_verifies(&tree, &node, &hash, "rotated-Password-123"));
    assert!(!logto_verifies(&tree, &node, &hash, &password));
    assert_eq!(rows(&pg)[1..], after[1..]);

    // A role or membership removed in the console is restored, the store's password back.
    pg.psql("logto", "DELETE FROM organization_user_relations WHERE tenant_id = 'admin'; DELETE FROM users_roles WHERE tenant_id = 'admin'").unwrap();
    let log = run_provision(&plan, &store).await;
    assert!(
        log.iter().any(|l| l.contains("(roles restored)")),
        "{log:?}"
    );
    assert_eq!(rows(&pg)[1..], after[1..]);
    assert!(logto_verifies(&tree, &node, &stored_hash(&pg), &password));
    assert_eq!(
        pg.psql(
            "logto",
            "SELECT count(*) FROM users WHERE tenant_id = 'admin'"
        )
        .unwrap(),
        "1"
    );
}
