//! Slow start: a host new to the cluster takes a growing share of traffic over the window.
//!
//! Envoy scales the weight of a host whose cluster membership is younger than the window by
//! `max(min_weight, time_factor ^ (1 / aggression))`, with
//! `time_factor = max(age_in_seconds, 1) / window_in_seconds`. A host's age runs from when it
//! joined the cluster, which reloads carry over (see `Cluster::build`), so re-sending the same
//! endpoints does not restart the ramp. When every host is new (a new cluster, a new
//! deployment) they all ramp together and their relative shares do not change, as in Envoy.

use super::Host;
use crate::config::SlowStart;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The weight factor of a host of age `age` (1.0 once out of the window).
pub fn weight_factor(config: &SlowStart, age: Duration) -> f64 {
    if age >= config.window {
        return 1.0;
    }
    let time_factor = age.as_secs_f64().max(1.0) / config.window.as_secs_f64();
    let aggression = config.aggression.get();
    let ramp = if aggression == 1.0 {
        time_factor
    } else {
        time_factor.powf(1.0 / aggression)
    };
    ramp.max(config.min_weight.get()).min(1.0)
}

/// Slow start over one balancer's hosts.
pub(super) struct SlowStartHosts {
    config: SlowStart,
    /// When the youngest host leaves the window; no host ramps after that.
    ends: Instant,
    /// When the oldest host joined: its factor is the largest at any time.
    oldest: Instant,
    /// Set once `ends` has passed, so picks stop reading the clock.
    over: AtomicBool,
}

impl SlowStartHosts {
    /// `None` when there is no slow start or no host is (or will be) in its window.
    pub(super) fn new(config: Option<SlowStart>, hosts: &[Arc<Host>]) -> Option<SlowStartHosts> {
        let config = config?;
        let youngest = hosts.iter().map(|h| h.joined()).max()?;
        let oldest = hosts.iter().map(|h| h.joined()).min()?;
        let ends = youngest + config.window;
        (Instant::now() < ends).then(|| SlowStartHosts {
            config,
            ends,
            oldest,
            over: AtomicBool::new(false),
        })
    }

    /// The current time while some host is still ramping, else `None`.
    pub(super) fn ramping_now(&self) -> Option<Instant> {
        if self.over.load(Ordering::Relaxed) {
            return None;
        }
        let now = Instant::now();
        if now >= self.ends {
            self.over.store(true, Ordering::Relaxed);
            return None;
        }
        Some(now)
    }

    pub(super) fn factor(&self, host: &Host, now: Instant) -> f64 {
        weight_factor(&self.config, now.saturating_duration_since(host.joined()))
    }

    /// The largest factor of any host at `now`, which is the oldest host's.
    pub(super) fn max_factor(&self, now: Instant) -> f64 {
        weight_factor(&self.config, now.saturating_duration_since(self.oldest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Finite;

    fn config(window_s: u64, aggression: f64, min_weight: f64) -> SlowStart {
        SlowStart {
            window: Duration::from_secs(window_s),
            aggression: Finite::new(aggression).expect("finite"),
            min_weight: Finite::new(min_weight).expect("finite"),
        }
    }

    #[test]
    fn linear_ramp_with_the_default_aggression() {
        let c = config(100, 1.0, 0.1);
        assert_eq!(weight_factor(&c, Duration::from_secs(50)), 0.5);
        assert_eq!(weight_factor(&c, Duration::from_secs(99)), 0.99);
        assert_eq!(weight_factor(&c, Duration::from_secs(100)), 1.0);
        assert_eq!(weight_factor(&c, Duration::from_secs(1000)), 1.0);
    }

    #[test]
    fn min_weight_is_the_floor_and_the_first_second_counts_as_one() {
        let c = config(100, 1.0, 0.1);
        assert_eq!(weight_factor(&c, Duration::ZERO), 0.1);
        assert_eq!(weight_factor(&c, Duration::from_secs(5)), 0.1);
        let c = config(10, 1.0, 0.0);
        // max(age, 1s) / window: a brand new host starts at 1/10, not 0.
        assert_eq!(weight_factor(&c, Duration::ZERO), 0.1);
    }

    #[test]
    fn aggression_bends_the_ramp() {
        // (0.25)^(1/2) = 0.5: a higher aggression ramps up faster early on.
        let c = config(100, 2.0, 0.0);
        assert!((weight_factor(&c, Duration::from_secs(25)) - 0.5).abs() < 1e-12);
        let c = config(100, 0.5, 0.0);
        assert!((weight_factor(&c, Duration::from_secs(50)) - 0.25).abs() < 1e-12);
    }
}
