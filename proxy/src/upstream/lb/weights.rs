//! Cumulative host weights: a point on `[0, total)` maps to the host whose share of the line
//! covers it, by binary search.

use super::Host;
use std::sync::Arc;

pub(super) struct CumulativeWeights {
    /// `ends[i]` is the sum of the weights of hosts `0..=i`.
    ends: Vec<u64>,
}

impl CumulativeWeights {
    /// `None` when every host has the same weight, where plain indexing does the same job.
    pub(super) fn unequal(hosts: &[Arc<Host>]) -> Option<CumulativeWeights> {
        let first = hosts.first()?.weight;
        if hosts.iter().all(|h| h.weight == first) {
            return None;
        }
        Some(CumulativeWeights::new(
            hosts.iter().map(|h| u64::from(h.weight)),
        ))
    }

    pub(super) fn new(weights: impl Iterator<Item = u64>) -> CumulativeWeights {
        let mut sum = 0u64;
        let ends = weights
            .map(|w| {
                sum += w;
                sum
            })
            .collect();
        CumulativeWeights { ends }
    }

    pub(super) fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The host whose share covers `point`, which must be below [`total`](Self::total).
    pub(super) fn find(&self, point: u64) -> usize {
        self.ends.partition_point(|end| *end <= point)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_map_to_the_host_covering_them() {
        let w = CumulativeWeights::new([3, 1, 2].into_iter());
        assert_eq!(w.total(), 6);
        let owners: Vec<usize> = (0..6).map(|p| w.find(p)).collect();
        assert_eq!(owners, [0, 0, 0, 1, 2, 2]);
    }
}
