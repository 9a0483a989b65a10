//! The one body type that flows through the proxy, in both directions.
//!
//! An enum rather than a boxed trait object: the common case (a streamed body passed through)
//! costs no allocation, and the proxy's own answers are plain bytes. An upstream HTTP/1.1
//! response body carries the pooled connection, which goes back to its pool only when the body
//! has been read to the end: a connection whose response was abandoned half-way is not reused.
//!
//! This module is a leaf: it knows a connection rides along with a body, but not the pool the
//! connection returns to (that is [`IdleSink`], implemented by `upstream::pool`), so the
//! upstream side and the HTTP side can both depend on it without depending on each other.

mod replay;
mod upstream;

pub use replay::{ReplayBody, ReplayError, DEFAULT_REPLAY_LIMIT};
pub use upstream::{InFlight, UpstreamBody, UpstreamBodyError};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Default)]
pub enum ProxyBody {
    #[default]
    Empty,
    Full(Option<Bytes>),
    Incoming(Incoming),
    /// An upstream response body: its connection returns to the pool at end of stream, and
    /// the route's timers keep running until then (see [`UpstreamBody`]).
    Upstream(UpstreamBody),
    /// A request body that may be sent more than once (retries, mirrors).
    Replay(ReplayBody),
}

/// Where an HTTP/1.1 connection goes when the response on it has been read to the end.
pub trait IdleSink: Send + Sync {
    fn put_idle(&self, conn: Http1Connection);
}

/// A pooled HTTP/1.1 connection with what decides whether it may be reused.
pub struct Http1Connection {
    pub sender: http1::SendRequest<ProxyBody>,
    /// Requests sent on it so far, for `max_requests_per_connection`.
    pub requests: u32,
    /// When it was opened, for `max_connection_duration`.
    pub opened: tokio::time::Instant,
}

/// Gives an HTTP/1.1 connection back to its pool.
pub struct ConnectionReturn {
    pool: Weak<dyn IdleSink>,
    sender: Option<Http1Connection>,
}

impl ConnectionReturn {
    pub fn new(pool: Weak<dyn IdleSink>) -> Self {
        ConnectionReturn { pool, sender: None }
    }

    /// The connection the response arrived on; it goes back when [`release`](Self::release)d.
    pub fn hold(&mut self, sender: Http1Connection) {
        self.sender = Some(sender);
    }

    pub fn release(mut self) {
        if let (Some(pool), Some(sender)) = (self.pool.upgrade(), self.sender.take()) {
            pool.put_idle(sender);
        }
    }
}

impl ProxyBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            ProxyBody::Empty
        } else {
            ProxyBody::Full(Some(bytes))
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Incoming(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ProxyBody::Upstream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ProxyBody::Replay(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Incoming(b) => b.is_end_stream(),
            ProxyBody::Upstream(b) => b.is_end_stream(),
            ProxyBody::Replay(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Incoming(b) => b.size_hint(),
            ProxyBody::Upstream(b) => b.size_hint(),
            ProxyBody::Replay(b) => b.size_hint(),
        }
    }
}
