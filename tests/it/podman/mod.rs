mod daemon;
mod postgres;
mod runtime;
mod usage;
