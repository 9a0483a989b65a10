//! The request path end to end inside one process: real sockets between a test client, the
//! proxy's connection handling, and scripted upstreams. Each file covers one feature group.

mod access_log;
mod connection_manager_heads;
mod downstream;
mod faults_and_cors;
pub(crate) mod harness;
mod metrics;
mod mutations_and_mirrors;
mod raw_http2;
mod request_id;
mod resilience;
mod retries;
mod timeouts;
mod unprocessed;
mod upgrades;
