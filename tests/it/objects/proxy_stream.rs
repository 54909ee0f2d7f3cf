//! A 200 MiB upload through the TLS proxy's bucket route streams: the whole test process
//! (proxy included; curl and s3s-fs are other processes) peaks under 64 MiB RSS. Also
//! proves the bucket route's own body limit (5 GiB) applies over `[proxy] max_body`
//! (100 MiB by default). Alone in its file so no other test shares the process.

use crate::support::http::tls_args;
use crate::support::objects::{proxied_store_plan, s3s_fs, start_proxy};
use prometheus_stack::stack::objects::s3::{object_path, S3Client, S3Credentials};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

const HTTPS_PORT: u16 = 26444;
const SIZE: usize = 200 << 20;

fn peak_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

fn sha256_file(p: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_200mib_streams_through_proxy_with_rss_under_64mib_s3s_fs() {
    if !crate::support::alone_in_own_process(
        "objects::proxy_stream::upload_200mib_streams_through_proxy_with_rss_under_64mib_s3s_fs",
    ) {
        return;
    }
    let s = s3s_fs("streamkey", "streamsecret123");
    let tmp = tempfile::tempdir().unwrap();
    let p = proxied_store_plan(tmp.path(), HTTPS_PORT, s.port);
    assert!(
        p.proxy.as_ref().unwrap().max_body < SIZE as u64,
        "default limit is below the upload"
    );
    let proxy = start_proxy(&p).await;
    let origin = format!("https://lobe.example.com:{HTTPS_PORT}");
    let c = S3Client::new(
        &s.endpoint(),
        S3Credentials {
            access_key: "streamkey".into(),
            secret_key: "streamsecret123".into(),
            region: "us-east-1".into(),
        },
    )
    .unwrap();
    c.create_bucket("lobe").await.unwrap();

    // 200 MiB of non-repeating data, written in 1 MiB pieces (never held whole).
    let src = tmp.path().join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..(SIZE >> 20) {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (j as u32).wrapping_mul(2654435761).wrapping_add(i as u32) as u8;
            }
            f.write_all(&block).unwrap();
        }
    }
    let before = peak_rss_kib();
    let path = object_path("lobe", "big.bin");
    let put = c
        .presign(&origin, "PUT", &path, Duration::from_secs(600))
        .unwrap();
    let tls = tls_args(
        &tmp.path().join("pki/ca.crt"),
        "lobe.example.com",
        HTTPS_PORT,
    );
    let src2 = src.clone();
    let put_status = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(&tls)
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-T"])
            .arg(&src2)
            .arg(&put)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&put_status.stdout), "200");

    let get = c
        .presign(&origin, "GET", &path, Duration::from_secs(600))
        .unwrap();
    let dst = tmp.path().join("back.bin");
    let tls = tls_args(
        &tmp.path().join("pki/ca.crt"),
        "lobe.example.com",
        HTTPS_PORT,
    );
    let dst2 = dst.clone();
    let get_status = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(&tls)
            .args(["-s", "-w", "%{http_code}", "-o"])
            .arg(&dst2)
            .arg(&get)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&get_status.stdout), "200");
    assert_eq!(std::fs::metadata(&dst).unwrap().len(), SIZE as u64);
    assert_eq!(sha256_file(&src), sha256_file(&dst));

    let peak = peak_rss_kib();
    eprintln!("peak RSS: {before} KiB before the transfer, {peak} KiB after 200 MiB up and down");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB is not under 64 MiB");
    proxy.shutdown().await;
}
