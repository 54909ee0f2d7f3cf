//! The postgres preset's expansion (pure: no server): units, argv, stop behaviour,
//! secrets, dependencies, located config errors, and the URL helpers for later presets.

use prometheus_stack::config::load_str;
use prometheus_stack::plan::{
    build, BuildOptions, Condition, Exec, Plan, Probe, RestartPolicy, StackInfo, UnitKind,
};
use prometheus_stack::secrets::SecretStore;
use prometheus_stack::stack::postgres::{
    database_url, init_dependency, init_unit_name, logto_db_url, DEFAULT_PORT,
};
use prometheus_stack::stack::PresetCtx;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIN: &str = "/usr/lib/postgresql/15/bin";

fn plan(text: &str) -> Result<Plan, String> {
    let (cfg, src) = load_str("t.toml", None, text.to_string()).map_err(|e| e.to_string())?;
    build(&cfg, &src, BuildOptions { check_host: false }).map_err(|e| e.to_string())
}

fn argv(p: &Plan) -> Vec<String> {
    match &p.unit("postgres").unwrap().exec {
        Exec::Command(c) => c.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn defaults_expand_to_server_init_and_secrets() {
    let p = plan(&format!(
        "[stack]\ndata_dir = \"/srv/ps\"\nruntime_dir = \"/run/ps\"\n\
         [services.postgres]\npreset = \"postgres\"\nbin_dir = \"{BIN}\"\n"
    ))
    .unwrap();
    let u = p.unit("postgres").unwrap();
    assert_eq!(
        argv(&p),
        [
            &format!("{BIN}/postgres"),
            "-D",
            "/srv/ps/postgres",
            "-c",
            &format!("port={DEFAULT_PORT}"),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=/run/ps/postgres",
        ]
    );
    assert_eq!(u.kind, UnitKind::Longrun);
    assert_eq!(u.port, Some(25432));
    assert_eq!(u.stop_signal, nix::sys::signal::Signal::SIGINT);
    assert!(u.stop_timeout >= Duration::from_secs(60));
    assert_eq!(u.restart, RestartPolicy::Always);
    assert!(u.prepare.is_some());
    assert!(matches!(u.health.as_ref().unwrap().probe, Probe::Task(_)));
    // Tests run as root: the server runs as `postgres`.
    assert_eq!(u.user.as_deref(), Some("postgres"));

    let init = p.unit("postgres-init").unwrap();
    assert_eq!(init.kind, UnitKind::Oneshot);
    assert_eq!(init.restart, RestartPolicy::OnFailure);
    assert!(matches!(init.exec, Exec::Task(_)));
    assert_eq!(init.depends_on.len(), 1);
    assert_eq!(init.depends_on[0].unit, "postgres");
    assert_eq!(init.depends_on[0].condition, Condition::Healthy);
    let names: Vec<&str> = p.secrets.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["postgres-lobechat", "postgres-logto", "postgres-superuser"]
    );
    assert!(p.secrets.values().all(|s| s.rotate.is_some()));
    // Dependencies first.
    let order: Vec<&str> = p.units.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(order, ["postgres", "postgres-init"]);
}

#[test]
fn settings_pg_search_preload_and_overrides() {
    let p = plan(&format!(
        "[services.postgres]\npreset = \"postgres\"\nbin_dir = \"{BIN}\"\nport = 23111\n\
         extensions = [\"vector\", \"pg_search\"]\nuser = \"pgsvc\"\nstop_timeout = \"300s\"\n\
         settings = {{ shared_buffers = \"1GB\", max_connections = 200, fsync = true, \
         shared_preload_libraries = \"pg_stat_statements\" }}\n"
    ))
    .unwrap();
    let a = argv(&p);
    for s in [
        "port=23111",
        "shared_buffers=1GB",
        "max_connections=200",
        "fsync=on",
        "shared_preload_libraries=pg_stat_statements,pg_search",
    ] {
        assert!(a.contains(&s.to_string()), "{s} missing in {a:?}");
    }
    let u = p.unit("postgres").unwrap();
    assert_eq!(u.user.as_deref(), Some("pgsvc"));
    assert_eq!(u.stop_timeout, Duration::from_secs(300));

    let p = plan(&format!(
        "[services.postgres]\npreset = \"postgres\"\nbin_dir = \"{BIN}\"\nextensions = [\"pg_search\"]\n"
    ))
    .unwrap();
    assert!(argv(&p).contains(&"shared_preload_libraries=pg_search".to_string()));
    let p = plan(&format!(
        "[services.postgres]\npreset = \"postgres\"\nbin_dir = \"{BIN}\"\n"
    ))
    .unwrap();
    assert!(!argv(&p).iter().any(|a| a.contains("shared_preload")));
}

#[test]
fn bad_keys_are_reported_with_their_lines() {
    let e = plan(&format!(
        "[services.postgres]\npreset = \"postgres\"\nbin_dir = \"{BIN}\"\n\
         databases = [\"logto\", \"Bad-Name\", \"logto\"]\n\
         extensions = [\"vec tor\"]\n\
         settings = {{ port = 1, unix_socket_directories = \"/tmp\", x = [1] }}\n\
         runtime = \"podman\"\nimage = \"pgvector/pgvector:pg17\"\n"
    ))
    .unwrap_err();
    for want in [
        "t.toml:4: services.postgres.databases.1",
        "services.postgres.databases.2: database \"logto\" is listed twice",
        "t.toml:5: services.postgres.extensions.0",
        "services.postgres.settings.port: set services.postgres.port instead",
        "services.postgres.settings.unix_socket_directories",
        "services.postgres.settings.x: give a string, number or boolean",
        "services.postgres.bin_dir: the podman form runs the image's PostgreSQL",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn podman_form_runs_the_image_as_its_uid_with_host_paths() {
    let p = plan(
        "[stack]\ndata_dir = \"/srv/ps\"\nruntime_dir = \"/run/ps\"\n\
         [services.postgres]\npreset = \"postgres\"\nruntime = \"podman\"\n",
    )
    .unwrap();
    let u = p.unit("postgres").unwrap();
    let prometheus_stack::plan::Runtime::Podman(spec) = &u.runtime else {
        panic!("not a container: {:?}", u.runtime)
    };
    assert_eq!(spec.image, "docker.io/pgvector/pgvector:pg17");
    assert_eq!(
        spec.volumes,
        [
            "/srv/ps/postgres:/srv/ps/postgres",
            "/run/ps/postgres:/run/ps/postgres"
        ]
    );
    assert!(spec.init);
    assert_eq!(spec.caps, prometheus_stack::plan::Capabilities::none());
    assert_eq!(u.user.as_deref(), Some("999"));
    assert_eq!(u.group.as_deref(), Some("999"));
    assert_eq!(argv(&p)[..3], ["postgres", "-D", "/srv/ps/postgres"]);
    assert!(argv(&p).contains(&"listen_addresses=127.0.0.1".to_string()));
    assert_eq!(u.stop_signal, nix::sys::signal::Signal::SIGINT);
    assert!(matches!(u.health.as_ref().unwrap().probe, Probe::Task(_)));
    let env = serde_json::to_string(&u.env).unwrap();
    assert!(env.contains("/srv/ps/postgres"), "PGDATA: {env}");

    // Another image and its uid; a user name is refused (it need not exist on the host).
    let p = plan(
        "[services.postgres]\npreset = \"postgres\"\nruntime = \"podman\"\n\
         image = \"localhost/pg:16\"\nuser = \"70\"\n",
    )
    .unwrap();
    assert_eq!(p.unit("postgres").unwrap().user.as_deref(), Some("70"));
    let e = plan(
        "[services.postgres]\npreset = \"postgres\"\nruntime = \"podman\"\nuser = \"postgres\"\n",
    )
    .unwrap_err();
    assert!(
        e.contains("services.postgres.user") && e.contains("as a number"),
        "{e}"
    );
}

#[test]
fn missing_bin_dir_program_is_a_host_check_error() {
    let (cfg, src) = load_str(
        "t.toml",
        None,
        "[services.postgres]\npreset = \"postgres\"\nbin_dir = \"/nonexistent/pg/bin\"\n".into(),
    )
    .unwrap();
    let e = build(&cfg, &src, BuildOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("services.postgres.command") && e.contains("/nonexistent/pg/bin/postgres"),
        "{e}"
    );
}

#[test]
fn database_urls_for_later_presets() {
    let text = "[services.db]\npreset = \"postgres\"\nport = 23222\n\
                databases = [\"lobechat\", \"logto\"]\n\
                [services.logto]\npreset = \"logto\"\n";
    let (cfg, _src) = load_str("t.toml", None, text.into()).unwrap();
    let stack = StackInfo {
        name: "t".into(),
        domain: None,
        data_dir: PathBuf::from("/tmp/x"),
        runtime_dir: PathBuf::from("/tmp/x/run"),
        air_gapped: true,
    };
    let section = &cfg.services["logto"];
    let ctx = PresetCtx {
        cfg: &cfg,
        stack: &stack,
        name: "logto",
        section,
        key: "services.logto".into(),
        base_dir: Path::new("/"),
    };
    let url = database_url(&ctx, "lobechat").unwrap();
    assert_eq!(
        url.to_string(),
        "postgres://lobechat:${secret:db-lobechat}@127.0.0.1:23222/lobechat"
    );
    assert_eq!(
        logto_db_url(&ctx, "logto").unwrap().to_string(),
        "postgres://logto:${secret:db-logto}@127.0.0.1:23222/logto"
    );
    assert!(database_url(&ctx, "other").is_none());
    assert_eq!(init_unit_name(&ctx).as_deref(), Some("db-init"));
    let dep = init_dependency(&ctx).unwrap();
    assert_eq!(
        (dep.unit.as_str(), dep.condition),
        ("db-init", Condition::Completed)
    );

    // Logto's seed creates its own tenant role: only its role gets CREATEROLE.
    let db_ctx = PresetCtx {
        cfg: &cfg,
        stack: &stack,
        name: "db",
        section: &cfg.services["db"],
        key: "services.db".into(),
        base_dir: Path::new("/"),
    };
    let (pg, issues) = prometheus_stack::stack::postgres::resolve(&db_ctx);
    assert_eq!(pg.createrole, vec!["logto".to_string()]);
    assert_eq!(pg.server.data_dir, PathBuf::from("/tmp/x/db"));
    assert!(
        issues.iter().all(|i| !i.key.contains("databases")),
        "{issues:?}"
    );

    // Percent-encoding of a password from systemd credentials (anything goes there).
    let tmp = tempfile::tempdir().unwrap();
    let creds = tmp.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("db-lobechat"), "p@ss:/w?rd#%").unwrap();
    let store = SecretStore::with_credentials(tmp.path(), Some(creds));
    assert_eq!(
        url.resolve(&store).unwrap(),
        "postgres://lobechat:p%40ss%3A%2Fw%3Frd%23%25@127.0.0.1:23222/lobechat"
    );
}

#[test]
fn no_postgres_preset_means_no_url() {
    let (cfg, _) = load_str("t.toml", None, "[services.a]\ncommand = [\"x\"]\n".into()).unwrap();
    let stack = StackInfo {
        name: "t".into(),
        domain: None,
        data_dir: PathBuf::from("/tmp/x"),
        runtime_dir: PathBuf::from("/tmp/x/run"),
        air_gapped: false,
    };
    let ctx = PresetCtx {
        cfg: &cfg,
        stack: &stack,
        name: "a",
        section: &cfg.services["a"],
        key: "services.a".into(),
        base_dir: Path::new("/"),
    };
    assert!(database_url(&ctx, "lobechat").is_none());
    assert!(init_unit_name(&ctx).is_none());
}
