//! What `doctor` prints: a summary line, then one indented line per finding with its fix
//! (the shape of `check`'s output), or the same as JSON.

use super::{Finding, Severity};
use serde::Serialize;

/// The checks that ran and what they found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// Names of the checks that ran, in order.
    pub checks: Vec<&'static str>,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Records that `check` ran and what it found.
    pub fn add(&mut self, check: &'static str, findings: Vec<Finding>) {
        self.checks.push(check);
        self.findings.extend(findings);
    }

    /// No error findings (warnings and unknowns do not fail).
    pub fn healthy(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    /// `doctor: ok (N checks: …)` or `doctor: N problems, M warnings`, then the findings.
    pub fn render(&self) -> String {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let mut parts = Vec::new();
        let errors = self.count(Severity::Error);
        if errors > 0 {
            parts.push(plural(errors, "problem"));
        }
        let warnings = self.count(Severity::Warning);
        if warnings > 0 {
            parts.push(plural(warnings, "warning"));
        }
        let unknown = self.count(Severity::Unknown);
        if unknown > 0 {
            parts.push(format!("{unknown} unknown"));
        }
        let head = if errors == 0 {
            let mut h = String::from("ok");
            if !parts.is_empty() {
                h = format!("ok with {}", parts.join(", "));
            }
            h
        } else {
            parts.join(", ")
        };
        let mut out = format!(
            "doctor: {head} ({}: {})\n",
            plural(self.checks.len(), "check"),
            self.checks.join(", ")
        );
        for f in &self.findings {
            out.push_str(&format_finding(f));
            out.push('\n');
        }
        out
    }

    /// `{"healthy":…,"checks":[…],"findings":[{check,severity,message,fix}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "healthy": self.healthy(),
            "checks": self.checks,
            "findings": self.findings,
        })
    }
}

/// `  error: CHECK: MESSAGE; fix: FIX`.
pub fn format_finding(f: &Finding) -> String {
    format!(
        "  {}: {}: {}; fix: {}",
        f.severity.as_str(),
        f.check,
        f.message,
        f.fix
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_do_not_fail_and_errors_do() {
        let mut r = Report::default();
        r.add("clock", vec![Finding::warning("clock", "w", "f")]);
        assert!(r.healthy());
        assert_eq!(
            r.render(),
            "doctor: ok with 1 warning (1 check: clock)\n  warning: clock: w; fix: f\n"
        );
        r.add("disk", vec![Finding::error("disk", "full", "free space")]);
        r.add("dns", vec![Finding::error("dns", "x", "y")]);
        assert!(!r.healthy());
        assert!(r
            .render()
            .starts_with("doctor: 2 problems, 1 warning (3 checks: clock, disk, dns)\n"));
        assert_eq!(r.to_json()["healthy"], false);
        assert_eq!(r.to_json()["findings"][1]["severity"], "error");
    }
}
