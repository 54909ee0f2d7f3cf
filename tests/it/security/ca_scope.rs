//! Point 7: the internal CA is limited by X.509 name constraints to the stack's domain
//! (plus localhost and loopback); a leaf it signs for another name fails `openssl
//! verify`. A CA from before the constraints keeps working until `ca rotate`.

use prometheus_stack::pki;
use std::path::Path;
use std::process::Command;

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn text_of(cert: &Path) -> String {
    let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", cert.to_str().unwrap()]);
    assert!(ok, "{text}");
    text
}

/// `openssl verify` of `leaf` against `ca` only (no system trust store).
fn verify(ca: &Path, leaf: &Path) -> (bool, String) {
    openssl(&[
        "verify",
        "-no-CApath",
        "-no-CAstore",
        "-CAfile",
        ca.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ])
}

fn hosts(h: &[&str]) -> Vec<String> {
    h.iter().map(|s| s.to_string()).collect()
}

#[test]
fn fresh_ca_signs_only_for_the_domain() {
    let d = tempfile::tempdir().unwrap();
    let sites = hosts(&["lobe.example.test", "auth.example.test"]);
    let ca = pki::ensure_stack_ca(d.path(), Some("example.test"), &sites).unwrap();
    let text = text_of(&ca.cert);
    assert!(text.contains("Name Constraints"), "{text}");
    assert!(text.contains("DNS:example.test"), "{text}");
    assert!(text.contains("DNS:localhost"), "{text}");

    let policy = pki::LeafPolicy::default();
    let ok = pki::ensure_site_certs(d.path(), &sites, &policy).unwrap();
    for leaf in &ok {
        let (good, out) = verify(&ca.cert, &leaf.cert);
        assert!(good, "{}: {out}", leaf.host);
    }
    // The same key signing for a name outside the domain: every client refuses it.
    let bad = pki::ensure_site_certs(d.path(), &hosts(&["example.org"]), &policy).unwrap();
    let (good, out) = verify(&ca.cert, &bad[0].cert);
    assert!(!good, "a leaf for example.org must not verify: {out}");
    assert!(out.contains("subtree"), "{out}");
}

#[test]
fn old_unconstrained_ca_keeps_working_until_rotated() {
    let d = tempfile::tempdir().unwrap();
    let sites = hosts(&["lobe.example.test"]);
    // As an installation from before the constraints has it.
    let old = pki::ensure_ca_for(d.path(), None).unwrap();
    assert!(!text_of(&old.cert).contains("Name Constraints"));
    let policy = pki::LeafPolicy::default();
    let leaf = pki::ensure_site_certs(d.path(), &sites, &policy).unwrap()[0].clone();
    let before = pki::fingerprint(&leaf.cert).unwrap();
    let kept = pki::ensure_stack_ca(d.path(), Some("example.test"), &sites).unwrap();
    assert_eq!(
        kept, old,
        "an existing CA is never replaced behind the operator's back"
    );
    assert!(verify(&old.cert, &leaf.cert).0);

    let new = pki::rotate_ca(d.path(), Some("example.test")).unwrap();
    assert_ne!(new.sha256, old.sha256);
    assert!(text_of(&new.cert).contains("Name Constraints"));
    assert!(d.path().join("ca.crt.old").is_file() && d.path().join("ca.key.old").is_file());
    pki::ensure_site_certs(d.path(), &sites, &policy).unwrap();
    assert_ne!(
        pki::fingerprint(&leaf.cert).unwrap(),
        before,
        "leaf re-issued"
    );
    let (good, out) = verify(&new.cert, &leaf.cert);
    assert!(good, "{out}");
}

/// The CLI: `ca` keeps an old CA as it is, `ca rotate` replaces it by a constrained one.
#[test]
fn ca_rotate_command_gives_an_old_ca_its_constraints() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("stack.toml");
    std::fs::write(
        &cfg,
        format!(
            "[stack]\ndomain = \"example.test\"\ndata_dir = {:?}\n\
             [proxy]\nhttps = \"127.0.0.1:0\"\ntls = \"internal\"\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let pki_dir = dir.path().join("data/pki");
    let old = pki::ensure_ca_for(&pki_dir, None).unwrap();
    let run = |args: &[&str]| {
        let out = crate::support::stack_command(&cfg)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    assert!(run(&["ca"]).contains(&old.sha256), "kept as it is");
    assert!(!text_of(&old.cert).contains("Name Constraints"));
    let out = run(&["ca", "rotate"]);
    assert!(out.contains("limited to example.test"), "{out}");
    let new = pki::ca_info(&pki_dir).unwrap().unwrap();
    assert_ne!(new.sha256, old.sha256);
    assert!(out.contains(&new.sha256), "{out}");
    assert!(text_of(&new.cert).contains("DNS:example.test"));
}
