//! The Aggregated Discovery Service as a gRPC service for tonic's server; requests and
//! responses are framed by [`super::wire`].

use super::wire::{FromFrame, RequestStream, ResponseBody};
use super::{delta, driver, sotw, Shared, StreamIo};
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::Status;

const SERVICE: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Responses queued per stream before the session waits for the proxy to read. They hold
/// references to shared bytes, not copies.
const STREAM_BUFFER: usize = 16;

/// The largest request accepted (a NACK's error detail can be long; requests are otherwise
/// small).
const MAX_REQUEST: usize = 64 << 20;

#[derive(Clone)]
pub struct AdsServer {
    shared: Arc<Shared>,
}

impl AdsServer {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        AdsServer { shared }
    }

    /// Starts a session of one protocol on this request's stream.
    fn open<Req, F, Fut>(&self, req: http::Request<Body>, run: F) -> http::Response<Body>
    where
        Req: FromFrame + Send + 'static,
        F: FnOnce(Arc<Shared>, StreamIo<Req>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // Sidecars do not compress ADS requests; a request that is compressed is refused
        // rather than misread.
        let compressed = req
            .headers()
            .get("grpc-encoding")
            .is_some_and(|v| v.as_bytes() != b"identity");
        if compressed {
            return Status::unimplemented("weftd accepts uncompressed ADS requests only")
                .into_http();
        }
        let requests = RequestStream::new(req.into_body(), MAX_REQUEST);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(run(
            self.shared.clone(),
            StreamIo {
                requests,
                responses: tx,
            },
        ));
        let mut response = http::Response::new(Body::new(ResponseBody::new(rx)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        response
    }
}

impl NamedService for AdsServer {
    const NAME: &'static str = SERVICE;
}

impl Service<http::Request<Body>> for AdsServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let response = match req.uri().path() {
            SOTW_PATH => self.open(req, driver::run::<sotw::Stream>),
            DELTA_PATH => self.open(req, driver::run::<delta::Stream>),
            other => Status::unimplemented(format!("no method {other}")).into_http(),
        };
        ready(Ok(response))
    }
}
