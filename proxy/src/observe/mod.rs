//! Observability: the access log, the counters the admin server renders, and tracing.

pub mod access_log;
pub mod istio;
pub mod trace;
