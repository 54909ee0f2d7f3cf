//! Attacks on what runs as root or faces the network (security issue).

mod bundle;
mod control_access;
mod proxy_flood;
