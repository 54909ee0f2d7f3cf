//! The integration tests: one binary, so the crate is linked once (issue 13 point 8).
//!
//! One module per area (`core`, `doctor`, `postgres`, `objects`, `logto`, `lobechat`, `proxy`, `export`,
//! `podman`, `gpu`, `bundle`, `package`, `security`), one file per topic; shared helpers in `support`
//! (the daemon under test: `support::daemon::TestDaemon`; HTTP: `support::http`).
//! Run one area or topic with a filter: `cargo test --test it core::lifecycle`.
//!
//! Every test shares this process: fixed ports must not collide across areas, tests that
//! spawn units in-process use `support::rt()`, and the proxy's log capture is shared.

mod support;

mod backup;
mod bundle;
mod core;
mod doctor;
mod export;
mod gpu;
mod lobechat;
mod logto;
mod objects;
mod package;
mod podman;
mod postgres;
mod proxy;
mod security;
