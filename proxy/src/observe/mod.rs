//! Observability: the access log, and the metrics the admin server renders (Istio's request
//! metrics, Envoy's cluster and server stats).

pub mod access_log;
pub mod envoy_stats;
pub mod istio;
pub mod server_stats;
