mod daemon;
mod runtime;
mod usage;
