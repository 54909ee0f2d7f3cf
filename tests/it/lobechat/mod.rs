mod daemon_standin;
mod env_standin;
