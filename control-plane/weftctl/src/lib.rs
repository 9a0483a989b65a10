//! weftctl, the operator CLI, and the demo workloads `weftctl up` runs. This crate sits on top
//! of weftd's library (it reads config with the same parser and validator) but weftd never
//! links it: the process supervisor, the HTTP client and the demo application stay out of
//! the control plane.
//!
//! Each subcommand is a module with a clap `Args` struct and a `run` function, so
//! `src/main.rs` stays a thin dispatcher. This is the edge of the program: errors here are
//! `anyhow`, except in the pure parts (the `up` plan, the bootstrap builder) that have their
//! own error types and unit tests.

mod admin_http;
pub mod analyze;
pub mod bootstrap;
pub mod demo_app;
pub mod iptables;
pub mod proxy_client;
pub mod proxy_config;
pub mod proxy_status;
mod table;
pub mod up;
