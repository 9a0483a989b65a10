//! The response body as it goes to the client, counted frame by frame into the request's
//! record: bytes sent, gRPC status from trailers, the end (or failure) of the stream. The
//! record completes when this body is dropped — by hyper after the last frame, or early when
//! the client went away.

use super::account::Account;
use crate::body::{BoxError, ProxyBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct ResponseBody {
    inner: ProxyBody,
    account: Box<Account>,
}

impl ResponseBody {
    pub fn new(inner: ProxyBody, account: Box<Account>) -> Self {
        ResponseBody { inner, account }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // An empty body (or one whose last frame said so) is never polled to its end.
        if self.inner.is_end_stream() {
            self.account.ended();
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.account.sent(data.len());
                } else if let Some(trailers) = frame.trailers_ref() {
                    this.account.trailers(trailers);
                }
                // hyper stops polling once the body says it has ended.
                if this.inner.is_end_stream() {
                    this.account.ended();
                }
            }
            Poll::Ready(None) => this.account.ended(),
            Poll::Ready(Some(Err(e))) => this.account.failed(e),
            Poll::Pending => {}
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
