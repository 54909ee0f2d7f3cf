//! The control API: HTTP/JSON on a Unix socket (mode 0660, group `prometheus-stack` or
//! `[control].group`). The CLI is its client (`client.rs`); the endpoints live in one
//! router (`routes.rs`).

pub mod client;
pub mod routes;
pub mod secrets;
mod server;

pub use client::{Client, ClientError};
pub use routes::ControlCtx;
pub use server::{ensure_free, serve, ControlError, ControlServer};
