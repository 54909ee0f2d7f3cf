mod plan;
mod podman_standin;
mod provision;
