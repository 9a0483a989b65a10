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
    /// The route timeout's deadline; boxed only when there is one.
    deadline: Option<Pin<Box<Sleep>>>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl UpstreamBody {
    pub fn new(body: Incoming, connection: Option<ConnectionReturn>) -> Self {
        let mut this = UpstreamBody {
            body,
            connection,
            in_flight: None,
            deadline: None,
            idle: None,
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
        self.deadline = Some(Box::pin(tokio::time::sleep_until(deadline)));
    }

    /// Fails the body if no frame arrives for `idle`.
    pub fn set_idle_timeout(&mut self, idle: Duration) {
        self.idle = Some((idle, Box::pin(tokio::time::sleep(idle))));
    }

    /// The body ended cleanly: the connection may be reused, the request no longer counts.
    fn finish(&mut self) {
        if let Some(c) = self.connection.take() {
            c.release();
        }
        self.in_flight = None;
        self.deadline = None;
        self.idle = None;
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
                } else if let Some((idle, sleep)) = &mut this.idle {
                    sleep.as_mut().reset(Instant::now() + *idle);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // A connection that failed mid-body is not reused.
                this.connection = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => {
                if let Some(d) = &mut this.deadline {
                    if d.as_mut().poll(cx).is_ready() {
                        this.connection = None;
                        return Poll::Ready(Some(Err(UpstreamBodyError::Timeout)));
                    }
                }
                if let Some((_, sleep)) = &mut this.idle {
                    if sleep.as_mut().poll(cx).is_ready() {
                        this.connection = None;
                        return Poll::Ready(Some(Err(UpstreamBodyError::Idle)));
                    }
                }
                Poll::Pending
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
