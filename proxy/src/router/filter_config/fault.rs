//! Envoy's fault filter (`HTTPFault`), compiled: an optional delay and an optional abort,
//! each applied to its own fraction of requests, decided by independent draws.

use crate::router::Fraction;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultDelay {
    pub duration: Duration,
    pub fraction: Fraction,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultAbort {
    pub kind: AbortKind,
    pub fraction: Fraction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortKind {
    /// Answer with this HTTP status.
    Http(u16),
    /// Answer `200` with this `grpc-status`.
    Grpc(u32),
}

/// What the filter does to one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultDecision {
    pub delay: Option<Duration>,
    pub abort: Option<AbortKind>,
}

impl FaultConfig {
    pub fn is_empty(&self) -> bool {
        self.delay.is_none() && self.abort.is_none()
    }

    /// The decision for draws uniform in `0..MILLION`.
    pub fn decide(&self, delay_draw: u32, abort_draw: u32) -> FaultDecision {
        FaultDecision {
            delay: self
                .delay
                .as_ref()
                .filter(|d| d.fraction.hits(delay_draw))
                .map(|d| d.duration),
            abort: self
                .abort
                .as_ref()
                .filter(|a| a.fraction.hits(abort_draw))
                .map(|a| a.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_and_abort_use_their_own_draws() {
        let config = FaultConfig {
            delay: Some(FaultDelay {
                duration: Duration::from_secs(7),
                fraction: Fraction::new(10, 100),
            }),
            abort: Some(FaultAbort {
                kind: AbortKind::Http(500),
                fraction: Fraction::new(50, 100),
            }),
        };
        assert_eq!(
            config.decide(99_999, 499_999),
            FaultDecision {
                delay: Some(Duration::from_secs(7)),
                abort: Some(AbortKind::Http(500))
            }
        );
        assert_eq!(config.decide(100_000, 500_000), FaultDecision::default());
        assert_eq!(config.decide(100_000, 0).abort, Some(AbortKind::Http(500)));
    }
}
