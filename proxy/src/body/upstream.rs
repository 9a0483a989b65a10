//! An upstream response body on its way downstream, with what must last until its end:
//!
//! - the HTTP/1.1 connection it arrived on, returned to the pool at end of stream;
//! - the host's in-flight count (least-request balancing counts a request until its body ends,
//!   not its headers);
//! - the route's timers: what is left of the route timeout, and the stream idle timeout. When
//!   one fires the body fails, which resets the downstream stream (HTTP/2) or closes the
//!   connection (HTTP/1.1) — the response has already begun, so no status can say it.

use super::ConnectionReturn;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamBodyError {
    #[error("upstream response body: {0}")]
    Upstream(#[from] hyper::Error),
    #[error("upstream request timeout")]
    Timeout,
    #[error("stream idle timeout")]
    Idle,
}

/// Counts one request in flight on a host until dropped, and optionally on a second counter
/// (the cluster's, for its `max_requests` circuit breaker).
pub struct InFlight(Arc<AtomicU64>, Option<Arc<AtomicU64>>);

impl InFlight {
    pub fn start(counter: &Arc<AtomicU64>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter.clone(), None)
    }

    /// Also holds `slot`, already counted by the caller, until dropped.
    pub fn with_slot(mut self, slot: Arc<AtomicU64>) -> Self {
        self.1 = Some(slot);
        self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        if let Some(s) = &self.1 {
            s.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

pub struct UpstreamBody {
    body: Incoming,
    connection: Option<ConnectionReturn>,
    in_flight: Option<InFlight>,
    /// The route timeout's deadline.
    deadline: Option<Instant>,
    /// The stream idle timeout.
    idle: Option<Duration>,
    /// One timer for both, armed only when the body first has to wait: a response that is
    /// already complete when it is read (most of them) costs no timer at all.
    timer: Option<Pin<Box<Sleep>>>,
    /// A frame arrived since the timer was set: its idle part must start again.
    moved: bool,
}

impl UpstreamBody {
    pub fn new(body: Incoming, connection: Option<ConnectionReturn>) -> Self {
        let mut this = UpstreamBody {
            body,
            connection,
            in_flight: None,
            deadline: None,
            idle: None,
            timer: None,
            moved: false,
        };
        if this.body.is_end_stream() {
            this.finish();
        }
        this
    }

    pub fn count_in_flight(&mut self, in_flight: InFlight) {
        if !self.body.is_end_stream() {
            self.in_flight = Some(in_flight);
        }
    }

    /// Fails the body if it has not ended by `deadline`.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// Fails the body if no frame arrives for `idle`.
    pub fn set_idle_timeout(&mut self, idle: Duration) {
        self.idle = Some(idle);
    }

    /// When the body must have moved again: the idle timeout from now, or the deadline.
    fn next_wake(&self) -> Option<Instant> {
        let idle = self.idle.map(|i| Instant::now() + i);
        match (idle, self.deadline) {
            (Some(i), Some(d)) => Some(i.min(d)),
            (i, d) => i.or(d),
        }
    }

    /// The body ended cleanly: the connection may be reused, the request no longer counts.
    fn finish(&mut self) {
        if let Some(c) = self.connection.take() {
            c.release();
        }
        self.in_flight = None;
        self.deadline = None;
        self.idle = None;
        self.timer = None;
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if this.body.is_end_stream() {
                    this.finish();
                } else {
                    // Progress: the idle clock starts again (re-armed when next needed).
                    this.moved = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // A connection that failed mid-body is not reused.
                this.connection = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => {
                let wake = if this.timer.is_none() || this.moved {
                    this.next_wake()
                } else {
                    None
                };
                this.moved = false;
                match (&mut this.timer, wake) {
                    (Some(timer), Some(at)) => timer.as_mut().reset(at),
                    (None, Some(at)) => this.timer = Some(Box::pin(tokio::time::sleep_until(at))),
                    (None, None) => return Poll::Pending,
                    (Some(_), None) => {}
                }
                let Some(timer) = &mut this.timer else {
                    return Poll::Pending;
                };
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.connection = None;
                let timed_out = this.deadline.is_some_and(|d| Instant::now() >= d);
                Poll::Ready(Some(Err(if timed_out {
                    UpstreamBodyError::Timeout
                } else {
                    UpstreamBodyError::Idle
                })))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
