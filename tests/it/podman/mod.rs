mod daemon;
mod runtime;
