mod daemon;
mod preset;
mod tasks;
