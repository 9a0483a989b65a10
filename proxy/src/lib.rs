//! weft-proxy: the Weft sidecar, an L7 proxy configured only over xDS.

pub mod admin;
pub mod body;
pub mod config;
pub mod connection_limit;
pub mod context;
pub mod downstream;
pub mod envoy_stats;
pub mod hcm_stats;
pub mod http;
pub mod listener;
pub mod listener_stats;
pub mod log_throttle;
pub mod observe;
pub mod router;
pub mod snapshot;
pub mod tcp;
pub mod upstream;
pub mod xds;

#[cfg(test)]
mod test_fixtures;
#[cfg(test)]
mod test_h2_upstream;
