//! Talking to systemd: readiness, watchdog and status through `sd_notify`.

pub mod notify;
