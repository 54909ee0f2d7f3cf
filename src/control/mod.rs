//! The control API: HTTP/JSON on a Unix socket (mode 0660, the admin group
//! `prometheus-stack-admin` or `[control].group`; each peer is checked too, see
//! `peer.rs`). The CLI is its client (`client.rs`); the endpoints live in one router
//! (`routes.rs`).

pub mod client;
mod peer;
pub mod routes;
pub mod secrets;
mod server;

pub use client::{Client, ClientError};
pub use peer::DEFAULT_ADMIN_GROUP;
pub use routes::ControlCtx;
pub use server::{ensure_free, serve, ControlError, ControlServer};
