//! Extensions: a real PostgreSQL 18 + pgvector provisioned by postgres-init, then the
//! vector extension dropped from one database.

use crate::support::pg::*;
use prometheus_stack::doctor::{check_extensions, Finding};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_extension_is_named_with_its_database() {
    let dir = reachable_tempdir();
    let port = free_port();
    let plan = pg_plan(
        dir.path(),
        &pgvector_bin(),
        port,
        "extensions = [\"vector\"]",
    );
    let c = Ctx::new(&plan, "postgres", store(&plan));
    let mut srv = prepare_and_start(
        &plan,
        &c,
        &dir.path().join("pg.log"),
        Duration::from_secs(30),
    )
    .await;
    init(&plan, &Ctx::new(&plan, "postgres-init", store(&plan)))
        .await
        .expect("postgres-init");
    assert_eq!(check_extensions(&plan, &store(&plan)).await, vec![]);

    let pw = store(&plan).read("postgres-superuser").unwrap();
    let su = prometheus_stack::stack::postgres::open(port, "postgres", &pw, "lobechat")
        .await
        .unwrap();
    su.batch_execute("DROP EXTENSION vector").await.unwrap();
    let found = check_extensions(&plan, &store(&plan)).await;
    srv.stop();
    assert_eq!(
        found,
        vec![Finding::error(
            "extensions",
            "database lobechat on postgres lacks extension vector",
            "`prometheus-stack restart postgres-init` creates it (its package must be installed, e.g. postgresql-17-pgvector for vector); see `prometheus-stack logs postgres-init`"
        )]
    );
}
