//! Observability: the access log, the metrics the admin server renders (Istio's request
//! metrics, Envoy's cluster and server stats), and tracing.

pub mod access_log;
pub mod istio;
pub mod server_stats;
pub mod trace;
