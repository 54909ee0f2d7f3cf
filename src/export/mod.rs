//! Exports of the plan value to other engines: the same units, dependencies, env,
//! probes and routes, written for a platform that runs them instead of our supervisor.

pub mod kubernetes;
