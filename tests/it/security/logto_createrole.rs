//! Point 5: Logto's role holds CREATEROLE only while Logto's seed has to run; after
//! provisioning it cannot grant itself `pg_execute_server_program` (a shell as postgres
//! on PostgreSQL <= 15) nor any other role. Real PostgreSQL 15.

use crate::support::pg::*;
use prometheus_stack::config::load_str;
use prometheus_stack::plan::{build, BuildOptions, Exec, Plan};
use std::path::Path;
use std::time::Duration;

fn stack_plan(dir: &Path, port: u16) -> Plan {
    let text = format!(
        r#"
[stack]
domain = "example.test"
data_dir = "{d}/data"
runtime_dir = "{d}/run"

[proxy]
https = "127.0.0.1:27443"
tls = "internal"

[services.postgres]
preset = "postgres"
runtime = "process"
bin_dir = "{b}"
port = {port}
extensions = []

[services.logto]
preset = "logto"
release_dir = "/nonexistent/logto"
"#,
        d = dir.display(),
        b = pg15_bin().display()
    );
    let (cfg, src) = load_str("stack.toml", None, text).unwrap();
    build(&cfg, &src, BuildOptions { check_host: false }).unwrap()
}

async fn createrole(su: &tokio_postgres::Client) -> bool {
    query_value(
        su,
        "SELECT rolcreaterole FROM pg_roles WHERE rolname = 'logto'",
    )
    .await
}

/// What `logto db seed` does that needs CREATEROLE, then its tables (the fixture).
async fn seed_as_logto(port: u16, pw: &str) {
    let logto = connect(port, "logto", pw, "logto").await.unwrap();
    let schema = std::fs::read_to_string(crate::support::logto::schema_sql()).unwrap();
    logto
        .batch_execute(&format!(
            "CREATE ROLE logto_tenant_logto NOINHERIT;\n{schema}"
        ))
        .await
        .expect("the seed creates its tenant role and tables");
}

async fn provision(plan: &Plan) -> Vec<String> {
    let c = Ctx::new(plan, "logto-provision", store(plan));
    let Exec::Task(t) = &plan.unit("logto-provision").unwrap().exec else {
        panic!("logto-provision is not a task")
    };
    t.run(c.ctx.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    c.take()
}

#[test]
fn logto_role_loses_createrole_once_seeded() {
    crate::support::rt().block_on(async {
        let dir = reachable_tempdir();
        let port = free_port();
        let plan = stack_plan(dir.path(), port);
        let c = Ctx::new(&plan, "postgres", store(&plan));
        let _srv = prepare_and_start(
            &plan,
            &c,
            &dir.path().join("pg.log"),
            Duration::from_secs(30),
        )
        .await;
        let ci = Ctx::new(&plan, "postgres-init", store(&plan));
        init(&plan, &ci).await.expect("init");
        let su = superuser(&plan, port, "postgres").await;
        assert!(createrole(&su).await, "the first seed needs CREATEROLE");

        let pw = store(&plan).read("postgres-logto").unwrap();
        seed_as_logto(port, &pw).await;
        let lines = provision(&plan).await.join("\n");
        assert!(
            lines.contains("revoked CREATEROLE from role logto"),
            "{lines}"
        );
        assert!(!createrole(&su).await, "rolcreaterole after provisioning");

        let logto = connect(port, "logto", &pw, "logto").await.unwrap();
        for sql in [
            "GRANT pg_execute_server_program TO logto",
            "GRANT lobechat TO logto",
            "CREATE ROLE sneaky",
        ] {
            let e = logto.batch_execute(sql).await.err();
            let e = e.unwrap_or_else(|| panic!("`{sql}` as logto must fail"));
            assert!(err_text(&e).contains("42501"), "{sql}: {}", err_text(&e));
        }

        // A restart: the seed is a no-op (--swe), so init grants nothing again.
        init(&plan, &ci).await.expect("second init");
        assert_eq!(
            ci.take().last().map(String::as_str),
            Some("roles, databases and extensions are up to date")
        );
        assert!(!createrole(&su).await);

        // Logto's tables gone: the seed must run again, and gets CREATEROLE for it.
        let lt = superuser(&plan, port, "logto").await;
        lt.batch_execute("DROP TABLE logto_configs").await.unwrap();
        init(&plan, &ci).await.expect("init before a new seed");
        assert!(ci
            .take()
            .iter()
            .any(|l| l == "granted CREATEROLE to role logto for Logto's seed"),);
        assert!(createrole(&su).await);
    });
}
