//! prometheus-stack: one daemon that runs a private LobeChat installation.
//!
//! config (the file) → plan (resolved units) → supervisor (runs them through a runtime),
//! with the proxy, GPU poller, metrics and control API around it. See DESIGN §1.

pub mod backup;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod control;
pub mod doctor;
pub mod error_chain;
pub mod export;
pub mod gpu;
pub mod logsink;
pub mod metrics;
pub mod pki;
pub mod plan;
pub mod proxy;
pub mod publish;
pub mod runtime;
pub mod secrets;
pub mod stack;
pub mod supervisor;
pub mod systemd;
pub mod usage;
