//! The accept loop of one listener: the global connection limit, and running out of file
//! descriptors without falling over.
//!
//! A connection past `--max-downstream-connections` is accepted and closed at once (the
//! client sees a reset rather than a hang in the backlog) and counted in
//! `downstream_global_cx_overflow`. When `accept` fails with EMFILE/ENFILE the pending
//! connection stays in the kernel's backlog; the loop backs off (doubling up to
//! [`MAX_BACKOFF`]) so it does not spin, and resumes as soon as descriptors free up. Both
//! cases log at most one line per [`crate::log_throttle::LOG_EVERY`], with how many were not logged.

use crate::context::ProxyContext;
use crate::downstream::OpenConnection;
use crate::listener_stats::ListenerStats;
use crate::log_throttle::Throttle;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

pub const MIN_BACKOFF: Duration = Duration::from_millis(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(super) struct AcceptLoop {
    pub ctx: Arc<ProxyContext>,
    pub name: Arc<str>,
    pub listener: TcpListener,
    pub stats: Arc<ListenerStats>,
}

impl AcceptLoop {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut draining = self.ctx.draining.subscribe();
        let mut overflow_log = Throttle::default();
        let mut fd_log = Throttle::default();
        let mut backoff = MIN_BACKOFF;
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = crate::http::wait_true(&mut stop) => break,
                _ = crate::http::wait_true(&mut draining) => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = MIN_BACKOFF;
                    self.stats
                        .downstream_cx_total
                        .fetch_add(1, Ordering::Relaxed);
                    let limit = self.global_limit();
                    let Some(open) = OpenConnection::try_open(&self.ctx, limit) else {
                        self.stats
                            .downstream_global_cx_overflow
                            .fetch_add(1, Ordering::Relaxed);
                        if let Some(skipped) = overflow_log.allow() {
                            warn!(
                                listener = %self.name, %peer, limit, not_logged = skipped,
                                "connection refused: --max-downstream-connections reached \
                                 (counted in downstream_global_cx_overflow)"
                            );
                        }
                        drop(stream);
                        continue;
                    };
                    tokio::spawn(super::serve_accepted(open, self.name.clone(), stream, peer));
                }
                Err(e) => {
                    let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                    if let Some(skipped) = fd_log.allow() {
                        if out_of_fds {
                            warn!(
                                listener = %self.name, error = %e, not_logged = skipped,
                                open_connections = self.ctx.open_connections.load(Ordering::Relaxed),
                                backoff_ms = backoff.as_millis() as u64,
                                "out of file descriptors: cannot accept, backing off \
                                 (raise the open-file limit or set --max-downstream-connections)"
                            );
                        } else {
                            warn!(listener = %self.name, error = %e, not_logged = skipped, "accept failed, backing off");
                        }
                    } else {
                        debug!(listener = %self.name, error = %e, "accept failed");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = crate::http::wait_true(&mut stop) => break,
                        _ = crate::http::wait_true(&mut draining) => break,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

impl AcceptLoop {
    /// `--max-downstream-connections`, unless the listener's current config opts out with
    /// `ignore_global_conn_limit` (read per accept, so an LDS update applies at once).
    fn global_limit(&self) -> usize {
        let ignore = self
            .ctx
            .snapshot
            .load()
            .listeners
            .get(&*self.name)
            .is_some_and(|l| l.ignore_global_conn_limit);
        if ignore {
            usize::MAX
        } else {
            self.ctx.max_downstream_connections.load(Ordering::Relaxed)
        }
    }
}
