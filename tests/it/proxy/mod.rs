mod forward;
mod limits;
mod tls;
