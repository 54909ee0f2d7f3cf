//! The exported manifests, read back, mean what the single-server plan means: the same
//! dependency order, env (with Service names where the server has loopback), probes,
//! body limits and secrets.

use super::tree;
use prometheus_stack::export::kubernetes::{IngressMode, SecretsMode, SECRET_ENV_PREFIX};
use prometheus_stack::plan::{Plan, Probe, RouteAction, UnitKind};
use serde_json::Value;
use std::collections::BTreeMap;

type Tree = BTreeMap<String, Value>;

fn exported(secrets: SecretsMode) -> (Plan, Tree, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tree::config(dir.path());
    let plan = tree::plan(&cfg);
    if secrets == SecretsMode::Inline {
        let store = dir.path().join("data/secrets");
        std::fs::create_dir_all(&store).unwrap();
        for name in plan.secrets.keys() {
            std::fs::write(store.join(name), format!("value-of-{name}")).unwrap();
        }
    }
    let opts = tree::options(&cfg, secrets, IngressMode::Ingress);
    let t = tree::export_and_read(&plan, &opts, &dir.path().join("out"));
    (plan, t, dir)
}

fn workload<'a>(t: &'a Tree, unit: &str) -> &'a Value {
    t.values()
        .find(|o| {
            (o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
                && o["metadata"]["name"] == unit
        })
        .unwrap_or_else(|| panic!("no workload for unit {unit}"))
}

/// Service name → its ports, from the Services read back.
fn services(t: &Tree) -> BTreeMap<String, Vec<u64>> {
    tree::of_kind(t, "Service")
        .iter()
        .map(|s| {
            let ports = s["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["port"].as_u64().unwrap())
                .collect();
            (s["metadata"]["name"].as_str().unwrap().to_string(), ports)
        })
        .collect()
}

/// A container's env as the single server writes it: secrets as `${secret:NAME}`, each
/// Service address back on loopback, bind-all back to loopback.
fn as_single_server(c: &Value, svc: &BTreeMap<String, Vec<u64>>) -> BTreeMap<String, String> {
    let env = c["env"].as_array().unwrap();
    let key_of = |e: &Value| {
        e["valueFrom"]["secretKeyRef"]["key"]
            .as_str()
            .map(|k| format!("${{secret:{k}}}"))
    };
    let embedded: BTreeMap<String, String> = env
        .iter()
        .filter(|e| e["name"].as_str().unwrap().starts_with(SECRET_ENV_PREFIX))
        .map(|e| {
            (
                format!("$({})", e["name"].as_str().unwrap()),
                key_of(e).unwrap(),
            )
        })
        .collect();
    let mut out = BTreeMap::new();
    for e in env
        .iter()
        .filter(|e| !e["name"].as_str().unwrap().starts_with(SECRET_ENV_PREFIX))
    {
        let mut v = match key_of(e) {
            Some(s) => s,
            None => e["value"].as_str().unwrap().to_string(),
        };
        for (var, secret) in &embedded {
            v = v.replace(var, secret);
        }
        for (name, ports) in svc {
            for p in ports {
                v = v.replace(&format!("{name}:{p}"), &format!("127.0.0.1:{p}"));
            }
        }
        out.insert(
            e["name"].as_str().unwrap().to_string(),
            v.replace("$$(", "$("),
        );
    }
    out
}

#[test]
fn env_equals_the_plans_with_services_for_loopback() {
    let (plan, t, _d) = exported(SecretsMode::External);
    let svc = services(&t);
    for u in plan
        .units
        .iter()
        .filter(|u| u.kind == UnitKind::Longrun && u.name != "postgres")
    {
        let c = &workload(&t, &u.name)["spec"]["template"]["spec"]["containers"][0];
        let got = as_single_server(c, &svc);
        // Logto's loopback-only preload is the single server's; a pod must answer its
        // Service (the NetworkPolicies close the admin port there).
        let want: BTreeMap<String, String> = u
            .env
            .iter()
            .filter(|(k, _)| !(u.name == "logto" && *k == "NODE_OPTIONS"))
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{}: env keys",
            u.name
        );
        for (k, w) in &want {
            let g = &got[k];
            // Listen settings bind all addresses in a pod (the Service reaches them).
            let opened =
                g.replace("0.0.0.0", "127.0.0.1") == *w || (k == "HOSTNAME" && g == "0.0.0.0");
            assert!(
                g == w || opened,
                "{}: {k} = {g:?}, the plan has {w:?}",
                u.name
            );
        }
    }
    let lobe = &workload(&t, "lobechat")["spec"]["template"]["spec"]["containers"][0];
    let raw: BTreeMap<&str, &Value> = lobe["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    assert!(raw["DATABASE_URL"]["value"]
        .as_str()
        .unwrap()
        .contains("@postgres:25432/lobechat"));
    assert!(
        svc["postgres"].contains(&25432),
        "DATABASE_URL names a Service that exists"
    );
    let env = &plan.unit("lobechat").unwrap().env;
    for k in [
        "AUTH_LOGTO_ISSUER",
        "APP_URL",
        "S3_ENDPOINT",
        "S3_BUCKET",
        "S3_PUBLIC_DOMAIN",
    ] {
        assert_eq!(raw[k]["value"].as_str().unwrap(), env[k].to_string(), "{k}");
    }
}

/// The unit an init container stands for.
fn step_unit(c: &Value) -> String {
    let name = c["name"].as_str().unwrap();
    name.strip_prefix("run-")
        .or_else(|| name.strip_prefix("wait-"))
        .unwrap()
        .to_string()
}

#[test]
fn init_containers_follow_the_plans_dependency_graph() {
    let (plan, t, _d) = exported(SecretsMode::External);
    let order: Vec<&str> = plan.units.iter().map(|u| u.name.as_str()).collect();
    for u in plan.units.iter().filter(|u| u.kind == UnitKind::Longrun) {
        let steps: Vec<String> = workload(&t, &u.name)["spec"]["template"]["spec"]
            ["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(step_unit)
            .collect();
        for d in &u.depends_on {
            assert!(
                steps.contains(&d.unit),
                "{}: dependency {} has no init container",
                u.name,
                d.unit
            );
        }
        for (i, s) in steps.iter().enumerate() {
            let unit = plan.unit(s).unwrap();
            for d in &unit.depends_on {
                let at = steps.iter().position(|x| *x == d.unit);
                assert!(
                    matches!(at, Some(j) if j < i),
                    "{}: {s} runs before its dependency {}",
                    u.name,
                    d.unit
                );
            }
            let kind = if unit.kind == UnitKind::Oneshot {
                "run-"
            } else {
                "wait-"
            };
            let c = &workload(&t, &u.name)["spec"]["template"]["spec"]["initContainers"][i];
            assert!(
                c["name"].as_str().unwrap().starts_with(kind),
                "{}: {s} is a {kind} step",
                u.name
            );
        }
        let pos: Vec<usize> = steps
            .iter()
            .map(|s| order.iter().position(|o| o == s).unwrap())
            .collect();
        assert!(
            pos.windows(2).all(|w| w[0] < w[1]),
            "{}: steps in the plan's start order",
            u.name
        );
    }
    let lobe = workload(&t, "lobechat")["spec"]["template"]["spec"]["initContainers"].clone();
    let provision = lobe
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "run-logto-provision")
        .unwrap();
    let cmd: Vec<&str> = provision["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        &cmd[3..],
        ["task", "run", "logto-provision", "--forward-to-services"]
    );
}

#[test]
fn probes_equal_the_plans_health_checks() {
    let (plan, t, _d) = exported(SecretsMode::External);
    for u in plan.units.iter().filter(|u| u.kind == UnitKind::Longrun) {
        let h = u.health.as_ref().unwrap();
        let c = &workload(&t, &u.name)["spec"]["template"]["spec"]["containers"][0];
        for p in ["readinessProbe", "livenessProbe"] {
            assert_eq!(
                c[p]["periodSeconds"].as_u64().unwrap(),
                h.interval.as_secs().max(1),
                "{} {p}",
                u.name
            );
            assert_eq!(
                c[p]["timeoutSeconds"].as_u64().unwrap(),
                h.timeout.as_secs().max(1),
                "{} {p}",
                u.name
            );
            assert_eq!(
                c[p]["failureThreshold"].as_u64().unwrap(),
                u64::from(h.retries),
                "{} {p}",
                u.name
            );
        }
        let s = &c["startupProbe"];
        let covered =
            s["periodSeconds"].as_u64().unwrap() * s["failureThreshold"].as_u64().unwrap();
        assert!(
            covered >= h.start_period.as_secs(),
            "{}: startup covers the start period",
            u.name
        );
        if let Probe::Http { url, .. } = &h.probe {
            let get = &c["readinessProbe"]["httpGet"];
            let port = get["port"].as_u64().unwrap();
            assert_eq!(
                format!("http://127.0.0.1:{port}{}", get["path"].as_str().unwrap()),
                *url
            );
        }
    }
}

#[test]
fn routes_keep_hosts_paths_and_body_limits() {
    let (plan, t, _d) = exported(SecretsMode::External);
    let proxy = plan.proxy.as_ref().unwrap();
    let ingresses = tree::of_kind(&t, "Ingress");
    let mut checked = 0;
    for site in &proxy.sites {
        for r in &site.routes {
            let RouteAction::Unit { unit, port } = &r.action else {
                continue;
            };
            let found = ingresses.iter().find_map(|i| {
                let rule = &i["spec"]["rules"][0];
                (rule["host"] == site.host.as_str()).then_some(())?;
                let p = rule["http"]["paths"]
                    .as_array()?
                    .iter()
                    .find(|p| p["path"] == r.path.as_str())?;
                Some((i, p))
            });
            let (ing, p) =
                found.unwrap_or_else(|| panic!("{}{}: no Ingress path", site.host, r.path));
            assert_eq!(p["backend"]["service"]["name"], unit.as_str());
            assert_eq!(p["backend"]["service"]["port"]["number"], *port);
            let limit = r.max_body.unwrap_or(proxy.max_body).to_string();
            assert_eq!(
                ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"],
                limit.as_str()
            );
            assert_eq!(ing["spec"]["tls"][0]["hosts"][0], site.host.as_str());
            checked += 1;
        }
    }
    assert!(checked >= 3, "lobechat, the bucket and Logto are routed");
}

#[test]
fn secrets_are_references_or_the_stores_values() {
    let (plan, t, _d) = exported(SecretsMode::External);
    assert!(
        tree::of_kind(&t, "Secret").is_empty(),
        "--secrets=external writes no values"
    );
    let text = serde_json::to_string(&t).unwrap();
    for name in plan.secrets.keys() {
        assert!(!text.contains(&format!("value-of-{name}")));
    }
    let (plan, t, _d) = exported(SecretsMode::Inline);
    let s = tree::of_kind(&t, "Secret");
    assert_eq!(s.len(), 1);
    let data = s[0]["stringData"].as_object().unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        plan.secrets.keys().collect::<Vec<_>>()
    );
    for (k, v) in data {
        assert_eq!(v.as_str().unwrap(), format!("value-of-{k}"));
    }
    // Every reference names a key of that Secret.
    let refs = serde_json::to_string(&t).unwrap();
    for part in refs.split("\"secretKeyRef\":").skip(1) {
        let key = part
            .split("\"key\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(data.contains_key(key), "reference to unknown secret {key}");
    }
}

#[test]
fn admin_port_and_database_are_closed_to_all_but_clients() {
    let (_plan, t, _d) = exported(SecretsMode::External);
    let policy = |name: &str| {
        tree::of_kind(&t, "NetworkPolicy")
            .into_iter()
            .find(|p| p["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    let logto = policy("logto-ingress");
    let ports: Vec<u64> = logto["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ports"][0]["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [3001], "the admin port 3002 admits nobody");
    let pg = policy("postgres-ingress");
    let from: Vec<&str> = pg["spec"]["ingress"][0]["from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(from, ["lobechat", "logto"]);
    assert!(tree::of_kind(&t, "NetworkPolicy")
        .iter()
        .any(|p| p["spec"]["podSelector"] == serde_json::json!({})));
}

#[test]
fn external_postgres_replaces_the_statefulset_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tree::config(dir.path());
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "preset = \"postgres\"\n",
        "preset = \"postgres\"\nexternal_url = \"postgres://db.example.internal:6543\"\n",
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let plan = tree::plan(&cfg);
    let opts = tree::options(&cfg, SecretsMode::External, IngressMode::Ingress);
    let t = tree::export_and_read(&plan, &opts, &dir.path().join("out"));
    assert!(
        t.values().all(|o| o["metadata"]["name"] != "postgres"),
        "no postgres workload, Service or policy"
    );
    let lobe = &workload(&t, "lobechat")["spec"]["template"]["spec"]["containers"][0];
    let url = lobe["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "DATABASE_URL")
        .unwrap();
    assert_eq!(
        url["value"].as_str().unwrap(),
        "postgres://lobechat:$(PS_SECRET_POSTGRES_LOBECHAT)@db.example.internal:6543/lobechat"
    );
    let steps: Vec<String> = workload(&t, "logto")["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(step_unit)
        .collect();
    assert_eq!(
        steps[..2],
        ["postgres", "postgres-init"],
        "roles are still provisioned, on the managed server"
    );
}

#[test]
fn gpu_units_request_a_gpu_and_gateway_routes_keep_limits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tree::config(dir.path());
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        "\n[services.ollama]\nimage = \"docker.io/ollama/ollama:0.6.0\"\nport = 11434\n\
         health = { http = \"http://127.0.0.1:11434/\" }\ngpu = { min_free = \"8GiB\" }\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let plan = tree::plan(&cfg);
    let opts = tree::options(&cfg, SecretsMode::External, IngressMode::Gateway);
    let t = tree::export_and_read(&plan, &opts, &dir.path().join("out"));
    let w = workload(&t, "ollama");
    let c = &w["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], 1);
    let min = (8u64 << 30).to_string();
    assert_eq!(
        w["spec"]["template"]["metadata"]["annotations"]["prometheus-stack.io/gpu-min-free"],
        min.as_str()
    );
    let proxy = plan.proxy.as_ref().unwrap();
    let routes = tree::of_kind(&t, "HTTPRoute");
    for site in &proxy.sites {
        for r in &site.routes {
            let RouteAction::Unit { unit, port } = &r.action else {
                continue;
            };
            let hit = routes.iter().find(|h| {
                h["spec"]["hostnames"][0] == site.host.as_str()
                    && h["spec"]["rules"].as_array().unwrap().iter().any(|rule| {
                        rule["matches"][0]["path"]["value"] == r.path.as_str()
                            && rule["backendRefs"][0]["name"] == unit.as_str()
                            && rule["backendRefs"][0]["port"] == *port
                    })
            });
            let hit = hit.unwrap_or_else(|| panic!("{}{}: no HTTPRoute rule", site.host, r.path));
            let limit = r.max_body.unwrap_or(proxy.max_body).to_string();
            assert_eq!(
                hit["metadata"]["annotations"]["prometheus-stack.io/max-body"],
                limit.as_str()
            );
        }
    }
}
