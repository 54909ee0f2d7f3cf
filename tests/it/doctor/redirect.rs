//! Logto's stored redirect URI: the row logto-provision wrote into a real PostgreSQL
//! holding Logto-shaped tables, then changed behind its back.

use crate::support::logto::Postgres;
use prometheus_stack::config::load_str;
use prometheus_stack::doctor::{check_redirect, Finding};
use prometheus_stack::plan::{build, BuildOptions, Exec, Plan, TaskContext};
use prometheus_stack::secrets::SecretStore;
use std::sync::Arc;

fn plan(data: &std::path::Path, pg_port: u16) -> Plan {
    let text = format!(
        r#"
[stack]
domain = "doctor.test"
data_dir = "{data}"
air_gapped = true
[proxy]
https = "127.0.0.1:26999"
tls = "internal"
[services.logto]
preset = "logto"
release_dir = "/nonexistent/logto"
env = {{ DB_URL = "postgres://logto:${{secret:postgres-logto}}@127.0.0.1:{pg_port}/logto" }}
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_redirect_uri_in_logtos_database_is_a_problem() {
    let pg = Postgres::start(crate::support::objects::free_port());
    pg.create_db("logto", "logtoPwDoctor");
    pg.load_logto_schema("logto", "logto");
    let data = tempfile::tempdir().unwrap();
    let store = SecretStore::with_credentials(data.path(), None);
    store
        .write("postgres-logto", "logtoPwDoctor", None)
        .unwrap();
    let p = Arc::new(plan(data.path(), pg.port));

    // Nothing provisioned yet: no application row.
    let rerun = "`prometheus-stack restart logto-provision` writes it again (see `prometheus-stack logs logto-provision`)";
    assert_eq!(
        check_redirect(&p, &store).await,
        vec![Finding::error(
            "redirect",
            "Logto has no application \"prometheus-lobechat\" for LobeChat",
            rerun
        )]
    );

    let unit = p.unit("logto-provision").unwrap();
    let Exec::Task(task) = &unit.exec else {
        panic!("logto-provision is not a task")
    };
    let ctx = TaskContext {
        unit: unit.name.clone(),
        plan: p.clone(),
        secrets: store.clone(),
        log: Arc::new(|_| {}),
    };
    task.run(ctx).await.expect("logto-provision");
    assert_eq!(check_redirect(&p, &store).await, vec![]);

    pg.psql(
        "logto",
        "UPDATE applications SET oidc_client_metadata = jsonb_set(oidc_client_metadata, '{redirectUris}', \
         '[\"https://old.doctor.test/api/auth/callback/logto\"]') WHERE id = 'prometheus-lobechat'",
    )
    .unwrap();
    assert_eq!(
        check_redirect(&p, &store).await,
        vec![Finding::error(
            "redirect",
            "Logto's application \"prometheus-lobechat\" stores redirect URIs [\"https://old.doctor.test/api/auth/callback/logto\"], but LobeChat's callback is https://lobe.doctor.test:26999/api/auth/callback/logto",
            rerun
        )]
    );
}
