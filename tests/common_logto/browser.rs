//! curl as the browser: SNI and DNS for the public names via --resolve, our internal CA
//! via --cacert, a cookie jar, and the OIDC login walked hop by hop.

use std::path::Path;
use std::process::Command;

/// One request: (status, Location, body).
pub fn browse(
    ca: &Path,
    jar: &Path,
    https_port: u16,
    url: &str,
    form: Option<&str>,
) -> (u16, Option<String>, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-i", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg("-b")
        .arg(jar)
        .arg("-c")
        .arg(jar);
    for host in ["lobe.example.test", "auth.example.test"] {
        c.args(["--resolve", &format!("{host}:{https_port}:127.0.0.1")]);
    }
    if let Some(f) = form {
        c.args(["--data", f]);
    }
    let out = c.arg(url).output().expect("curl runs");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    (status, location, body.to_string())
}

fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("https://") {
        loc.to_string()
    } else {
        let origin: String = base.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        format!("{origin}{loc}")
    }
}

fn form_action(html: &str) -> Option<(String, String)> {
    let a = html
        .split("action=\"")
        .nth(1)?
        .split('"')
        .next()?
        .replace("&amp;", "&");
    let prompt = html
        .split("name=\"prompt\" value=\"")
        .nth(1)?
        .split('"')
        .next()?
        .to_string();
    Some((a, prompt))
}

/// Starts at LobeChat's sign-in, follows redirects, fills oidc-provider's login (any
/// user, "alice") and consent forms; returns the final page and every hop.
pub fn login(ca: &Path, jar: &Path, https_port: u16) -> (String, Vec<String>) {
    let mut url = format!("https://lobe.example.test:{https_port}/api/auth/signin/logto");
    let mut form: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        assert!(seen.len() < 16, "login did not finish: {seen:#?}");
        let (st, loc, body) = browse(ca, jar, https_port, &url, form.as_deref());
        seen.push(format!("{st} {url}"));
        form = None;
        if let Some(l) = loc {
            url = absolute(&url, &l);
            continue;
        }
        assert_eq!(st, 200, "{url}: {body}\n{seen:#?}");
        if let Some((action, prompt)) = form_action(&body) {
            url = absolute(&url, &action);
            form = Some(match prompt.as_str() {
                "login" => "prompt=login&login=alice&password=anything".into(),
                other => format!("prompt={other}"),
            });
            continue;
        }
        return (body, seen);
    }
}

/// The login ended signed in, and every hop stayed on the two public https origins
/// (never 127.0.0.1:PORT or http://): the forwarded headers made it through.
pub fn assert_signed_in(done: &str, seen: &[String], issuer: &str, https_port: u16) {
    assert!(
        done.starts_with(&format!("signed in: sub=alice iss={issuer}")),
        "{done}\n{seen:#?}"
    );
    for hop in seen {
        let u = hop.split_whitespace().nth(1).unwrap();
        assert!(
            u.starts_with(&format!("https://lobe.example.test:{https_port}/"))
                || u.starts_with(&format!("https://auth.example.test:{https_port}/oidc/")),
            "{hop}"
        );
    }
    assert!(seen
        .iter()
        .any(|h| h.contains("/api/auth/callback/logto?code=")));
}
