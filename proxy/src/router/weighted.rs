//! Weighted cluster selection. Each cluster owns the slice `[previous end, end)` of `0..total`,
//! in configuration order, so a uniform number in `0..total` lands on each cluster in proportion
//! to its weight; with the number chosen by the caller the pick is a pure function.

use rand::Rng;

use super::header_mutation::HeaderPolicy;
use super::target::ClusterTarget;
use http::HeaderValue;

#[derive(Debug, Clone)]
pub struct WeightedCluster {
    pub target: ClusterTarget,
    pub weight: u32,
    /// This cluster's own header mutations, applied before the route's.
    pub headers: HeaderPolicy,
    /// This cluster's `host_rewrite_literal`, which wins over the route's.
    pub host_rewrite: Option<HeaderValue>,
    /// Exclusive end of this cluster's slice of `0..total`.
    end: u64,
}

/// One cluster of a weighted route, as configured.
pub struct WeightedClusterSpec {
    pub target: ClusterTarget,
    pub weight: u32,
    pub headers: HeaderPolicy,
    pub host_rewrite: Option<HeaderValue>,
}

#[derive(Debug, Clone)]
pub struct WeightedClusters {
    clusters: Vec<WeightedCluster>,
    total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeightError {
    #[error("no clusters")]
    Empty,
    #[error("the sum of the weights is 0")]
    ZeroTotal,
}

impl WeightedClusters {
    /// Clusters with weight 0 are kept (they show in config dumps) but never picked.
    pub fn new(clusters: Vec<(ClusterTarget, u32)>) -> Result<Self, WeightError> {
        Self::with_settings(
            clusters
                .into_iter()
                .map(|(target, weight)| WeightedClusterSpec {
                    target,
                    weight,
                    headers: HeaderPolicy::default(),
                    host_rewrite: None,
                })
                .collect(),
        )
    }

    pub fn with_settings(clusters: Vec<WeightedClusterSpec>) -> Result<Self, WeightError> {
        if clusters.is_empty() {
            return Err(WeightError::Empty);
        }
        let mut total = 0u64;
        let clusters: Vec<_> = clusters
            .into_iter()
            .map(|c| {
                total += u64::from(c.weight);
                WeightedCluster {
                    target: c.target,
                    weight: c.weight,
                    headers: c.headers,
                    host_rewrite: c.host_rewrite,
                    end: total,
                }
            })
            .collect();
        if total == 0 {
            return Err(WeightError::ZeroTotal);
        }
        Ok(WeightedClusters { clusters, total })
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn clusters(&self) -> &[WeightedCluster] {
        &self.clusters
    }

    /// `random` should be uniform in `0..total()`; larger values are reduced modulo the total
    /// rather than rejected, so a caller's mistake skews the split instead of failing a request.
    pub fn pick(&self, random: u64) -> &ClusterTarget {
        &self.pick_cluster(random).target
    }

    /// Like [`pick`](Self::pick), with the cluster's own settings.
    pub fn pick_cluster(&self, random: u64) -> &WeightedCluster {
        let r = random % self.total;
        // The first cluster whose slice ends past `r`; zero-weight clusters have empty slices and
        // are skipped naturally. `new` guarantees `total > 0`, so the index is in bounds.
        let i = self.clusters.partition_point(|c| c.end <= r);
        &self.clusters[i.min(self.clusters.len() - 1)]
    }

    pub fn pick_random(&self) -> &WeightedCluster {
        self.pick_cluster(rand::rng().random_range(0..self.total))
    }
}
