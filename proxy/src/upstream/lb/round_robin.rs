//! Round robin: hosts in turn, or with unequal weights a smooth weighted schedule.
//!
//! Envoy runs an earliest-deadline-first scheduler for weighted round robin, which needs a
//! mutable priority queue per worker. Here all workers share one atomic position, so the
//! schedule must be a pure function of it: position `n` maps to the point
//! `(n * step) mod total` on the line of cumulative weights, with `step` coprime to `total`
//! and close to `total / golden ratio`. Over each cycle of `total` picks every host gets
//! exactly its weight, and the golden-ratio stride spreads each host's picks evenly across
//! the cycle (no run of picks to one heavy host, as a plain stride over cumulative weights
//! would give). Slow start is layered on top by thinning: a ramping host's turn is kept with
//! probability `factor / largest factor`, which gives each host a share proportional to
//! `weight * factor`.

use super::slow_start::SlowStartHosts;
use super::weights::CumulativeWeights;
use super::Host;
use crate::config::SlowStart;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Turns given up on a ramping host before the last one is taken anyway; with factors of at
/// least `min_weight` this is reached with negligible probability.
const MAX_SLOW_START_TRIES: usize = 32;

pub(super) struct RoundRobin {
    len: usize,
    /// `None` when all weights are equal.
    schedule: Option<Schedule>,
    slow_start: Option<SlowStartHosts>,
}

impl RoundRobin {
    pub(super) fn new(hosts: &[Arc<Host>], slow_start: Option<SlowStart>) -> RoundRobin {
        RoundRobin {
            len: hosts.len(),
            schedule: Schedule::new(hosts),
            slow_start: SlowStartHosts::new(slow_start, hosts),
        }
    }

    pub(super) fn pick(&self, next: &AtomicUsize, hosts: &[Arc<Host>]) -> usize {
        let Some((ss, now)) = self
            .slow_start
            .as_ref()
            .and_then(|ss| ss.ramping_now().map(|now| (ss, now)))
        else {
            return self.turn(next);
        };
        let largest = ss.max_factor(now);
        let mut index = self.turn(next);
        for _ in 1..MAX_SLOW_START_TRIES {
            if rand::random::<f64>() * largest < ss.factor(&hosts[index], now) {
                break;
            }
            index = self.turn(next);
        }
        index
    }

    fn turn(&self, next: &AtomicUsize) -> usize {
        let n = next.fetch_add(1, Ordering::Relaxed) as u64;
        match &self.schedule {
            None => (n % self.len as u64) as usize,
            Some(s) => s.at(n),
        }
    }
}

/// Smooth weighted order, see the module note.
pub(super) struct Schedule {
    weights: CumulativeWeights,
    step: u64,
}

impl Schedule {
    /// `None` when all weights are equal.
    pub(super) fn new(hosts: &[Arc<Host>]) -> Option<Schedule> {
        CumulativeWeights::unequal(hosts)?;
        // Dividing by the common factor shortens the cycle without changing the shares.
        let g = hosts.iter().fold(0, |g, h| gcd(g, u64::from(h.weight)));
        let weights = CumulativeWeights::new(hosts.iter().map(|h| u64::from(h.weight) / g));
        let total = weights.total();
        let mut step = ((total as f64) * 0.618_033_988_749_894_9).round().max(1.0) as u64;
        while gcd(step, total) != 1 {
            step = step % total + 1;
        }
        Some(Schedule { weights, step })
    }

    pub(super) fn at(&self, n: u64) -> usize {
        let total = self.weights.total();
        let point = (u128::from(n % total) * u128::from(self.step) % u128::from(total)) as u64;
        self.weights.find(point)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests;
