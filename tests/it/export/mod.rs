//! `export kubernetes` (issue 19): the golden tree of packaging/stack.toml, a round trip
//! from the manifests back to the plan's meaning, and `task run`/`task wait`.

mod golden;
mod round_trip;
mod task_cli;
mod tree;
