//! Make-before-break push ordering, shared by the state-of-the-world and delta sessions.
//!
//! When the configuration changes, a proxy is sent new and changed clusters, then their
//! endpoints, then listeners, then routes, and only then the removal of clusters and
//! endpoints nothing routes to any more. Each step waits for the proxy's ACK or NACK of the
//! previous one. Waiting matters: a proxy that receives a new cluster asks for its endpoints
//! before ACKing it, so by the time routes that point at the new cluster arrive, the cluster
//! has endpoints; and a cluster the old routes still use is removed only after the new routes
//! are in place. So no request sees a missing or empty cluster during a change. A proxy that
//! never answers does not stall the push for ever: after `ACK_WAIT` the sequence moves on.

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use xds_protos::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

pub const ACK_WAIT: Duration = Duration::from_secs(5);

/// What one step of a push sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// New and changed resources; those that went away stay for now.
    Add,
    /// Exactly the current resources: those that went away are removed.
    Exact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub type_url: &'static str,
    pub phase: Phase,
}

const fn step(type_url: &'static str, phase: Phase) -> Step {
    Step { type_url, phase }
}

/// Additions before the references to them; removals after the references are gone.
const PUSH_STEPS: [Step; 6] = [
    step(CLUSTER, Phase::Add),
    step(ENDPOINT, Phase::Add),
    step(LISTENER, Phase::Exact),
    step(ROUTE, Phase::Exact),
    step(CLUSTER, Phase::Exact),
    step(ENDPOINT, Phase::Exact),
];

#[derive(Debug, Default)]
pub struct PushSequencer {
    queue: VecDeque<Step>,
    waiting: Option<(&'static str, tokio::time::Instant)>,
    /// When the config being pushed was published, to measure convergence.
    since: Option<Instant>,
}

impl PushSequencer {
    /// A new config is out: every type is due again, in order. A step already waiting for an
    /// ACK keeps waiting; the new content goes out when the sequence reaches its type.
    pub fn start(&mut self, published: Instant) {
        self.queue = PUSH_STEPS.iter().copied().collect();
        self.since = Some(published);
    }

    /// The next step, unless one is waiting for its answer.
    pub fn next_step(&mut self) -> Option<Step> {
        if self.waiting.is_some() {
            return None;
        }
        self.queue.pop_front()
    }

    /// The phase of a response sent now, outside the sequence (an answer to the proxy's
    /// request): while the push has yet to reach the step that removes what went away for
    /// this type, only additions. A proxy asks for a new cluster's endpoints in the middle of
    /// a push; removing the dropped cluster's endpoints in that answer would empty a cluster
    /// the routes not yet replaced still send to.
    pub fn phase_now(&self, type_url: &str) -> Phase {
        let removal_pending = self
            .queue
            .iter()
            .any(|s| s.type_url == type_url && s.phase == Phase::Exact);
        if removal_pending {
            Phase::Add
        } else {
            Phase::Exact
        }
    }

    pub fn wait_for(&mut self, type_url: &'static str) {
        self.waiting = Some((type_url, tokio::time::Instant::now() + ACK_WAIT));
    }

    /// The proxy answered (ACK or NACK) for `type_url`.
    pub fn answered(&mut self, type_url: &str) {
        if self.waiting.is_some_and(|(t, _)| t == type_url) {
            self.waiting = None;
        }
    }

    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.waiting.map(|(_, d)| d)
    }

    pub fn timed_out(&mut self) {
        self.waiting = None;
    }

    /// Once the whole sequence is done: when the config it pushed was published.
    pub fn take_finished(&mut self) -> Option<Instant> {
        if self.waiting.is_none() && self.queue.is_empty() {
            self.since.take()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_for_answer_before_next_type() {
        let mut s = PushSequencer::default();
        s.start(Instant::now());
        assert_eq!(s.next_step(), Some(step(CLUSTER, Phase::Add)));
        s.wait_for(CLUSTER);
        assert_eq!(s.next_step(), None);
        s.answered(ENDPOINT);
        assert_eq!(
            s.next_step(),
            None,
            "an answer for another type does not release the wait"
        );
        s.answered(CLUSTER);
        assert_eq!(s.next_step(), Some(step(ENDPOINT, Phase::Add)));
    }

    #[tokio::test(start_paused = true)]
    async fn removals_come_after_routes() {
        let mut s = PushSequencer::default();
        s.start(Instant::now());
        let steps: Vec<Step> = std::iter::from_fn(|| s.next_step()).collect();
        let route = steps.iter().position(|x| x.type_url == ROUTE).unwrap();
        let removal = steps
            .iter()
            .position(|x| x.phase == Phase::Exact && x.type_url == CLUSTER)
            .unwrap();
        assert!(route < removal, "{steps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn answers_only_add_until_the_removal_step() {
        let mut s = PushSequencer::default();
        assert_eq!(s.phase_now(ENDPOINT), Phase::Exact, "no push: exact");
        s.start(Instant::now());
        while let Some(next) = s.next_step() {
            if next == step(ENDPOINT, Phase::Exact) {
                break;
            }
            assert_eq!(s.phase_now(ENDPOINT), Phase::Add, "at {next:?}");
        }
        assert_eq!(
            s.phase_now(ENDPOINT),
            Phase::Exact,
            "the removal step is reached"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn finishes_once_queue_drained() {
        let mut s = PushSequencer::default();
        s.start(Instant::now());
        while s.next_step().is_some() {}
        assert!(s.take_finished().is_some());
        assert!(s.take_finished().is_none());
    }
}
