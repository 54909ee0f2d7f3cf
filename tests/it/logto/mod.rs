mod admin_real;
mod plan;
mod podman_standin;
mod provision;
mod secrets_show;
