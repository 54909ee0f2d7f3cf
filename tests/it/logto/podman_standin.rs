//! The podman side of the logto and lobechat presets, under the real daemon and podman:
//! `logto-seed` runs the Logto image with `cli db seed -- --swe` (its ENTRYPOINT is
//! `npm run`), `logto` and `lobechat` run their images' own start, LobeChat's image
//! migrates by itself (no lobechat-migrate unit). The images are built offline from
//! stand-ins shaped like the real ones (tests/it/support/logto/image.rs).

use crate::support::logto::daemon;
use crate::support::logto::{
    app_tables, image, lobechat_db_env, logto_db_env, stack_db_passwords, stack_tables, AppPorts,
    Apps, Postgres,
};
use serde_json::json;
use std::time::Duration;

#[test]
fn run_with_podman_images_brings_logto_and_lobechat_standins_up() {
    let pg = Postgres::start(27141);
    pg.create_stack_dbs();
    // The image has no psql: the tables the seed would create are loaded here.
    pg.load_logto_schema("logto", "logto");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let logto_image = image::logto_image(dir.path());
    let lobe_image = image::lobehub_image(
        dir.path(),
        &json!({
            "edition": "v2",
            "equal": {
                "APP_URL": "https://lobe.example.test:27447",
                "HOSTNAME": "localhost",
                "PORT": "27610",
            }
        }),
    );
    let config = dir.path().join("stack.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}",
            stack_tables(dir.path(), 27447, "name = \"pstest-logto\"\n"),
            app_tables(
                &Apps::Podman {
                    logto: &logto_image,
                    lobechat: &lobe_image,
                },
                &AppPorts {
                    logto: 27601,
                    admin: 27602,
                    lobechat: 27610,
                },
                &logto_db_env(27141),
                &lobechat_db_env(27141),
            ),
        ),
    )
    .unwrap();
    let store = stack_db_passwords(&data);

    let log = dir.path().join("daemon.log");
    let d = daemon::start(&config, &log);
    let names = d.wait_all_up_sorted(Duration::from_secs(120));
    assert_eq!(
        names,
        [
            "lobechat healthy",
            "logto healthy",
            "logto-provision completed",
            "logto-seed completed",
        ]
    );
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("tables exist (loaded by the test), skipping (--swe)"),
        "the seed did not run through the image's npm run: {logs}"
    );
    assert!(
        logs.contains("lobechat migrate standin: migrations applied"),
        "{logs}"
    );
    // Security issue point 12: Logto's container is not root (node, group 0).
    assert!(logs.contains("logto standin: uid 1000 gid 0"), "{logs}");
    assert_eq!(
        pg.psql(
            "logto",
            "SELECT secret FROM applications WHERE id = 'prometheus-lobechat'"
        )
        .unwrap(),
        store.read("lobechat-oidc-client-secret").unwrap()
    );
}
