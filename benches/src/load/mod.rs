//! Load generators: wrk and h2load for saturation throughput (closed loop), and our own
//! open-loop fixed-rate generator for latency (corrects for coordinated omission).

pub mod fixed;
pub mod h2load;
pub mod histogram;
pub mod wrk;

/// The outcome of a saturation run.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Throughput {
    /// Successful requests per second.
    pub rps: f64,
    pub requests: u64,
    pub errors: u64,
}
