//! Attacks on what runs as root or faces the network (security issue).

mod bundle;
mod proxy_flood;
