mod daemon;
mod monitor;
mod podman;
