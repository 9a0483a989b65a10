//! Least request, as Envoy does it.
//!
//! - All weights equal (and no host ramping up): sample `choice_count` hosts at random (with
//!   replacement) and take the one with the fewest requests in flight; ties go to the first
//!   sampled. With the default of 2 this is the power of two choices.
//! - Unequal weights: each host's weight becomes `weight / (active + 1) ^ active_request_bias`
//!   at pick time. Envoy feeds these into its EDF scheduler; here the pick is weighted random
//!   over the same dynamic weights, which gives the same shares without a shared mutable
//!   queue. It is done by rejection first: draw a host by its static weight (binary search)
//!   and keep it with probability `1 / (active + 1) ^ bias` (times its slow start factor),
//!   which is exactly the dynamic weight's distribution; when load makes a few draws in a row
//!   fail, one scan of every host's counter (O(hosts)) draws from the same distribution. No
//!   lock, no allocation. With a bias of 0 the
//!   weights do not depend on load and Envoy behaves as weighted round robin, and so does this.
//! - Slow start multiplies the weight by the host's ramp factor, which also makes equal
//!   weights unequal while a host ramps (as in Envoy).

use super::round_robin::Schedule;
use super::slow_start::SlowStartHosts;
use super::weights::CumulativeWeights;
use super::Host;
use crate::config;
use rand::Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

pub(super) struct LeastRequest {
    choice_count: u32,
    bias: f64,
    /// `None` when all weights are equal.
    schedule: Option<Schedule>,
    /// `None` when all weights are equal.
    static_weights: Option<CumulativeWeights>,
    slow_start: Option<SlowStartHosts>,
}

impl LeastRequest {
    pub(super) fn new(hosts: &[Arc<Host>], cfg: &config::LeastRequest) -> LeastRequest {
        LeastRequest {
            choice_count: cfg.choice_count,
            bias: cfg.active_request_bias.get(),
            schedule: Schedule::new(hosts),
            static_weights: CumulativeWeights::unequal(hosts),
            slow_start: SlowStartHosts::new(cfg.slow_start.clone(), hosts),
        }
    }

    pub(super) fn pick(&self, next: &AtomicUsize, hosts: &[Arc<Host>]) -> usize {
        let ramping = self
            .slow_start
            .as_ref()
            .and_then(|ss| ss.ramping_now().map(|now| (ss, now)));
        match (&self.schedule, ramping) {
            (None, None) => self.choose_among_random(hosts),
            (Some(schedule), None) if self.bias == 0.0 => {
                schedule.at(next.fetch_add(1, Ordering::Relaxed) as u64)
            }
            (_, ramping) => self.weighted(hosts, ramping),
        }
    }

    fn choose_among_random(&self, hosts: &[Arc<Host>]) -> usize {
        let mut rng = rand::rng();
        let mut best = rng.random_range(0..hosts.len());
        let mut best_active = hosts[best].active_requests();
        for _ in 1..self.choice_count {
            let candidate = rng.random_range(0..hosts.len());
            let active = hosts[candidate].active_requests();
            if active < best_active {
                best = candidate;
                best_active = active;
            }
        }
        best
    }

    fn weighted(&self, hosts: &[Arc<Host>], ramping: Option<(&SlowStartHosts, Instant)>) -> usize {
        // The dynamic weight over the static one; at most 1.
        let keep = |h: &Host| {
            let mut p = 1.0;
            if let Some((ss, now)) = ramping {
                p *= ss.factor(h, now);
            }
            let load = h.active_requests() as f64 + 1.0;
            if self.bias == 1.0 {
                p / load
            } else if self.bias == 0.0 {
                p
            } else {
                p / load.powf(self.bias)
            }
        };
        let mut rng = rand::rng();
        for _ in 0..REJECTION_TRIES {
            let i = match &self.static_weights {
                None => rng.random_range(0..hosts.len()),
                Some(w) => w.find(rng.random_range(0..w.total())),
            };
            if rng.random::<f64>() < keep(&hosts[i]) {
                return i;
            }
        }
        let weight = |h: &Host| f64::from(h.weight) * keep(h);
        let target = |total: f64| rand::random::<f64>() * total;
        if hosts.len() <= SCAN_BUFFER {
            // One pass over the hosts' counters, so the choice is made on one set of values.
            let mut weights = [0f64; SCAN_BUFFER];
            let mut total = 0.0;
            for (w, h) in weights.iter_mut().zip(hosts) {
                *w = weight(h);
                total += *w;
            }
            return choose(weights[..hosts.len()].iter().copied(), target(total));
        }
        // Counts may move between the two passes; `choose` gives any difference to the last
        // host.
        let total: f64 = hosts.iter().map(|h| weight(h)).sum();
        choose(hosts.iter().map(|h| weight(h)), target(total))
    }
}

/// Draws by static weight before falling back to a scan of all hosts.
const REJECTION_TRIES: usize = 4;

/// Clusters up to this size keep their dynamic weights on the stack during a pick.
const SCAN_BUFFER: usize = 128;

/// The index whose share of the running sum of `weights` covers `point`.
fn choose(weights: impl ExactSizeIterator<Item = f64>, mut point: f64) -> usize {
    let last = weights.len().saturating_sub(1);
    for (i, w) in weights.enumerate() {
        point -= w;
        if point < 0.0 {
            return i;
        }
    }
    last
}

#[cfg(test)]
mod tests;
