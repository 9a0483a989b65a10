//! What one downstream connection is doing, for its two timers: `idle_timeout` (no request in
//! flight for that long) and `request_headers_timeout` (a request's head started arriving and
//! has not finished).
//!
//! hyper knows neither: its own HTTP/1 header-read timer also runs while a keep-alive
//! connection waits for its next request, which would cut idle connections far sooner than
//! Envoy's one-hour idle timeout. So the connection keeps its own account:
//! - a request is *in flight* from the moment hyper hands its head to the service until its
//!   response body has been sent or dropped ([`InFlight`] travels from the service call into
//!   the response body);
//! - a *head starts* with the first bytes read while nothing is in flight ([`Tracked`] wraps
//!   the socket). That is HTTP/1 only: on HTTP/2, frames such as PING and SETTINGS arrive
//!   between requests and headers come in whole frames, so only the idle timer applies.
//!
//! It also counts requests reset before they were answered ([`super::premature_reset`]) and
//! ends the connection of a client that makes a habit of it.
//!
//! The watchdog ([`expiry`]) sleeps until the nearest deadline and is woken only on the
//! transitions that move one (idle to busy, busy to idle, head started), never per read.

use super::premature_reset::{PrematureResets, MIN_STREAM_LIFETIME};
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

const NONE: u64 = u64::MAX;
const HTTP2_PREFACE_START: &[u8] = b"PRI ";

pub struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when the connection last became idle.
    idle_since_ms: AtomicU64,
    /// Milliseconds since `epoch` of the first byte of the head being read, or [`NONE`].
    head_started_ms: AtomicU64,
    /// Set on the first read when the client speaks HTTP/2 (prior knowledge).
    http2: AtomicBool,
    first_read_seen: AtomicBool,
    premature_resets: PrematureResets,
    /// Set once too many requests were reset before being answered; the connection is closed.
    abusive: AtomicBool,
    /// Set when a read found the client's side closed (or the socket broken).
    client_closed: AtomicBool,
    changed: Notify,
}

/// Why the watchdog ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Idle,
    RequestHeadersTimeout,
    TooManyPrematureResets,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(NONE),
            http2: AtomicBool::new(false),
            first_read_seen: AtomicBool::new(false),
            premature_resets: PrematureResets::default(),
            abusive: AtomicBool::new(false),
            client_closed: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// A request's head is complete and handed to the service.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.head_started_ms.store(NONE, Ordering::Relaxed);
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.changed.notify_one();
        }
        InFlight {
            activity: self.clone(),
            started_ms: self.now_ms(),
            answered: false,
        }
    }

    fn client_closed(&self) {
        self.client_closed.store(true, Ordering::Relaxed);
    }

    /// Whether the client closed its side of the connection (stats tell local from remote
    /// closes).
    pub fn closed_by_client(&self) -> bool {
        self.client_closed.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn bytes_read(&self, bytes: &[u8]) {
        if !self.first_read_seen.swap(true, Ordering::Relaxed)
            && bytes.starts_with(HTTP2_PREFACE_START)
        {
            self.http2.store(true, Ordering::Relaxed);
        }
        if self.http2.load(Ordering::Relaxed)
            || self.in_flight.load(Ordering::Acquire) > 0
            || self.head_started_ms.load(Ordering::Relaxed) != NONE
        {
            return;
        }
        self.head_started_ms.store(self.now_ms(), Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// The nearest deadline and what it is for; `None` while nothing can expire.
    fn next_deadline(
        &self,
        idle_timeout: Option<Duration>,
        headers_timeout: Option<Duration>,
    ) -> Option<(Instant, Expiry)> {
        if self.abusive.load(Ordering::Acquire) {
            return Some((self.epoch, Expiry::TooManyPrematureResets));
        }
        if self.in_flight() > 0 {
            return None;
        }
        let idle = idle_timeout.map(|t| {
            let since = self.at(self.idle_since_ms.load(Ordering::Relaxed));
            (since + t, Expiry::Idle)
        });
        let head = match (
            headers_timeout,
            self.head_started_ms.load(Ordering::Relaxed),
        ) {
            (Some(t), started) if started != NONE => {
                Some((self.at(started) + t, Expiry::RequestHeadersTimeout))
            }
            _ => None,
        };
        match (idle, head) {
            (Some(i), Some(h)) => Some(if h.0 <= i.0 { h } else { i }),
            (i, h) => i.or(h),
        }
    }
}

/// Resolves when the connection has been idle for `idle_timeout`, or a request head has taken
/// longer than `headers_timeout`; pending forever when both are `None`.
pub async fn expiry(
    activity: &Activity,
    idle_timeout: Option<Duration>,
    headers_timeout: Option<Duration>,
) -> Expiry {
    loop {
        // `notify_one` keeps a permit when nobody waits, so a change between computing the
        // deadline and waiting is not lost.
        let changed = activity.changed.notified();
        match activity.next_deadline(idle_timeout, headers_timeout) {
            None => changed.await,
            Some((at, why)) => {
                if at <= Instant::now() {
                    return why;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = changed => {}
                }
            }
        }
    }
}

/// One request in flight; dropping it (response sent, or the request abandoned) may make the
/// connection idle.
pub struct InFlight {
    activity: Arc<Activity>,
    started_ms: u64,
    /// The service produced a response; dropped before that, the request was reset.
    answered: bool,
}

impl InFlight {
    /// The service has a response for the request.
    pub fn answered(mut self) -> Self {
        self.answered = true;
        self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.activity;
        let now = a.now_ms();
        let premature = !self.answered
            && now.saturating_sub(self.started_ms) < MIN_STREAM_LIFETIME.as_millis() as u64;
        if a.premature_resets.record(premature) && !a.abusive.swap(true, Ordering::AcqRel) {
            a.changed.notify_one();
        }
        a.idle_since_ms.store(now, Ordering::Relaxed);
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.changed.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it is done.
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
    }
}

impl<B> TrackedBody<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        TrackedBody {
            inner,
            in_flight: Some(in_flight),
        }
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // Done: the connection is idle from now, not from whenever hyper drops the body.
            this.in_flight.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The downstream socket, noting when a request head starts arriving.
    pub struct Tracked<T> {
        #[pin]
        io: T,
        activity: Arc<Activity>,
    }
}

impl<T> Tracked<T> {
    pub fn new(io: T, activity: Arc<Activity>) -> Self {
        Tracked { io, activity }
    }
}

impl<T: AsyncRead> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.activity.bytes_read(&buf.filled()[before..]);
            }
            // End of stream (a read with room that returns nothing) or a broken socket: the
            // client closed its side.
            Poll::Ready(Ok(())) if buf.remaining() > 0 => this.activity.client_closed(),
            Poll::Ready(Err(_)) => this.activity.client_closed(),
            _ => {}
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_after_the_idle_timeout_and_not_while_busy() {
        let a = Activity::new();
        let busy = a.request_started();
        let idle = Some(Duration::from_secs(10));
        let w = tokio::time::timeout(Duration::from_secs(60), expiry(&a, idle, None)).await;
        assert!(w.is_err(), "a busy connection never idles out");
        drop(busy);
        let start = Instant::now();
        assert_eq!(expiry(&a, idle, None).await, Expiry::Idle);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_head_timer_starts_at_the_first_byte_and_stops_at_the_request() {
        let a = Activity::new();
        let head = Some(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(100)).await;
        // Waiting for a first request costs nothing with no idle timeout.
        a.bytes_read(b"GE");
        let start = Instant::now();
        assert_eq!(expiry(&a, None, head).await, Expiry::RequestHeadersTimeout);
        assert_eq!(start.elapsed(), Duration::from_secs(5));

        let b = Activity::new();
        b.bytes_read(b"GET / HTTP/1.1\r\n");
        let req = b.request_started();
        b.bytes_read(b"body bytes are not a head");
        let w = tokio::time::timeout(Duration::from_secs(60), expiry(&b, None, head)).await;
        assert!(w.is_err(), "a request in flight stops the head timer");
        drop(req);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_have_no_head_timer() {
        let a = Activity::new();
        a.bytes_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        a.bytes_read(b"ping frames");
        let head = Some(Duration::from_secs(5));
        let w = tokio::time::timeout(Duration::from_secs(60), expiry(&a, None, head)).await;
        assert!(w.is_err());
    }
}
