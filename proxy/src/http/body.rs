//! The one body type that flows through the proxy, in both directions.
//!
//! An enum rather than a boxed trait object: the common case (a streamed body passed through)
//! costs no allocation, and the proxy's own answers are plain bytes. An upstream HTTP/1.1
//! response body carries the pooled connection, which goes back to its pool only when the body
//! has been read to the end: a connection whose response was abandoned half-way is not reused.

use crate::upstream::pool::ConnectionReturn;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Default)]
pub enum ProxyBody {
    #[default]
    Empty,
    Full(Option<Bytes>),
    Incoming(Incoming),
    /// An upstream response body whose connection returns to the pool at end of stream.
    Pooled(Incoming, Option<ConnectionReturn>),
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
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Incoming(body) => Pin::new(body).poll_frame(cx),
            ProxyBody::Pooled(body, ret) => {
                let frame = ready!(Pin::new(&mut *body).poll_frame(cx));
                match &frame {
                    None => {
                        if let Some(r) = ret.take() {
                            r.release();
                        }
                    }
                    Some(Err(_)) => {
                        ret.take();
                    }
                    Some(Ok(_)) if body.is_end_stream() => {
                        if let Some(r) = ret.take() {
                            r.release();
                        }
                    }
                    Some(Ok(_)) => {}
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Incoming(b) | ProxyBody::Pooled(b, _) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Incoming(b) | ProxyBody::Pooled(b, _) => b.size_hint(),
        }
    }
}
