//! How a unit's process exists: a native child (`process`) or a container (`podman`).

pub mod podman;
