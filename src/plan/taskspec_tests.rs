//! Tasks are data: what a task uses is in the unit's fingerprint, so reload's "changed?"
//! (fingerprints compared, then `dependents_closure`) re-runs exactly the units concerned.

use super::*;
use std::collections::BTreeSet;

/// Knobs of the stack config that tasks read.
struct Knobs {
    shared_buffers: &'static str,
    extensions: &'static str,
    bucket: &'static str,
    email_domain: &'static str,
}

const BASE: Knobs = Knobs {
    shared_buffers: "128MB",
    extensions: r#"["vector"]"#,
    bucket: "lobe",
    email_domain: "users.example.test",
};

fn plan(k: &Knobs) -> Plan {
    let text = format!(
        r#"
[stack]
domain = "example.test"
data_dir = "/var/lib/ps-taskspec"

[proxy]
tls = "internal"

[services.postgres]
preset = "postgres"
bin_dir = "/usr/lib/postgresql/16/bin"
extensions = {ext}
settings = {{ shared_buffers = "{sb}" }}

[services.objects]
preset = "rustfs"
bucket = "{bucket}"

[services.logto]
preset = "logto"
release_dir = "/opt/logto"
user_email_domain = "{email}"

[services.lobechat]
preset = "lobechat"
release_dir = "/opt/lobechat"
"#,
        ext = k.extensions,
        sb = k.shared_buffers,
        bucket = k.bucket,
        email = k.email_domain,
    );
    let (cfg, src) = crate::config::load_str("stack.toml", None, text).expect("parses");
    build(&cfg, &src, BuildOptions { check_host: false }).unwrap_or_else(|e| panic!("{e}"))
}

/// Units whose fingerprint differs (or that are new), as reload compares them.
fn changed(old: &Plan, new: &Plan) -> BTreeSet<String> {
    new.units
        .iter()
        .filter(|u| old.unit(&u.name).map(Plan::fingerprint) != Some(Plan::fingerprint(u)))
        .map(|u| u.name.clone())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Asserts that going from BASE to `k` changes exactly `units`; returns what reload re-runs.
fn reruns(k: &Knobs, units: &[&str]) -> BTreeSet<String> {
    let (old, new) = (plan(&BASE), plan(k));
    assert_eq!(changed(&old, &new), set(units));
    dependents_closure(&new.units, &set(units))
}

#[test]
fn same_config_same_fingerprints() {
    let (a, b) = (plan(&BASE), plan(&BASE));
    assert!(changed(&a, &b).is_empty());
    for u in &a.units {
        assert_eq!(
            Plan::fingerprint(u),
            Plan::fingerprint(b.unit(&u.name).unwrap())
        );
    }
}

#[test]
fn a_postgres_setting_restarts_the_server_and_reprovisions() {
    let k = Knobs {
        shared_buffers: "1GB",
        ..BASE
    };
    let rerun = reruns(&k, &["postgres", "postgres-init"]);
    assert!(
        rerun.contains("logto-seed") && rerun.contains("lobechat"),
        "{rerun:?}"
    );
    assert!(!rerun.contains("objects"), "{rerun:?}");
}

#[test]
fn a_new_extension_reprovisions_without_restarting_the_server() {
    let k = Knobs {
        extensions: r#"["vector", "pg_trgm"]"#,
        ..BASE
    };
    let rerun = reruns(&k, &["postgres-init"]);
    assert!(!rerun.contains("postgres"), "{rerun:?}");
}

#[test]
fn a_bucket_name_reruns_objects_init_not_the_store() {
    let k = Knobs {
        bucket: "uploads",
        ..BASE
    };
    // LobeChat's S3_BUCKET changes with it.
    let rerun = reruns(&k, &["objects-init", "lobechat"]);
    assert!(!rerun.contains("objects"), "{rerun:?}");
    let new = plan(&k);
    let Exec::Task(TaskSpec::ObjectsInit(spec)) = &new.unit("objects-init").unwrap().exec else {
        panic!("objects-init is not the objects-init task")
    };
    assert_eq!(spec.bucket, "uploads");
}

#[test]
fn the_email_domain_reruns_logto_provision_and_what_follows() {
    let k = Knobs {
        email_domain: "people.example.test",
        ..BASE
    };
    let rerun = reruns(&k, &["logto-provision"]);
    assert!(rerun.contains("logto"), "{rerun:?}");
    assert!(
        !rerun.contains("postgres") && !rerun.contains("logto-seed"),
        "{rerun:?}"
    );
}

#[test]
fn show_config_json_holds_every_task_in_full_with_secret_placeholders() {
    let p = plan(&BASE);
    let v = serde_json::to_value(&p).unwrap();
    let unit = |n: &str| {
        v["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == n)
            .unwrap()
            .clone()
    };
    let init = &unit("postgres-init")["exec"]["task"];
    assert_eq!(init["task"], "postgres_init");
    assert_eq!(init["databases"], serde_json::json!(["logto", "lobechat"]));
    assert_eq!(
        init["settings"],
        serde_json::json!([["shared_buffers", "128MB"]])
    );
    let pg = unit("postgres");
    assert_eq!(pg["prepare"]["task"], "postgres_init_db");
    assert_eq!(pg["health"]["probe"]["task"]["task"], "postgres_ready");
    let objects = &unit("objects-init")["exec"]["task"];
    assert_eq!(objects["bucket"], "lobe");
    assert_eq!(objects["flavor"], "rustfs");
    let logto = &unit("logto-provision")["exec"]["task"];
    assert_eq!(logto["task"], "logto_provision");
    assert_eq!(logto["user_email_domain"], "users.example.test");
    assert_eq!(
        logto["db_url"],
        "postgres://logto:${secret:postgres-logto}@127.0.0.1:25432/logto"
    );
    assert_eq!(logto["app_url"], "https://lobe.example.test");
    let rotate = &v["secrets"]["postgres-lobechat"]["rotate"];
    assert_eq!(rotate["task"], "postgres_rotate");
    assert_eq!(rotate["role"], "lobechat");
}
