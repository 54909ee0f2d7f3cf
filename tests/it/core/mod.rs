mod config;
mod control;
mod lifecycle;
mod processes;
mod seams;
mod shutdown;
mod usage;
