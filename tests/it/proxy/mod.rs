mod drain;
mod forward;
mod limits;
mod tls;
