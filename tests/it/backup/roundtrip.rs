//! Backup and restore with real parts: PostgreSQL 18 + pgvector (the postgres preset's
//! own prepare/init), s3s-fs (verifies SigV4) as the store, a client writing rows and
//! objects while the backup runs; then restore into a fresh data dir and compare.

use crate::support::objects::{require, wait_port};
use crate::support::pg::{self, Ctx};
use prometheus_stack::backup::{self, Kind, RestoreOptions, Sources};
use prometheus_stack::stack::objects::s3::{S3Client, S3Credentials};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROWS: i64 = 10_000;
const OBJECTS: usize = 1_000;
const UP: Duration = Duration::from_secs(60);

/// s3s-fs on `port` serving `dir`, killed when dropped.
struct Store(Child);

impl Store {
    fn start(port: u16, dir: &Path, key: &str, secret: &str) -> Store {
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new(require("s3s/bin/s3s-fs"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", key, "--secret-key", secret])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn s3s-fs");
        wait_port(port, Duration::from_secs(30));
        Store(child)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(dir: &Path, pg_port: u16, s3_port: u16) -> String {
    format!(
        "{}\n[services.objects]\npreset = \"rustfs\"\nruntime = \"process\"\nbinary = \"/bin/true\"\nport = {s3_port}\n",
        pg::pg_toml(dir, &pg::pgvector_bin(), pg_port, "")
    )
}

/// Content of object `name`: deterministic, sizes from 1 byte to ~3 MiB.
fn content(name: &str, i: usize) -> Vec<u8> {
    let len = if i == 7 {
        3 << 20
    } else {
        1 + (i * 997) % 20_000
    };
    let seed = Sha256::digest(name.as_bytes());
    (0..len).map(|k| seed[k % 32] ^ (k as u8)).collect()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn s3(port: u16, store: &prometheus_stack::secrets::SecretStore) -> S3Client {
    S3Client::new(
        &format!("http://127.0.0.1:{port}"),
        S3Credentials {
            access_key: store.read("objects-root-user").unwrap(),
            secret_key: store.read("objects-root-password").unwrap(),
            region: "us-east-1".into(),
        },
    )
    .unwrap()
}

async fn vectors_digest(c: &tokio_postgres::Client) -> String {
    c.query_one(
        "SELECT md5(string_agg(id || ':' || v::text, ',' ORDER BY id)) FROM items WHERE id <= 10000",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// Rows and objects written while the backup runs: one per transaction / PUT, numbered.
fn writer(
    port: u16,
    password: String,
    s3c: S3Client,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let db = pg::connect(port, "postgres", &password, "lobechat")
            .await
            .unwrap();
        let mut n = 0usize;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let id = ROWS + n as i64;
            db.execute(
                "INSERT INTO items VALUES ($1, $2::text::vector)",
                &[&id, &format!("[{id},1,2]")],
            )
            .await
            .unwrap();
            let name = format!("live/{n:05}");
            s3c.put_object("lobe", &name, content(&name, n).into())
                .await
                .unwrap();
        }
        n
    })
}

#[test]
fn backup_while_writing_restores_rows_vectors_objects_and_secrets_and_refuses_damage() {
    crate::support::rt().block_on(roundtrip());
}

async fn roundtrip() {
    let dir = pg::reachable_tempdir();
    let (pg_port, s3_port) = (pg::free_port(), crate::support::objects::free_port());
    let plan = pg::plan(dir.path(), &config(dir.path(), pg_port, s3_port));
    let store = pg::store(&plan);
    let kind = prometheus_stack::plan::SecretKind::Random { bytes: 24 };
    store.ensure("objects-root-user", &kind, None).unwrap();
    store.ensure("objects-root-password", &kind, None).unwrap();
    let (key, secret) = (
        store.read("objects-root-user").unwrap(),
        store.read("objects-root-password").unwrap(),
    );
    let s3_dir = dir.path().join("s3-before");
    let s3a = Store::start(s3_port, &s3_dir, &key, &secret);
    let c = Ctx::new(&plan, "postgres", store.clone());
    let mut srv = pg::prepare_and_start(&plan, &c, &dir.path().join("pg.log"), UP).await;
    pg::init(&plan, &c).await.unwrap();
    let su = store.read("postgres-superuser").unwrap();
    let db = pg::connect(pg_port, "postgres", &su, "lobechat")
        .await
        .unwrap();
    db.batch_execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, v vector(3));
         INSERT INTO items SELECT i, ('[' || i || ',' || (i * 0.5) || ',' || (-i) || ']')::vector
           FROM generate_series(1, 10000) i;",
    )
    .await
    .unwrap();
    let before_digest = vectors_digest(&db).await;
    let client = s3(s3_port, &store);
    client.create_bucket("lobe").await.unwrap();
    for i in 0..OBJECTS {
        let name = format!("base/{i:04} name+odd&key");
        client
            .put_object("lobe", &name, content(&name, i).into())
            .await
            .unwrap();
    }

    // The backup runs while a client writes rows and objects.
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(pg_port, su.clone(), client.clone(), stop.clone());
    let sources = Sources::from_file(&dir.path().join("stack.toml")).unwrap();
    let out = dir.path().join("backups/one.tar.zst");
    let t0 = Instant::now();
    let (o2, h) = (out.clone(), tokio::runtime::Handle::current());
    let created = tokio::task::spawn_blocking(move || backup::create(&sources, &o2, &h))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("backup: {e}"));
    stop.store(true, Ordering::SeqCst);
    let written = w.await.unwrap();
    eprintln!(
        "backup: {:?}, {} entries, {} objects, {} bytes on disk, {written} rows+objects written meanwhile",
        t0.elapsed(),
        created.manifest.entries.len(),
        created.manifest.objects(),
        created.bytes
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(written > 0, "the client wrote nothing during the backup");
    let m = &created.manifest;
    assert!(m.objects() >= OBJECTS, "{} objects", m.objects());
    assert_eq!(m.postgres.as_ref().unwrap().major, "18");
    assert!(std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .all(|e| { !e.unwrap().file_name().to_string_lossy().contains("partial") }));
    backup::verify(&out).unwrap();
    let listed = backup::list(out.parent().unwrap()).unwrap();
    assert_eq!(listed.len(), 1);

    // Fresh data dir, fresh empty store on the same port, the old server gone.
    srv.stop();
    drop(s3a);
    let dir2 = pg::reachable_tempdir();
    let s3b = Store::start(s3_port, &dir2.path().join("s3-after"), &key, &secret);
    let data2 = dir2.path().join("data");
    let opts = RestoreOptions {
        data_dir: Some(data2.clone()),
        config: Some(dir2.path().join("restored.toml")),
        ..Default::default()
    };
    let (f, o, h) = (out.clone(), opts.clone(), tokio::runtime::Handle::current());
    let r = tokio::task::spawn_blocking(move || backup::restore(&f, &o, &h))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("restore: {e}"));
    assert!(r.objects_pending.is_none());
    assert_eq!(r.objects, m.objects());
    assert_eq!(
        std::fs::read_to_string(dir2.path().join("restored.toml")).unwrap(),
        std::fs::read_to_string(dir.path().join("stack.toml")).unwrap()
    );
    for name in [
        "postgres-superuser",
        "postgres-lobechat",
        "objects-root-password",
    ] {
        assert_eq!(
            std::fs::read(data2.join("secrets").join(name)).unwrap(),
            std::fs::read(dir.path().join("data/secrets").join(name)).unwrap(),
            "secret {name}"
        );
    }

    // The restored cluster starts through the preset's own prepare and has the snapshot.
    let plan2 = pg::plan(dir2.path(), &config(dir2.path(), pg_port, s3_port));
    let store2 = pg::store(&plan2);
    let c2 = Ctx::new(&plan2, "postgres", store2.clone());
    let _srv2 = pg::prepare_and_start(&plan2, &c2, &dir2.path().join("pg.log"), UP).await;
    // The consumer's role logs in with its restored secret; the rows are read as the
    // superuser (who created the table), also with the restored secret.
    let lobe = pg::connect(
        pg_port,
        "lobechat",
        &store2.read("postgres-lobechat").unwrap(),
        "lobechat",
    )
    .await
    .unwrap();
    let who: String = lobe
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "lobechat");
    let db2 = pg::connect(
        pg_port,
        "postgres",
        &store2.read("postgres-superuser").unwrap(),
        "lobechat",
    )
    .await
    .unwrap();
    assert_eq!(vectors_digest(&db2).await, before_digest);
    let base: i64 = db2
        .query_one("SELECT count(*) FROM items WHERE id <= 10000", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(base, ROWS);
    // One transaction per live row: the snapshot holds a gap-free prefix of them.
    let (live, top): (i64, Option<i64>) = {
        let r = db2
            .query_one("SELECT count(*), max(id) FROM items WHERE id > 10000", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        top.unwrap_or(ROWS),
        ROWS + live,
        "restored rows are not a prefix"
    );
    eprintln!("restored {live} of {written} live rows");

    // Every object in the manifest is back with the same bytes; the base ones all there.
    let c3 = s3(s3_port, &store2);
    let mut base_objects = 0;
    for e in &m.entries {
        if let Kind::Object { bucket, key } = &e.kind {
            let got = c3.get_object(bucket, key).await.unwrap();
            assert_eq!(sha(&got), e.sha256, "{bucket}/{key}");
            if key.starts_with("base/") {
                base_objects += 1;
                let i: usize = key[5..9].parse().unwrap();
                assert_eq!(got.as_ref(), content(key, i).as_slice(), "{key}");
            }
        }
    }
    assert_eq!(base_objects, OBJECTS);
    drop(s3b);
    corrupted_and_nonempty_are_refused(&out, &data2).await;
}

/// A flipped byte anywhere is found by verify and by restore (naming the entry); a
/// non-empty data dir is refused without --force.
async fn corrupted_and_nonempty_are_refused(out: &Path, data2: &Path) {
    let original = std::fs::read(out).unwrap();
    for at in [original.len() / 3, original.len() / 2, original.len() - 20] {
        let bad = out.with_file_name(format!("bad-{at}.tar.zst"));
        let mut bytes = original.clone();
        bytes[at] ^= 0x5a;
        std::fs::write(&bad, &bytes).unwrap();
        let e = backup::verify(&bad).unwrap_err().to_string();
        assert!(
            e.contains("damaged in entry")
                || e.contains("does not match its manifest")
                || e.contains("manifest"),
            "{e}"
        );
        eprintln!("flipped byte {at}: {e}");
        let empty = pg::reachable_tempdir();
        let opts = RestoreOptions {
            data_dir: Some(empty.path().join("data")),
            config: Some(empty.path().join("c.toml")),
            ..Default::default()
        };
        let (b2, h) = (bad.clone(), tokio::runtime::Handle::current());
        let e2 = tokio::task::spawn_blocking(move || backup::restore(&b2, &opts, &h))
            .await
            .unwrap()
            .unwrap_err()
            .to_string();
        assert_eq!(e2, e);
        assert!(
            !empty.path().join("data").exists(),
            "restore wrote from a damaged backup"
        );
    }
    let opts = RestoreOptions {
        data_dir: Some(data2.to_path_buf()),
        ..Default::default()
    };
    let (f, h) = (out.to_path_buf(), tokio::runtime::Handle::current());
    let e = tokio::task::spawn_blocking(move || backup::restore(&f, &opts, &h))
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not empty") && e.contains("--force"), "{e}");
}
