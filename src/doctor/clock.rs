//! The clock is synchronized: asks the system's own time service (systemd-timesyncd via
//! `timedatectl`, or chrony via `chronyc`); no NTP traffic of our own (air-gapped sites).

use super::{Finding, Severity};
use std::time::Duration;

/// Further off than this is an error (OIDC tokens and S3 signatures carry times).
const MAX_OFFSET_SECS: f64 = 2.0;

/// The programs asked, by name or path (tests point them elsewhere).
#[derive(Debug, Clone)]
pub struct ClockTools {
    pub timedatectl: String,
    pub chronyc: String,
}

impl ClockTools {
    /// `timedatectl` and `chronyc` from PATH.
    pub fn system() -> Self {
        ClockTools {
            timedatectl: "timedatectl".into(),
            chronyc: "chronyc".into(),
        }
    }
}

/// What `timedatectl show` says: (NTP service enabled, synchronized).
pub fn parse_timedatectl(out: &str) -> Option<(bool, bool)> {
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(|v| v.trim() == "yes")
    };
    Some((get("NTP").unwrap_or(false), get("NTPSynchronized")?))
}

/// What `chronyc tracking` says: (offset in seconds, signed; leap status).
pub fn parse_chronyc(out: &str) -> Option<(f64, String)> {
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k)?.trim_start().strip_prefix(':'))
            .map(str::trim)
    };
    // "System time     : 0.000011361 seconds slow of NTP time"
    let sys = field("System time")?;
    let mut words = sys.split_whitespace();
    let secs: f64 = words.next()?.parse().ok()?;
    let sign = if words.nth(1) == Some("slow") {
        -1.0
    } else {
        1.0
    };
    Some((sign * secs, field("Leap status")?.to_string()))
}

async fn output(prog: &str, args: &[&str]) -> Option<String> {
    let run = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(5), run).await {
        Ok(Ok(o)) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        _ => None,
    }
}

/// One finding unless a time service says the clock is synchronized within 2 s.
pub async fn check_clock(tools: &ClockTools) -> Vec<Finding> {
    let tdc = output(&tools.timedatectl, &["show"]).await;
    let tdc = tdc.as_deref().and_then(parse_timedatectl);
    if let Some((_, true)) = tdc {
        return Vec::new();
    }
    let fix_sync = "make chrony or systemd-timesyncd reach a time source (an NTP server on the site network for air-gapped hosts): OIDC logins and S3 signatures fail when the clock drifts";
    let chrony = output(&tools.chronyc, &["-n", "tracking"]).await;
    if let Some((offset, leap)) = chrony.as_deref().and_then(parse_chronyc) {
        if leap != "Normal" {
            return vec![Finding::warning(
                "clock",
                format!("chrony is not synchronized (leap status: {leap})"),
                fix_sync,
            )];
        }
        if offset.abs() > MAX_OFFSET_SECS {
            return vec![Finding::error(
                "clock",
                format!("the clock is {:.1} s {} of chrony's time source (more than {MAX_OFFSET_SECS} s)", offset.abs(), if offset < 0.0 { "slow" } else { "fast" }),
                "let chrony step the clock (`chronyc makestep`) and keep chronyd running",
            )];
        }
        return Vec::new();
    }
    match tdc {
        Some((true, _)) => vec![Finding::warning(
            "clock",
            "systemd-timesyncd is on but the clock is not synchronized",
            format!("see `timedatectl timesync-status`; {fix_sync}"),
        )],
        _ => vec![Finding::new(
            "clock",
            Severity::Unknown,
            "clock sync unknown: neither systemd-timesyncd (timedatectl) nor chrony (chronyc) reports a synchronized clock",
            "install and enable chrony or systemd-timesyncd (`timedatectl set-ntp true`) pointing at a time source",
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timedatectl_and_chronyc() {
        let t = "Timezone=Etc/UTC\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=no\n";
        assert_eq!(parse_timedatectl(t), Some((true, false)));
        let c = "Reference ID    : A9FEA97B (169.254.169.123)\nStratum         : 4\n\
                 System time     : 3.250000000 seconds slow of NTP time\n\
                 Leap status     : Normal\n";
        assert_eq!(parse_chronyc(c), Some((-3.25, "Normal".into())));
    }

    /// Neither service present (both programs missing): the finding says "unknown".
    #[tokio::test]
    async fn neither_service_is_unknown() {
        let tools = ClockTools {
            timedatectl: "/nonexistent/timedatectl".into(),
            chronyc: "/nonexistent/chronyc".into(),
        };
        let f = check_clock(&tools).await;
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Unknown);
        assert!(f[0].message.starts_with("clock sync unknown"));
    }

    /// A chronyc that reports a clock 3.25 s slow: an error naming the offset.
    #[tokio::test]
    async fn chrony_offset_over_two_seconds_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("chronyc");
        std::fs::write(&fake, "#!/bin/sh\nprintf 'System time     : 3.500000000 seconds slow of NTP time\\nLeap status     : Normal\\n'\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let tools = ClockTools {
            timedatectl: "/nonexistent/timedatectl".into(),
            chronyc: fake.display().to_string(),
        };
        let f = check_clock(&tools).await;
        assert_eq!(
            f[0].message,
            "the clock is 3.5 s slow of chrony's time source (more than 2 s)"
        );
        assert_eq!(f[0].severity, Severity::Error);
    }
}
