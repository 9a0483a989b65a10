//! Latency percentiles from every sample, kept in a vector and sorted once.
//!
//! A fixed-rate run of 30 s at 1,000 req/s is 30,000 samples: sorting them is cheaper and
//! simpler than a bucketed histogram, and the percentiles are exact.

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone)]
pub struct Samples {
    micros: Vec<u64>,
}

/// The percentiles the report prints, in microseconds.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Samples {
    pub fn record(&mut self, micros: u64) {
        self.micros.push(micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn percentiles(mut self) -> Percentiles {
        self.micros.sort_unstable();
        let v = &self.micros;
        Percentiles {
            count: v.len() as u64,
            p50: nearest_rank(v, 50.0),
            p90: nearest_rank(v, 90.0),
            p99: nearest_rank(v, 99.0),
            p999: nearest_rank(v, 99.9),
            max: v.last().copied().unwrap_or(0) as f64,
        }
    }
}

/// The nearest-rank percentile of sorted samples: the smallest value with at least `p`% of the
/// samples at or below it.
fn nearest_rank(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // The epsilon keeps 99.9% of 1,000 at rank 999 despite binary floating point.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_thousand() {
        let mut s = Samples::default();
        for v in (1..=1000).rev() {
            s.record(v);
        }
        let p = s.percentiles();
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50, 500.0);
        assert_eq!(p.p90, 900.0);
        assert_eq!(p.p99, 990.0);
        assert_eq!(p.p999, 999.0);
        assert_eq!(p.max, 1000.0);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Samples::default().percentiles().p99, 0.0);
    }
}
