//! Attacks on what runs as root or faces the network (security issue).

mod bundle;
mod ca_scope;
mod control_access;
mod logto_createrole;
mod logto_ports;
mod pg_datadir;
mod podman_caps;
mod proxy_flood;
