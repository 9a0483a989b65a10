//! Weighted random: each pick lands on a host with probability weight / total weight.

use super::weights::CumulativeWeights;
use super::Host;
use rand::Rng;
use std::sync::Arc;

pub(super) struct WeightedRandom {
    len: usize,
    /// `None` when all weights are equal.
    weights: Option<CumulativeWeights>,
}

impl WeightedRandom {
    pub(super) fn new(hosts: &[Arc<Host>]) -> WeightedRandom {
        WeightedRandom {
            len: hosts.len(),
            weights: CumulativeWeights::unequal(hosts),
        }
    }

    pub(super) fn pick(&self) -> usize {
        let mut rng = rand::rng();
        match &self.weights {
            None => rng.random_range(0..self.len),
            Some(w) => w.find(rng.random_range(0..w.total())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_binomial, counts, hosts};
    use super::super::{Balancer, LbState};
    use crate::config::LbPolicy;

    #[test]
    fn picks_follow_the_weights() {
        let hs = hosts(&[1, 3, 6]);
        let b = Balancer::build(&LbPolicy::Random, 50.0, &hs);
        let n = 20_000;
        let c = counts(&b, &LbState::default(), n, |_| None);
        assert_binomial(c[0], n, 0.1);
        assert_binomial(c[1], n, 0.3);
        assert_binomial(c[2], n, 0.6);
    }

    #[test]
    fn equal_weights_are_uniform() {
        let hs = hosts(&[2, 2, 2, 2]);
        let b = Balancer::build(&LbPolicy::Random, 50.0, &hs);
        let n = 20_000;
        for c in counts(&b, &LbState::default(), n, |_| None) {
            assert_binomial(c, n, 0.25);
        }
    }
}
