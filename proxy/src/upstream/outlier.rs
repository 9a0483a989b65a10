//! Outlier detection: hosts that keep failing are ejected from balancing for a while.
//!
//! Split in two, so that the request path never waits on a decision:
//! - on the request path, each try's outcome bumps or clears the host's consecutive-failure
//!   counters (atomics in [`HostOutlier`]); the one report that reaches a threshold is sent
//!   over a bounded channel to the cluster's detector task (a full channel drops the report and
//!   counts it: the next failure past the threshold cannot re-report, but a success resets the
//!   counter and the run starts over);
//! - the detector task decides: it rolls the `enforcing_*` percentage, checks
//!   `max_ejection_percent`, ejects for `base_ejection_time × times ejected` (capped by
//!   `max_ejection_time`), logs, and builds the balancer anew over the hosts still available,
//!   which the cluster then picks from. Every `interval` it returns hosts whose ejection is
//!   over, and lowers the multiplier of hosts that stayed in for a whole interval.
//!
//! Counting is Envoy's: a 5xx bumps `consecutive_5xx`, a 502/503/504 also bumps
//! `consecutive_gateway_failure` (another 5xx clears it), anything below 500 clears both.
//! Locally originated failures (connect failure, reset, timeout) count as 503 or 504 unless
//! `split_external_local_origin_errors`, in which case they count apart, in
//! `consecutive_local_origin_failure`, and any response clears that counter.
//!
//! Ejection state lives with the host (across reloads, like its request counter); the task
//! belongs to the cluster and ends when the last snapshot holding the cluster is gone.

use super::lb::Balancer;
use super::stats::ClusterStats;
use super::Host;
use crate::config::{LbPolicy, OutlierDetection};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

/// Reports waiting for the detector task; more are dropped (and counted).
const QUEUE: usize = 1024;

/// One host's outlier state, shared by its incarnations across reloads.
#[derive(Default)]
pub struct HostOutlier {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    ejected: AtomicBool,
    /// Written by the detector task only; read by the admin page.
    ejection: Mutex<Ejection>,
}

/// What the detector knows of a host's ejections.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ejection {
    pub times: u32,
    pub until: Option<Instant>,
    pub reason: Option<Reason>,
    /// When it last came back (or was last seen in), for lowering the multiplier.
    returned: Option<Instant>,
}

impl HostOutlier {
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    pub fn ejection(&self) -> Ejection {
        *lock(&self.ejection)
    }

    /// Takes the host back in at once (outlier detection was switched off).
    pub(super) fn clear(&self) {
        self.ejected.store(false, Ordering::Relaxed);
        *lock(&self.ejection) = Ejection::default();
    }

    fn reset_counters(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
        self.consecutive_local.store(0, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    ConsecutiveLocalOriginFailure,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Consecutive5xx => "consecutive_5xx",
            Reason::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Reason::ConsecutiveLocalOriginFailure => "consecutive_local_origin_failure",
        }
    }
}

/// How one try with a host ended, as outlier detection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryOutcome {
    /// The host answered with this status.
    Status(u16),
    /// The connection could not be made, or was reset before a response.
    LocalFailure,
    /// No response in time.
    LocalTimeout,
}

/// The hosts a cluster build balances over, and where its balancer is published.
pub struct Members {
    pub hosts: Vec<Arc<Host>>,
    pub policy: LbPolicy,
    pub panic_threshold: f64,
    pub slot: Arc<ArcSwap<Balancer>>,
    /// The ejection generation the published balancer reflects.
    pub built_generation: AtomicU64,
}

struct Shared {
    cluster: Arc<str>,
    config: OutlierDetection,
    stats: Arc<ClusterStats>,
    members: ArcSwap<Members>,
    /// Bumped at each ejection and return.
    generation: AtomicU64,
}

/// A cluster's outlier detector: the request path's handle on its task.
pub struct Detector {
    tx: mpsc::Sender<Report>,
    shared: Arc<Shared>,
}

struct Report {
    host: Arc<Host>,
    reason: Reason,
}

impl Detector {
    /// Starts the detector task on the current Tokio runtime; `None` outside one.
    pub fn start(
        cluster: Arc<str>,
        config: OutlierDetection,
        stats: Arc<ClusterStats>,
        members: Arc<Members>,
    ) -> Option<Arc<Detector>> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            cluster,
            config,
            stats,
            members: ArcSwap::new(members),
            generation: AtomicU64::new(0),
        });
        handle.spawn(run(shared.clone(), rx));
        Some(Arc::new(Detector { tx, shared }))
    }

    pub fn config(&self) -> &OutlierDetection {
        &self.shared.config
    }

    /// The ejection generation: a balancer built at an older one may list ejected hosts.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// A new cluster build's hosts and balancer slot.
    pub fn set_members(&self, members: Arc<Members>) {
        self.shared.members.store(members);
    }

    /// Counts one try's outcome for `host`. Atomics only; never waits.
    pub fn report(&self, host: &Arc<Host>, outcome: TryOutcome) {
        let c = &self.shared.config;
        let o = &host.outlier;
        let split = c.split_external_local_origin_errors;
        let status = match outcome {
            TryOutcome::Status(s) => {
                if split {
                    o.consecutive_local.store(0, Ordering::Relaxed);
                }
                s
            }
            TryOutcome::LocalFailure | TryOutcome::LocalTimeout if split => {
                self.bump(
                    host,
                    &o.consecutive_local,
                    c.consecutive_local_origin_failure,
                    Reason::ConsecutiveLocalOriginFailure,
                );
                return;
            }
            TryOutcome::LocalFailure => 503,
            TryOutcome::LocalTimeout => 504,
        };
        if status >= 500 {
            if matches!(status, 502..=504) {
                self.bump(
                    host,
                    &o.consecutive_gateway,
                    c.consecutive_gateway_failure,
                    Reason::ConsecutiveGatewayFailure,
                );
            } else {
                o.consecutive_gateway.store(0, Ordering::Relaxed);
            }
            self.bump(
                host,
                &o.consecutive_5xx,
                c.consecutive_5xx,
                Reason::Consecutive5xx,
            );
        } else {
            o.consecutive_5xx.store(0, Ordering::Relaxed);
            o.consecutive_gateway.store(0, Ordering::Relaxed);
        }
    }

    fn bump(&self, host: &Arc<Host>, counter: &AtomicU32, threshold: u32, reason: Reason) {
        // Only the failure that reaches the threshold reports; the task resets the counter.
        if threshold > 0 && counter.fetch_add(1, Ordering::Relaxed) + 1 == threshold {
            let report = Report {
                host: host.clone(),
                reason,
            };
            if self.tx.try_send(report).is_err() {
                self.shared
                    .stats
                    .outlier_reports_dropped
                    .fetch_add(1, Ordering::Relaxed);
                counter.store(0, Ordering::Relaxed);
            }
        }
    }
}

async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Report>) {
    let mut tick = tokio::time::interval(shared.config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            report = rx.recv() => match report {
                Some(r) => shared.on_report(r),
                None => return,
            },
            _ = tick.tick() => shared.sweep(),
        }
    }
}

impl Shared {
    fn on_report(&self, r: Report) {
        let o = &r.host.outlier;
        let counter = match r.reason {
            Reason::Consecutive5xx => &o.consecutive_5xx,
            Reason::ConsecutiveGatewayFailure => &o.consecutive_gateway,
            Reason::ConsecutiveLocalOriginFailure => &o.consecutive_local,
        };
        counter.store(0, Ordering::Relaxed);
        if o.is_ejected() {
            return;
        }
        let members = self.members.load();
        if !members
            .hosts
            .iter()
            .any(|h| Arc::ptr_eq(&h.outlier, &r.host.outlier))
        {
            return; // Removed from the cluster since.
        }
        let c = &self.config;
        let s = &self.stats;
        let (enforcing, detected, enforced) = match r.reason {
            Reason::Consecutive5xx => (
                c.enforcing_consecutive_5xx,
                &s.ejections_detected_consecutive_5xx,
                &s.ejections_enforced_consecutive_5xx,
            ),
            Reason::ConsecutiveGatewayFailure => (
                c.enforcing_consecutive_gateway_failure,
                &s.ejections_detected_consecutive_gateway_failure,
                &s.ejections_enforced_consecutive_gateway_failure,
            ),
            Reason::ConsecutiveLocalOriginFailure => (
                c.enforcing_consecutive_local_origin_failure,
                &s.ejections_detected_consecutive_local_origin_failure,
                &s.ejections_enforced_consecutive_local_origin_failure,
            ),
        };
        detected.fetch_add(1, Ordering::Relaxed);
        if rand::random::<u32>() % 100 >= enforcing {
            return;
        }
        let total = members.hosts.len();
        let ejected = members.hosts.iter().filter(|h| h.is_ejected()).count();
        // Envoy: the ejection may not take the ejected share past the maximum.
        if 100 * (ejected + 1) > c.max_ejection_percent as usize * total {
            s.ejections_overflow.fetch_add(1, Ordering::Relaxed);
            warn!(cluster = %self.cluster, host = %r.host.address(), reason = r.reason.as_str(),
                "outlier detection: host not ejected, max_ejection_percent reached");
            return;
        }
        let now = Instant::now();
        let duration = {
            let mut e = lock(&o.ejection);
            e.times += 1;
            let jitter = c.max_ejection_time_jitter.mul_f64(rand::random::<f64>());
            let d = ejection_time(c, e.times) + jitter;
            e.until = Some(now + d);
            e.reason = Some(r.reason);
            d
        };
        o.ejected.store(true, Ordering::Relaxed);
        s.ejections_enforced_total.fetch_add(1, Ordering::Relaxed);
        enforced.fetch_add(1, Ordering::Relaxed);
        warn!(cluster = %self.cluster, host = %r.host.address(), reason = r.reason.as_str(),
            ejection = ?duration, "outlier detection: host ejected");
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.publish(&members);
    }

    /// Returns hosts whose ejection is over, lowers multipliers, and republishes the balancer
    /// if anything changed since it was built.
    fn sweep(&self) {
        let members = self.members.load();
        let now = Instant::now();
        let interval = self.config.interval;
        for h in &members.hosts {
            let o = &h.outlier;
            let mut e = lock(&o.ejection);
            if o.is_ejected() {
                if e.until.is_some_and(|u| now >= u) {
                    o.reset_counters();
                    o.ejected.store(false, Ordering::Relaxed);
                    e.until = None;
                    e.returned = Some(now);
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    info!(cluster = %self.cluster, host = %h.address(),
                        reason = e.reason.map_or("", Reason::as_str),
                        "outlier detection: host returned to service");
                }
            } else if e.times > 0 && e.returned.is_none_or(|r| now >= r + interval) {
                // A whole interval in service: the next ejection is shorter.
                e.times -= 1;
                e.returned = Some(now);
            }
        }
        if members.built_generation.load(Ordering::Acquire)
            != self.generation.load(Ordering::Acquire)
        {
            self.publish(&members);
        }
    }

    fn publish(&self, m: &Members) {
        let generation = self.generation.load(Ordering::Acquire);
        m.slot.store(Arc::new(Balancer::build(
            &m.policy,
            m.panic_threshold,
            &m.hosts,
        )));
        m.built_generation.store(generation, Ordering::Release);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Envoy's ejection time for the `times`-th ejection, without jitter.
pub fn ejection_time(config: &OutlierDetection, times: u32) -> Duration {
    config
        .base_ejection_time
        .saturating_mul(times)
        .min(config.max_ejection_time)
}

#[cfg(test)]
mod tests;
