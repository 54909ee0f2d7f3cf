//! An error with its causes on one line, for operators' logs and error messages.

/// `error: cause: cause's cause`, walking `source()` to the end.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
