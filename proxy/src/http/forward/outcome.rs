//! What the request path learns about one request as it goes.

use super::super::local_reply::{ResponseCodeDetails, ResponseFlag, ResponseFlags};
use crate::upstream::{Cluster, Host};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What the request path learned, for the access log, stats and spans. It owns what it
/// keeps (shared pointers into the snapshot, no copies), because the request's record
/// outlives the request future: it is completed when the response body ends.
#[derive(Default)]
pub struct Outcome {
    pub flags: ResponseFlags,
    pub details: ResponseCodeDetails,
    /// Why the connection to the upstream failed (`%UPSTREAM_TRANSPORT_FAILURE_REASON%`);
    /// only set on that failure.
    pub transport_failure: Option<Box<str>>,
    pub cluster: Option<Arc<Cluster>>,
    /// The host of the last try.
    pub host: Option<Arc<Host>>,
    pub route_name: Option<Arc<str>>,
    /// Milliseconds the answering try took to its response head.
    pub upstream_time: Option<u64>,
    /// Tries sent upstream (`%UPSTREAM_REQUEST_ATTEMPT_COUNT%`).
    pub attempts: u32,
    /// Request body bytes read from the client, counted as they are read.
    pub request_bytes: Option<Arc<AtomicU64>>,
    /// The request's deadline came from its `grpc-timeout`.
    pub grpc_deadline: bool,
    /// The router took the request to its cluster (the cluster's own stats count it).
    pub forwarded: bool,
    /// The route's decorator: the span's name.
    pub decorator: Option<Arc<crate::router::Decorator>>,
}

impl Outcome {
    /// A local reply's flag and details together.
    pub fn fail(&mut self, flag: ResponseFlag, details: ResponseCodeDetails) {
        self.flags.set(flag);
        self.details = details;
    }
}
