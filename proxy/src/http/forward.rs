//! The router at work: carry out a plan that sends the request to a cluster.
//!
//! One loop, Envoy's: pick a host (avoiding the ones already tried when the policy says so),
//! send one try under its per-try timeout and the request's overall deadline, and look at what
//! came back. A response is forwarded unless the retry policy calls it retriable and tries
//! remain; a failure before any response is answered locally with its flag unless the policy
//! retries it. Between tries the loop backs off (fully jittered), never past the deadline.
//!
//! The request body goes out as it arrives; it is kept for another try (or a mirror) only up
//! to a bounded size (`ReplayBody`), past which the request is no longer retried.

mod outcome;
mod replies;

pub use outcome::Outcome;
pub use replies::X_ENVOY_OVERLOADED;

use super::local_reply::{local_reply, ResponseCodeDetails, ResponseFlag, ResponseFlags};
use super::mirror;
use super::plan::ClusterSettings;
use super::plan::Timeouts;
use super::upstream_request::{RouterHeaders, UpstreamHead};
use crate::body::{ProxyBody, ReplayBody, UpstreamBody, DEFAULT_REPLAY_LIMIT};
use crate::router::filter_config::RouterConfig;
use crate::router::{request_hash, RequestHash, RequestView, RetryPolicy, Route, TryFailure};
use crate::snapshot::Snapshot;
use crate::upstream::outlier::TryOutcome;
use crate::upstream::pool::SendError;
use crate::upstream::stats::ClusterStats;
use crate::upstream::{Cluster, Host};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use replies::RESET_TEXT;
pub(super) use replies::{failure_reply, overflow_reply};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::time::Instant;

pub static X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");

/// Where the request goes and under which rules.
pub struct Forward<'s, 'p> {
    pub snapshot: &'s Snapshot,
    pub route: &'s Route,
    /// The route's cluster, looked up once by the caller; `None` when the snapshot has no
    /// cluster of that name.
    pub cluster: Option<&'s Arc<Cluster>>,
    /// The picked weighted cluster's own settings.
    pub cluster_settings: ClusterSettings<'s>,
    pub timeouts: &'p Timeouts,
    pub router: RouterConfig,
    pub authority: &'p str,
    pub peer: SocketAddr,
    /// Where the downstream connection was originally going, for `ORIGINAL_DST` clusters.
    pub original_dst: Option<SocketAddr>,
}

impl Forward<'_, '_> {
    /// The route's hash of `req` (for ring hash and Maglev), when it has a hash policy.
    pub(in crate::http) fn request_hash<B>(&self, req: &Request<B>) -> Option<RequestHash> {
        let policy = &self.route.policy.hash_policy;
        (!policy.is_empty()).then(|| {
            let view = RequestView::new(req.method(), req.uri(), req.headers());
            request_hash(policy, &view, self.peer.ip())
        })
    }

    /// The head of the request the upstream is sent, from the downstream request's `parts`.
    pub(in crate::http) fn upstream_head(&self, parts: http::request::Parts) -> UpstreamHead {
        UpstreamHead::new(
            parts,
            self.authority,
            self.route,
            self.cluster_settings,
            &RouterHeaders {
                expected_timeout: self.timeouts.per_try.or(self.timeouts.total),
                suppress_envoy_headers: self.router.suppress_envoy_headers,
            },
        )
    }
}

pub async fn forward<'s>(
    f: Forward<'s, '_>,
    req: Request<Incoming>,
    outcome: &mut Outcome,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let policy = &f.route.policy;
    let Some(cluster) = f.cluster else {
        outcome.fail(
            ResponseFlag::NoCluster,
            ResponseCodeDetails::ClusterNotFound,
        );
        return local_reply(
            StatusCode::from_u16(policy.cluster_not_found_status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "",
        );
    };
    outcome.forwarded = true;
    let deadline = f.timeouts.total.map(|t| start + t);
    let hash = f.request_hash(&req);
    let (parts, body) = req.into_parts();
    let head = f.upstream_head(parts);
    let retry = policy.retry.as_deref().filter(|r| r.num_retries > 0);
    let body = RequestBody::new(body, retry.is_some() || !policy.mirrors.is_empty());
    outcome.request_bytes = body.received();
    for m in policy.mirrors.iter().filter(|m| m.fraction.roll()) {
        match f.snapshot.cluster(&m.cluster.name) {
            Some(target) => {
                if let Some(copy) = body.copy() {
                    mirror::spawn(
                        target.clone(),
                        head.shadow(m.shadow_suffix),
                        copy,
                        f.timeouts.total.or(f.timeouts.idle),
                    );
                }
            }
            None => tracing::debug!(cluster = %m.cluster.name, "mirror cluster not found"),
        }
    }
    // An ORIGINAL_DST cluster's one host for this request, held here so the loop borrows it
    // like any other host.
    let original_dst_host = (cluster.config.discovery == crate::config::Discovery::OriginalDst)
        .then(|| f.original_dst.map(|dst| cluster.original_dst_host(dst)));
    let original_dst = original_dst_host.as_ref().map(Option::as_ref);
    let mut tries = Tries {
        cluster,
        original_dst,
        hash: hash.as_ref().and_then(|h| h.hash),
        retry,
        include_attempt_count: policy.include_attempt_count,
        head: Some(head),
        body,
        tried: TriedHosts::default(),
        attempt: 0,
        retry_slot: None,
        replayed_unprocessed: false,
    };
    loop {
        tries.attempt += 1;
        let Some(host) = tries.pick() else {
            outcome.fail(
                ResponseFlag::NoHealthyUpstream,
                ResponseCodeDetails::NoHealthyUpstream,
            );
            return local_reply(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
        };
        outcome.host = Some(host.clone());
        let Some(req) = tries.request() else {
            // The body can no longer be replayed; the previous try's answer was already lost.
            outcome.fail(
                ResponseFlag::UpstreamConnectionTermination,
                ResponseCodeDetails::RequestPayloadExceededRetryBufferLimit,
            );
            return local_reply(StatusCode::SERVICE_UNAVAILABLE, RESET_TEXT);
        };
        let Ok(request_slot) = cluster.runtime.limits.try_request() else {
            return overflow_reply(outcome, f.router.suppress_envoy_headers);
        };
        outcome.attempts = tries.attempt;
        let in_flight = host.start_request().with_slot(request_slot);
        let try_start = Instant::now();
        let per_try_deadline = f.timeouts.per_try.map(|t| try_start + t);
        let timers = TryTimers {
            per_try: per_try_deadline,
            total: deadline,
            idle: f.timeouts.idle,
        };
        let mut result = one_try(
            host,
            req,
            cluster.config.connect_timeout,
            timers,
            &tries.body,
        )
        .await;
        // A stream the host did not process (it refused it, or sent GOAWAY below it) is safe
        // to send again whatever the method: once per request, at once, on another connection
        // to the same host (the pool retired the one that refused), outside the retry policy.
        if matches!(result, TryResult::Failed(TryFailure::RefusedStream, _))
            && !tries.replayed_unprocessed
        {
            tries.replayed_unprocessed = true;
            if let Some(req) = tries.request() {
                tracing::debug!(host = %host.address(), "stream refused unprocessed; sending it again on another connection");
                result = one_try(
                    host,
                    req,
                    cluster.config.connect_timeout,
                    timers,
                    &tries.body,
                )
                .await;
            }
        }
        count_timeout(&cluster.runtime.stats, &result);
        if let Some(o) = outlier_outcome(&result) {
            cluster.report(host, o);
        }
        let failure = match result {
            TryResult::Response(resp) => {
                let retriable = tries
                    .retry
                    .is_some_and(|r| r.retries_response(resp.status().as_u16(), resp.headers()));
                let tries_left = retriable && tries.may_retry();
                if tries_left && tries.take_retry_slot(&mut outcome.flags) {
                    drop(resp);
                    if let Some(reply) = tries.back_off(deadline, outcome).await {
                        return reply;
                    }
                    continue;
                }
                // Out of tries is URX; a retry the breaker refused is UO (set above) only.
                if retriable && !tries_left {
                    outcome.flags.set(ResponseFlag::UpstreamRetryLimitExceeded);
                }
                let elapsed = try_start.elapsed().as_millis();
                outcome.upstream_time = Some(elapsed as u64);
                outcome.details = ResponseCodeDetails::ViaUpstream;
                let mut resp = finish(resp, in_flight, deadline, f.timeouts.idle);
                let h = resp.headers_mut();
                if !f.router.suppress_envoy_headers {
                    h.insert(
                        X_ENVOY_UPSTREAM_SERVICE_TIME.clone(),
                        HeaderValue::from(elapsed as u64),
                    );
                }
                if let Some(cluster_headers) = f.cluster_settings.headers {
                    cluster_headers.response.apply(h);
                }
                policy.headers.response.apply(h);
                if let Some(cookie) = hash.and_then(|h| h.set_cookie) {
                    h.append(http::header::SET_COOKIE, cookie);
                }
                return resp;
            }
            TryResult::TotalTimeout => {
                outcome.fail(
                    ResponseFlag::UpstreamTimeout,
                    ResponseCodeDetails::ResponseTimeout,
                );
                return local_reply(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout");
            }
            TryResult::Idle => {
                outcome.fail(
                    ResponseFlag::StreamIdleTimeout,
                    ResponseCodeDetails::StreamIdleTimeout,
                );
                return local_reply(StatusCode::REQUEST_TIMEOUT, "stream timeout");
            }
            TryResult::Overflow => return overflow_reply(outcome, f.router.suppress_envoy_headers),
            TryResult::Failed(failure, error) => {
                if let Some(e) = &error {
                    tracing::debug!(host = %host.address(), error = %e, "upstream try failed");
                    if matches!(e, SendError::Connect(_)) {
                        cluster
                            .runtime
                            .stats
                            .cx_connect_fail
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                (failure, error)
            }
        };
        drop(in_flight);
        let (failure, error) = failure;
        let retriable = tries.retry.is_some_and(|r| r.retries_failure(failure));
        let tries_left = retriable && tries.may_retry();
        if tries_left && tries.take_retry_slot(&mut outcome.flags) {
            if let Some(reply) = tries.back_off(deadline, outcome).await {
                return reply;
            }
            continue;
        }
        if retriable && !tries_left {
            outcome.flags.set(ResponseFlag::UpstreamRetryLimitExceeded);
        }
        return failure_reply(failure, error.as_ref(), outcome);
    }
}

/// The state of the retry loop.
struct Tries<'s> {
    cluster: &'s Cluster,
    /// `Some` for an `ORIGINAL_DST` cluster: its one host for this request, if the connection
    /// has an original destination.
    original_dst: Option<Option<&'s Arc<Host>>>,
    /// The request's hash for consistent-hash balancers.
    hash: Option<u64>,
    retry: Option<&'s RetryPolicy>,
    include_attempt_count: bool,
    /// Taken by the last possible try, copied by the others.
    head: Option<UpstreamHead>,
    body: RequestBody,
    /// Hosts already tried; only kept when the policy avoids them.
    tried: TriedHosts,
    attempt: u32,
    /// The cluster's retry circuit breaker slot of the retry under way.
    retry_slot: Option<crate::upstream::limits::Slot>,
    /// The one resend of a stream the host did not process has been made.
    replayed_unprocessed: bool,
}

impl<'s> Tries<'s> {
    fn pick(&mut self) -> Option<&'s Arc<Host>> {
        if let Some(host) = self.original_dst {
            return host;
        }
        let avoid = self.retry.is_some_and(|r| r.avoid_previous_hosts);
        let picks = match self.retry {
            Some(r) if avoid && !self.tried.is_empty() => r.host_selection_max_attempts,
            _ => 1,
        };
        let mut chosen = None;
        for _ in 0..picks {
            let host = self.cluster.pick(self.hash)?;
            chosen = Some(host);
            if !self.tried.contains(host) {
                break;
            }
        }
        if avoid {
            if let Some(h) = chosen {
                self.tried.push(h);
            }
        }
        chosen
    }

    /// The request for this try; the head is copied only when another try may follow.
    fn request(&mut self) -> Option<Request<ProxyBody>> {
        let body = self.body.copy()?;
        let protocol = self.cluster.config.protocol;
        // The count goes on the kept head before it is copied, so the copy already has room
        // for it (inserting into a copied map would grow it).
        if self.include_attempt_count {
            if let Some(head) = &mut self.head {
                head.set_attempt(self.attempt);
            }
        }
        // Over HTTP/2 a copy is also kept for the resend of a stream the host refused (a
        // refusal is an HTTP/2 thing; HTTP/1.1 requests without retries pay nothing).
        let unprocessed_resend =
            !self.replayed_unprocessed && protocol == crate::config::UpstreamProtocol::Http2;
        let head = if self.may_retry() || unprocessed_resend {
            self.head.clone()?
        } else {
            self.head.take()?
        };
        Some(head.into_request(protocol, body))
    }

    /// Takes a slot of the cluster's `max_retries` breaker for the next try. When there is
    /// none the retry is not made (`upstream_rq_retry_overflow`, flag `UO`), as in Envoy.
    fn take_retry_slot(&mut self, flags: &mut ResponseFlags) -> bool {
        self.retry_slot = None;
        match self.cluster.runtime.limits.try_retry() {
            Some(slot) => {
                self.retry_slot = Some(slot);
                let stats = &self.cluster.runtime.stats;
                stats
                    .rq_retry
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
            None => {
                flags.set(ResponseFlag::UpstreamOverflow);
                false
            }
        }
    }

    fn may_retry(&self) -> bool {
        self.retry.is_some_and(|r| self.attempt <= r.num_retries) && self.body.is_replayable()
    }

    /// Waits before the next try. `Some(reply)` when the deadline comes first.
    async fn back_off(
        &self,
        deadline: Option<Instant>,
        outcome: &mut Outcome,
    ) -> Option<Response<ProxyBody>> {
        let wait = self
            .retry
            .map(|r| r.backoff(self.attempt, rand::random::<f64>()))
            .unwrap_or_default();
        let until = Instant::now() + wait;
        match deadline {
            Some(d) if d <= until => {
                tokio::time::sleep_until(d).await;
                self.cluster
                    .runtime
                    .stats
                    .rq_timeout
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                outcome.fail(
                    ResponseFlag::UpstreamTimeout,
                    ResponseCodeDetails::ResponseTimeout,
                );
                Some(local_reply(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream request timeout",
                ))
            }
            _ => {
                tokio::time::sleep_until(until).await;
                None
            }
        }
    }
}

/// The hosts a request has tried, by identity (address in memory), without allocating: the
/// most recent few, which is all a retry policy ever needs in practice (Envoy's default is
/// one retry, Istio's two).
#[derive(Default)]
struct TriedHosts {
    ids: [usize; 8],
    len: usize,
}

impl TriedHosts {
    fn push(&mut self, host: &Arc<Host>) {
        self.ids[self.len % self.ids.len()] = Arc::as_ptr(host) as usize;
        self.len += 1;
    }

    fn contains(&self, host: &Arc<Host>) -> bool {
        let id = Arc::as_ptr(host) as usize;
        self.ids[..self.len.min(self.ids.len())].contains(&id)
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The downstream body, as many times as the tries need it. A body kept for nobody is still
/// read through a `ReplayBody` (with nothing kept), which notes the upload's progress for the
/// stream idle timeout.
enum RequestBody {
    Empty,
    Streamed(ReplayBody),
}

impl RequestBody {
    fn new(body: Incoming, replayable: bool) -> RequestBody {
        if http_body::Body::is_end_stream(&body) {
            return RequestBody::Empty;
        }
        let limit = if replayable { DEFAULT_REPLAY_LIMIT } else { 0 };
        RequestBody::Streamed(ReplayBody::new(body, limit))
    }

    /// The body for one more sending: a try, or a mirror (which reads at its own pace and
    /// never holds up the tries). `None` once the start of the body is no longer kept.
    fn copy(&self) -> Option<ProxyBody> {
        match self {
            RequestBody::Empty => Some(ProxyBody::Empty),
            RequestBody::Streamed(body) => body.replay().ok().map(ProxyBody::Replay),
        }
    }

    fn is_replayable(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Streamed(body) => body.is_replayable(),
        }
    }

    fn last_activity(&self) -> Option<Instant> {
        match self {
            RequestBody::Empty => None,
            RequestBody::Streamed(body) => Some(body.last_activity()),
        }
    }

    /// The count of bytes read from the client, for the request's record.
    fn received(&self) -> Option<Arc<AtomicU64>> {
        match self {
            RequestBody::Empty => None,
            RequestBody::Streamed(body) => Some(body.received()),
        }
    }
}

/// How one try ended. Not boxed: that would cost an allocation per request, and the value
/// only lives on the stack of the loop.
#[allow(clippy::large_enum_variant)]
enum TryResult {
    Response(Response<UpstreamBody>),
    Failed(TryFailure, Option<SendError>),
    TotalTimeout,
    Idle,
    /// A circuit breaker refused the request before it left.
    Overflow,
}

#[derive(Clone, Copy)]
struct TryTimers {
    per_try: Option<Instant>,
    total: Option<Instant>,
    idle: Option<std::time::Duration>,
}

async fn one_try(
    host: &Arc<Host>,
    req: Request<ProxyBody>,
    connect_timeout: std::time::Duration,
    timers: TryTimers,
    body: &RequestBody,
) -> TryResult {
    let send = host.pool().send(req, connect_timeout);
    tokio::pin!(send);
    let mut idle_deadline = timers.idle.map(|d| Instant::now() + d);
    loop {
        tokio::select! {
            biased;
            result = &mut send => return match result {
                Ok(resp) => TryResult::Response(resp),
                Err(SendError::Overflow(_)) => TryResult::Overflow,
                Err(e) => TryResult::Failed(classify(&e), Some(e)),
            },
            () = sleep_until(timers.total) => return TryResult::TotalTimeout,
            () = sleep_until(timers.per_try) => {
                return TryResult::Failed(TryFailure::PerTryTimeout, None)
            }
            () = sleep_until(idle_deadline) => {
                // An upload still under way is activity: the stream is slow, not idle.
                let idle = timers.idle.unwrap_or_default();
                match body.last_activity() {
                    Some(last) if last + idle > Instant::now() => idle_deadline = Some(last + idle),
                    _ => return TryResult::Idle,
                }
            }
        }
    }
}

/// What outlier detection learns from a try: the host's status, or a failure of ours to
/// reach it. A try the proxy itself cut short (overflow, idle) says nothing of the host.
fn outlier_outcome(result: &TryResult) -> Option<TryOutcome> {
    match result {
        TryResult::Response(resp) => Some(TryOutcome::Status(resp.status().as_u16())),
        TryResult::Failed(TryFailure::PerTryTimeout, _) | TryResult::TotalTimeout => {
            Some(TryOutcome::LocalTimeout)
        }
        TryResult::Failed(_, _) => Some(TryOutcome::LocalFailure),
        TryResult::Idle | TryResult::Overflow => None,
    }
}

/// Envoy's `upstream_rq_timeout` (the route's timeout) and `upstream_rq_per_try_timeout`.
fn count_timeout(stats: &ClusterStats, result: &TryResult) {
    let counter = match result {
        TryResult::TotalTimeout => &stats.rq_timeout,
        TryResult::Failed(TryFailure::PerTryTimeout, _) => &stats.rq_per_try_timeout,
        _ => return,
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn classify(e: &SendError) -> TryFailure {
    match e {
        SendError::Connect(_) => TryFailure::ConnectFailure,
        SendError::ClosedBeforeSend => TryFailure::ResetBeforeRequest,
        SendError::Reset(e) if crate::upstream::pool::unprocessed(e) => TryFailure::RefusedStream,
        SendError::Reset(_) => TryFailure::Reset,
        // Answered before classification (see `one_try`); never a reason to retry.
        SendError::Overflow(_) => TryFailure::ResetBeforeRequest,
    }
}

/// The upstream response on its way down: hop-by-hop headers out, and the body keeps the
/// host's in-flight count and the remaining timers until it ends.
fn finish(
    resp: Response<UpstreamBody>,
    in_flight: crate::body::InFlight,
    deadline: Option<Instant>,
    idle: Option<std::time::Duration>,
) -> Response<ProxyBody> {
    let (mut parts, mut body) = resp.into_parts();
    super::headers::strip_hop_by_hop(&mut parts.headers);
    body.count_in_flight(in_flight);
    if let Some(d) = deadline {
        body.set_deadline(d);
    }
    if let Some(i) = idle {
        body.set_idle_timeout(i);
    }
    Response::from_parts(parts, ProxyBody::Upstream(body))
}
