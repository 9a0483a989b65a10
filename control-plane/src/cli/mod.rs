//! The operator-facing pieces of `weftctl`: each subcommand is a module with a clap `Args`
//! struct and a `run` function, so the binary in `src/bin/weftctl.rs` stays a thin dispatcher.
//!
//! This is the edge of the program: errors here are `anyhow`, except in the pure parts
//! (the `up` plan, the bootstrap builder) that have their own error types and unit tests.

pub mod analyze;
pub mod bootstrap;
pub mod demo_app;
pub mod proxy_client;
pub mod up;
