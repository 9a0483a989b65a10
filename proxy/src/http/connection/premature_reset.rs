//! Envoy's defence against streams reset before they are answered, the slow cousin of HTTP/2
//! rapid reset: a client that waits until each stream has been accepted (so h2's cap on reset
//! streams in the accept queue never fills) and only then resets it still makes the proxy
//! start an upstream exchange per stream for nothing.
//!
//! Envoy's rule, with its defaults: a stream is reset prematurely when the client ends it less
//! than [`MIN_STREAM_LIFETIME`] after it started; once [`TOTAL_STREAM_COUNT`] streams have
//! closed, the connection is closed when at least half of them were premature; before that,
//! as soon as half of [`TOTAL_STREAM_COUNT`] were. Here "reset before answered" means the
//! request's future was dropped before it produced a response: only a client reset or a closed
//! connection does that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Envoy's `overload.premature_reset_min_stream_lifetime_seconds`.
pub const MIN_STREAM_LIFETIME: Duration = Duration::from_secs(1);
/// Envoy's `overload.premature_reset_total_stream_count`.
pub const TOTAL_STREAM_COUNT: u64 = 500;

#[derive(Debug, Default)]
pub struct PrematureResets {
    closed: AtomicU64,
    premature: AtomicU64,
}

impl PrematureResets {
    /// Records a closed stream; true when the connection has now earned closing.
    pub fn record(&self, premature: bool) -> bool {
        let closed = self.closed.fetch_add(1, Ordering::Relaxed) + 1;
        let premature = if premature {
            self.premature.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.premature.load(Ordering::Relaxed)
        };
        if closed < TOTAL_STREAM_COUNT {
            premature >= TOTAL_STREAM_COUNT / 2
        } else {
            premature * 2 >= closed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_threshold_in_premature_resets_trips_early() {
        let p = PrematureResets::default();
        for _ in 0..TOTAL_STREAM_COUNT / 2 - 1 {
            assert!(!p.record(true));
        }
        assert!(p.record(true));
    }

    #[test]
    fn past_the_threshold_the_share_decides() {
        let p = PrematureResets::default();
        // Plenty of well-behaved streams first: then resets trip only at half of all.
        for _ in 0..TOTAL_STREAM_COUNT {
            assert!(!p.record(false));
        }
        for _ in 0..TOTAL_STREAM_COUNT - 1 {
            assert!(!p.record(true));
        }
        // 500 premature of 1000 closed.
        assert!(p.record(true));
    }

    #[test]
    fn a_client_that_answers_normally_never_trips() {
        let p = PrematureResets::default();
        for i in 0..10 * TOTAL_STREAM_COUNT {
            // One reset in ten.
            assert!(!p.record(i % 10 == 0));
        }
    }
}
