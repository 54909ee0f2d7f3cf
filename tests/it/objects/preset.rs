//! The rustfs/minio presets as the plan shows them: command, env, health, stop, secrets,
//! the objects-init unit, the same-origin bucket route and LobeChat's S3 env.
//! MinIO cannot be installed here: its command and env are checked as built ("standin").

use crate::support::objects::{objects_config, plan, plan_error, run_unit_task, task_ctx};
use prometheus_stack::config::load_str;
use prometheus_stack::plan::{
    Condition, EnvValue, Exec, Probe, RouteAction, Runtime, SecretKind, UnitKind,
};
use prometheus_stack::stack::objects::{self, init_unit_name};
use prometheus_stack::stack::PresetCtx;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

fn env_text(env: &BTreeMap<String, EnvValue>, k: &str) -> String {
    env.get(k)
        .unwrap_or_else(|| panic!("{k} missing from {env:?}"))
        .to_string()
}

#[test]
fn rustfs_native_preset_command_env_health_stop_secrets() {
    let p = plan(&objects_config(
        "/srv/ps",
        "preset = \"rustfs\"\nbinary = \"/opt/rustfs/bin/rustfs\"\nuser = \"nobody\"",
    ));
    let u = p.unit("objects").expect("objects unit");
    let Exec::Command(argv) = &u.exec else {
        panic!("not a command")
    };
    assert_eq!(
        argv,
        &[
            "/opt/rustfs/bin/rustfs",
            "--address",
            "127.0.0.1:29000",
            "/srv/ps/objects"
        ]
    );
    assert!(matches!(u.runtime, Runtime::Process));
    assert_eq!(u.port, Some(29000));
    assert_eq!(u.ports.get("console"), Some(&29001));
    assert_eq!(u.user.as_deref(), Some("nobody"));
    assert_eq!(
        env_text(&u.env, "RUSTFS_ACCESS_KEY"),
        "${secret:objects-root-user}"
    );
    assert_eq!(
        env_text(&u.env, "RUSTFS_SECRET_KEY"),
        "${secret:objects-root-password}"
    );
    assert_eq!(
        env_text(&u.env, "RUSTFS_CONSOLE_ADDRESS"),
        "127.0.0.1:29001"
    );
    assert_eq!(
        env_text(&u.env, "RUSTFS_CORS_ALLOWED_ORIGINS"),
        "https://lobe.example.com:26443"
    );
    let h = u.health.as_ref().expect("health");
    match &h.probe {
        Probe::Http { url, expect } => {
            assert_eq!(url, "http://127.0.0.1:29000/health");
            assert_eq!(*expect, Some(200));
        }
        other => panic!("probe {other:?}"),
    }
    assert_eq!(u.stop_signal, nix::sys::signal::Signal::SIGTERM);
    assert!(u.prepare.is_some(), "data dir is prepared before start");

    for (name, min_len) in [("objects-root-user", 12), ("objects-root-password", 30)] {
        let s = p
            .secrets
            .get(name)
            .unwrap_or_else(|| panic!("secret {name}"));
        match s.kind {
            SecretKind::Random { bytes } => assert!(bytes >= min_len),
            ref k => panic!("{name}: {k:?}"),
        }
        assert!(s.consumers.contains(&"objects".to_string()));
        assert!(s.consumers.contains(&"objects-init".to_string()));
    }
    // No secret value appears in the plan's JSON.
    let json = serde_json::to_string(&p).unwrap();
    assert!(json.contains("${secret:objects-root-password}"));
}

#[test]
fn objects_init_is_a_oneshot_after_the_store_is_healthy() {
    let p = plan(&objects_config("/srv/ps", "preset = \"rustfs\""));
    let name = init_unit_name("objects");
    assert_eq!(name, "objects-init");
    let i = p.unit(&name).expect("init unit");
    assert_eq!(i.kind, UnitKind::Oneshot);
    assert!(matches!(i.exec, Exec::Task(_)));
    assert_eq!(i.depends_on.len(), 1);
    assert_eq!(i.depends_on[0].unit, "objects");
    assert_eq!(i.depends_on[0].condition, Condition::Healthy);
    assert_eq!(i.restart, prometheus_stack::plan::RestartPolicy::OnFailure);
    assert!(i.backoff.initial >= std::time::Duration::from_secs(1));
    // Start order: the store first.
    let pos = |n: &str| p.units.iter().position(|u| u.name == n).unwrap();
    assert!(pos("objects") < pos("objects-init"));
    // The root-key choice is visible to check/status.
    assert!(
        p.warnings.iter().any(|w| w.contains("root key")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn bucket_route_is_same_origin_with_its_own_body_limit() {
    let p = plan(&objects_config(
        "/srv/ps",
        "preset = \"rustfs\"\nport = 26100\nbucket = \"uploads\"",
    ));
    let proxy = p.proxy.as_ref().expect("proxy");
    let site = proxy
        .sites
        .iter()
        .find(|s| s.host == "lobe.example.com")
        .expect("app site added for the bucket");
    let r = site
        .routes
        .iter()
        .find(|r| r.path == "/uploads")
        .expect("bucket route");
    assert_eq!(
        r.action,
        RouteAction::Unit {
            unit: "objects".into(),
            port: 26100
        }
    );
    assert_eq!(r.max_body, Some(5 << 30));
    assert!(r.max_body.unwrap() > proxy.max_body);
}

#[test]
fn rustfs_podman_preset_keeps_data_under_data_dir() {
    let p = plan(&objects_config(
        "/srv/ps",
        "preset = \"rustfs\"\nruntime = \"podman\"",
    ));
    let u = p.unit("objects").unwrap();
    let Runtime::Podman(spec) = &u.runtime else {
        panic!("not podman: {:?}", u.runtime)
    };
    assert_eq!(spec.image, "docker.io/rustfs/rustfs:1.0.0");
    assert_eq!(spec.volumes, vec!["/srv/ps/objects:/data".to_string()]);
    assert!(spec.init);
    // Host networking (the podman runtime's choice): loopback, like the native unit.
    assert_eq!(env_text(&u.env, "RUSTFS_ADDRESS"), "127.0.0.1:29000");
    assert_eq!(
        env_text(&u.env, "RUSTFS_CONSOLE_ADDRESS"),
        "127.0.0.1:29001"
    );
    assert_eq!(
        env_text(&u.env, "RUSTFS_ACCESS_KEY"),
        "${secret:objects-root-user}"
    );
    assert!(
        matches!(&u.exec, Exec::Command(a) if a.is_empty()),
        "the image's own command"
    );
    assert_eq!(env_text(&u.env, "RUSTFS_VOLUMES"), "/data");
    match &u.health.as_ref().unwrap().probe {
        Probe::Http { url, .. } => assert_eq!(url, "http://127.0.0.1:29000/health"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn minio_preset_command_and_env_standin_checks() {
    let p = plan(&objects_config(
        "/srv/ps",
        "preset = \"minio\"\nbinary = \"/usr/local/bin/minio\"\nport = 26200",
    ));
    let u = p.unit("objects").unwrap();
    let Exec::Command(argv) = &u.exec else {
        panic!()
    };
    assert_eq!(
        argv,
        &[
            "/usr/local/bin/minio",
            "server",
            "/srv/ps/objects",
            "--address",
            "127.0.0.1:26200",
            "--console-address",
            "127.0.0.1:26201"
        ]
    );
    assert_eq!(
        env_text(&u.env, "MINIO_ROOT_USER"),
        "${secret:objects-root-user}"
    );
    assert_eq!(
        env_text(&u.env, "MINIO_ROOT_PASSWORD"),
        "${secret:objects-root-password}"
    );
    assert_eq!(env_text(&u.env, "MINIO_UPDATE"), "off");
    assert_eq!(
        env_text(&u.env, "MINIO_API_CORS_ALLOW_ORIGIN"),
        "https://lobe.example.com:26443"
    );
    match &u.health.as_ref().unwrap().probe {
        Probe::Http { url, expect } => {
            assert_eq!(url, "http://127.0.0.1:26200/minio/health/live");
            assert_eq!(*expect, Some(200));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(u.stop_signal, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn minio_podman_preset_command_standin_checks() {
    let p = plan(&objects_config(
        "/srv/ps",
        "preset = \"minio\"\nruntime = \"podman\"",
    ));
    let u = p.unit("objects").unwrap();
    let Runtime::Podman(spec) = &u.runtime else {
        panic!()
    };
    assert!(spec.image.starts_with("quay.io/minio/minio:RELEASE."));
    assert_eq!(spec.volumes, vec!["/srv/ps/objects:/data".to_string()]);
    let Exec::Command(argv) = &u.exec else {
        panic!()
    };
    assert_eq!(
        argv,
        &[
            "minio",
            "server",
            "/data",
            "--address",
            "127.0.0.1:29000",
            "--console-address",
            "127.0.0.1:29001"
        ]
    );
}

#[test]
fn bad_bucket_name_is_reported_at_its_key() {
    let e = plan_error(&objects_config(
        "/srv/ps",
        "preset = \"rustfs\"\nbucket = \"Lobe_Files\"",
    ));
    assert!(e.contains("services.objects.bucket"), "{e}");
    assert!(e.contains("not a valid S3 bucket name"), "{e}");
    let e = plan_error(&objects_config(
        "/srv/ps",
        "preset = \"rustfs\"\nbucket = \"api\"",
    ));
    assert!(e.contains("services.objects.bucket"), "{e}");
    assert!(e.contains("shadow LobeChat"), "{e}");
}

#[test]
fn no_public_host_means_a_warning_and_no_route() {
    let p = plan(
        r#"
[stack]
data_dir = "/srv/ps"
[services.objects]
preset = "rustfs"
"#,
    );
    assert!(p.proxy.is_none());
    assert!(
        p.warnings.iter().any(|w| w.contains("no public app host")),
        "{:?}",
        p.warnings
    );
}

fn lobechat_ctx_env(toml: &str) -> Option<BTreeMap<String, EnvValue>> {
    let (cfg, _) = load_str("t.toml", None, toml.to_string()).unwrap();
    let stack = prometheus_stack::plan::StackInfo {
        name: "t".into(),
        domain: cfg.stack.domain.clone(),
        data_dir: "/srv/ps".into(),
        runtime_dir: "/srv/ps/run".into(),
        air_gapped: false,
    };
    let section = cfg.services.get("lobechat").cloned().unwrap_or_default();
    let ctx = PresetCtx {
        cfg: &cfg,
        stack: &stack,
        name: "lobechat",
        section: &section,
        key: "services.lobechat".into(),
        base_dir: std::path::Path::new("/"),
    };
    if let Some(env) = objects::lobechat_s3_env(&ctx) {
        // Whenever there is S3 env, LobeChat must wait for the bucket to be provisioned.
        let (store, _, _) = objects::find_store(&cfg).unwrap();
        let dep = objects::lobechat_dependency(&ctx).expect("dependency");
        assert_eq!(dep.unit, init_unit_name(store));
        assert_eq!(dep.condition, Condition::Completed);
        return Some(env);
    }
    assert!(objects::lobechat_dependency(&ctx).is_none());
    None
}

#[test]
fn lobechat_s3_env_uses_the_app_origin_and_path_style() {
    let env = lobechat_ctx_env(&objects_config(
        "/srv/ps",
        "preset = \"minio\"\nbucket = \"uploads\"",
    ))
    .expect("env with a store");
    assert_eq!(
        env_text(&env, "S3_ENDPOINT"),
        "https://lobe.example.com:26443"
    );
    assert_eq!(env_text(&env, "S3_BUCKET"), "uploads");
    assert_eq!(env_text(&env, "S3_ENABLE_PATH_STYLE"), "1");
    assert_eq!(env_text(&env, "S3_SET_ACL"), "0");
    assert_eq!(
        env_text(&env, "S3_ACCESS_KEY_ID"),
        "${secret:objects-root-user}"
    );
    assert_eq!(
        env_text(&env, "S3_SECRET_ACCESS_KEY"),
        "${secret:objects-root-password}"
    );
    assert_eq!(
        env_text(&env, "S3_PUBLIC_DOMAIN"),
        "https://lobe.example.com:26443"
    );
    assert_eq!(env_text(&env, "S3_REGION"), "us-east-1");
    assert_eq!(env.len(), 8);

    // The lobechat preset's own host wins; port 443 is not written.
    let env = lobechat_ctx_env(
        r#"
[stack]
domain = "example.com"
[proxy]
https = "0.0.0.0:443"
[services.lobechat]
preset = "lobechat"
host = "Chat.Example.org"
[services.store]
preset = "rustfs"
"#,
    )
    .unwrap();
    assert_eq!(env_text(&env, "S3_ENDPOINT"), "https://chat.example.org");
    assert_eq!(env_text(&env, "S3_BUCKET"), "lobe");

    // No store configured: nothing to give.
    let none = lobechat_ctx_env("[stack]\ndata_dir = \"/srv/ps\"\n");
    assert!(none.is_none());
}

#[test]
fn prepare_creates_the_data_dir_owned_by_the_unit_user() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let p = plan(&objects_config(
        data.to_str().unwrap(),
        "preset = \"rustfs\"\nuser = \"nobody\"",
    ));
    let u = p.unit("objects").unwrap();
    let prepare = u.prepare.clone().unwrap();
    let (ctx, _) = task_ctx(&p, "objects", &data);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(prepare.run(ctx)).expect("prepare");
    let md = std::fs::metadata(data.join("objects")).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(md.uid(), nobody.uid.as_raw());
    assert_eq!(md.mode() & 0o777, 0o750);
    // The init unit is a Task too; without secrets it fails with a message naming the file.
    let (ctx, _) = task_ctx(&p, "objects-init", &data);
    let err = rt.block_on(run_unit_task(ctx)).unwrap_err();
    assert!(err.contains("objects-root-user"), "{err}");
}

/// Security issue point 12: a podman store without `user` runs as the image's non-root
/// id (MinIO's default is root), so its data dir is given to that id.
#[test]
fn podman_prepare_gives_the_data_dir_to_the_images_non_root_user() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for preset in ["minio", "rustfs"] {
        let p = plan(&objects_config(
            data.to_str().unwrap(),
            &format!("preset = \"{preset}\"\nruntime = \"podman\""),
        ));
        let prepare = p.unit("objects").unwrap().prepare.clone().unwrap();
        let (ctx, _) = task_ctx(&p, "objects", &data);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(prepare.run(ctx)).expect("prepare");
        let md = std::fs::metadata(data.join("objects")).unwrap();
        assert_eq!((md.uid(), md.gid()), (10001, 10001), "{preset}");
        std::fs::remove_dir(data.join("objects")).unwrap();
    }
}

#[test]
fn podman_image_override_keeps_the_data_volume() {
    let p = plan(&objects_config(
        "/srv/ps",
        "preset = \"rustfs\"\nruntime = \"podman\"\nimage = \"localhost/rustfs:test\"\nvolumes = [\"extra:/extra\"]",
    ));
    let Runtime::Podman(spec) = &p.unit("objects").unwrap().runtime else {
        panic!()
    };
    assert_eq!(spec.image, "localhost/rustfs:test");
    assert!(
        spec.volumes.contains(&"/srv/ps/objects:/data".to_string()),
        "{:?}",
        spec.volumes
    );
}
