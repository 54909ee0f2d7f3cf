//! `doctor`: each check makes its problem happen for real and asserts the exact finding.

mod bucket;
mod cli;
mod disk;
mod extensions;
mod host;
mod oidc;
mod redirect;
