//! Observability: the access log, and the counters the admin server renders.

pub mod access_log;
pub mod istio;
