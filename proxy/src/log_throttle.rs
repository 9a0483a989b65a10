//! At most one log line per period for events that can come in floods (connections refused
//! for a limit, accept failures), with a count of the lines left out.

use std::time::Duration;
use tokio::time::Instant;

/// How often a flood of the same event may log.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// At most one log line per [`LOG_EVERY`].
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Instant>,
    skipped: u64,
}

impl Throttle {
    /// `Some(lines skipped since the last one)` when a line may be logged now.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + LOG_EVERY) {
            self.skipped += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_throttle_lets_one_line_through_per_period_and_counts_the_rest() {
        let mut t = Throttle::default();
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        tokio::time::sleep(LOG_EVERY).await;
        assert_eq!(t.allow(), Some(2));
        assert_eq!(t.allow(), None);
    }
}
