//! A request body that can be sent more than once: to a retry after a failed try, and to a
//! mirror beside the main request.
//!
//! Every copy reads from one shared record of the frames seen so far. Whichever copy is
//! furthest ahead pulls the next frame from the downstream body, appends it to the record and
//! wakes the others, so the body is read from the client once, at the pace of the fastest
//! reader, and never ahead of any reader. The record is bounded: once it would pass its limit
//! it is dropped and only the copy that read furthest carries on; a copy that needs a dropped
//! frame fails with [`ReplayError::Overflow`], and [`ReplayBody::replay`] refuses to make new
//! ones (a retry is then impossible, as in Envoy when a body outgrows the retry buffer).
//!
//! A copy dropped while others wait wakes them, so one of them takes over the reading.
//!
//! A copy ends with the source's last data frame when the source says it has ended
//! (`is_end_stream`), not one poll later, so an HTTP/2 sender can mark that frame END_STREAM.
//!
//! It also notes when the last frame arrived from the client, so the stream idle timeout can
//! tell a slow upload from a dead one, and counts the bytes the client sent (each once, however
//! many copies read them) for the request's accounting.

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::time::Instant;

/// How much of a request body is kept for retries and mirrors. Envoy buffers up to the
/// listener's buffer limit (1 MiB by default); 64 KiB keeps typical API payloads retryable
/// while bounding what a slow upstream can make the proxy hold per request.
pub const DEFAULT_REPLAY_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("request body larger than the {0}-byte replay buffer")]
    Overflow(usize),
    #[error("downstream request body failed: {0}")]
    Source(String),
}

pub struct ReplayBody<B = hyper::body::Incoming> {
    shared: Arc<Mutex<Shared<B>>>,
    /// Index of the next data frame this copy reads.
    next: usize,
    trailers_sent: bool,
}

struct Shared<B> {
    source: B,
    /// Data frames `[first, first + frames.len())`; `first > 0` only after an overflow.
    frames: Vec<Bytes>,
    first: usize,
    buffered: usize,
    limit: usize,
    overflowed: bool,
    trailers: Option<HeaderMap>,
    /// The source has ended (or failed, then `error` says why).
    done: bool,
    error: Option<String>,
    /// Copies waiting for a frame another copy may pull.
    waiting: Vec<Waker>,
    /// When the source last produced a frame (or the body was created).
    last_activity: Instant,
    /// Data bytes pulled from the source, readable after the body is gone.
    received: Arc<AtomicU64>,
}

impl<B> ReplayBody<B> {
    pub fn new(source: B, limit: usize) -> Self {
        ReplayBody {
            shared: Arc::new(Mutex::new(Shared {
                source,
                frames: Vec::new(),
                first: 0,
                buffered: 0,
                limit,
                overflowed: false,
                trailers: None,
                done: false,
                error: None,
                waiting: Vec::new(),
                last_activity: Instant::now(),
                received: Arc::default(),
            })),
            next: 0,
            trailers_sent: false,
        }
    }

    /// Another copy that starts from the beginning, or an error when the start is gone.
    pub fn replay(&self) -> Result<ReplayBody<B>, ReplayError> {
        let shared = lock(&self.shared);
        if shared.overflowed {
            return Err(ReplayError::Overflow(shared.limit));
        }
        Ok(ReplayBody {
            shared: self.shared.clone(),
            next: 0,
            trailers_sent: false,
        })
    }

    /// Whether a copy made now could still send the whole body.
    pub fn is_replayable(&self) -> bool {
        !lock(&self.shared).overflowed
    }

    /// When the client last sent part of the body.
    pub fn last_activity(&self) -> Instant {
        lock(&self.shared).last_activity
    }

    /// The count of body bytes read from the client so far; it keeps counting while any copy
    /// reads, and outlives the copies.
    pub fn received(&self) -> Arc<AtomicU64> {
        lock(&self.shared).received.clone()
    }
}

impl<B> Shared<B> {
    fn wake_all(&mut self) {
        for w in self.waiting.drain(..) {
            w.wake();
        }
    }

    fn wait(&mut self, waker: &Waker) {
        if !self.waiting.iter().any(|w| w.will_wake(waker)) {
            self.waiting.push(waker.clone());
        }
    }

    /// Records a frame pulled from the source, dropping the record when it outgrows the limit.
    fn record(&mut self, data: &Bytes) {
        if !self.overflowed && self.buffered + data.len() <= self.limit {
            self.buffered += data.len();
            self.frames.push(data.clone());
            return;
        }
        if !self.overflowed {
            self.overflowed = true;
            self.first += self.frames.len();
            self.frames = Vec::new();
            self.buffered = 0;
        }
        self.first += 1;
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = ReplayError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ReplayError>>> {
        let this = self.get_mut();
        let mut shared = lock(&this.shared);
        let end = shared.first + shared.frames.len();
        if this.next < shared.first {
            return Poll::Ready(Some(Err(ReplayError::Overflow(shared.limit))));
        }
        if this.next < end {
            let data = shared.frames[this.next - shared.first].clone();
            this.next += 1;
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if shared.done {
            if let Some(e) = &shared.error {
                return Poll::Ready(Some(Err(ReplayError::Source(e.clone()))));
            }
            if !this.trailers_sent {
                if let Some(t) = shared.trailers.clone() {
                    this.trailers_sent = true;
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
            }
            return Poll::Ready(None);
        }
        // This copy is the furthest ahead: it pulls the next frame for everyone.
        let polled = Pin::new(&mut shared.source).poll_frame(cx);
        if polled.is_ready() {
            shared.last_activity = Instant::now();
        }
        match polled {
            Poll::Pending => {
                shared.wait(cx.waker());
                Poll::Pending
            }
            Poll::Ready(None) => {
                shared.done = true;
                shared.wake_all();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                shared.done = true;
                shared.error = Some(e.to_string());
                shared.wake_all();
                Poll::Ready(Some(Err(ReplayError::Source(e.to_string()))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(data) => {
                        shared
                            .received
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                        shared.record(&data);
                        this.next += 1;
                        // The source's last frame: ending here lets the sender put END_STREAM
                        // on this DATA frame instead of sending an empty one after it (gRPC
                        // peers on h2 count small non-final DATA frames against a flood budget
                        // and answer a burst of them with GOAWAY `too_many_data_frames`).
                        if shared.source.is_end_stream() {
                            shared.done = true;
                        }
                        Frame::data(data)
                    }
                    Err(frame) => match frame.into_trailers() {
                        Ok(trailers) => {
                            shared.trailers = Some(trailers.clone());
                            shared.done = true;
                            this.trailers_sent = true;
                            Frame::trailers(trailers)
                        }
                        // No other frame kinds exist today; pass anything new through untouched.
                        Err(other) => other,
                    },
                };
                shared.wake_all();
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let shared = lock(&self.shared);
        shared.done
            && shared.error.is_none()
            && self.next >= shared.first + shared.frames.len()
            && (self.trailers_sent || shared.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        let shared = lock(&self.shared);
        if self.next == 0 && shared.first == 0 && shared.frames.is_empty() && !shared.done {
            return shared.source.size_hint();
        }
        SizeHint::default()
    }
}

impl<B> Drop for ReplayBody<B> {
    fn drop(&mut self) {
        // A copy waiting on us for the next frame must now pull it itself.
        lock(&self.shared).wake_all();
    }
}

fn lock<B>(m: &Mutex<Shared<B>>) -> MutexGuard<'_, Shared<B>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
