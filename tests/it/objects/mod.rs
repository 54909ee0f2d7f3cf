mod daemon;
mod preset;
mod proxy;
mod proxy_stream;
mod s3;
mod standin;
