//! The one loop that drives an ADS stream, state-of-the-world or delta.
//!
//! What both protocols share lives here and in [`super::Session`]: opening the stream,
//! following published configurations, stepping a push through [`super::sequencer`] (waiting
//! for each answer, bounded by its deadline), reporting convergence, and giving back the push
//! slot once the proxy has answered everything. What differs — how a request is read (nonces,
//! subscriptions, ACK and NACK) and what a response carries — is the [`Protocol`] part.

use super::sequencer::Phase;
use super::wire::FromFrame;
use super::{Session, Shared, StreamIo};
use std::sync::Arc;
use tracing::{debug, warn};
use xds_protos::pb::envoy::config::core::v3::Node;
use xds_protos::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

/// The per-protocol part of a stream: it owns the [`Session`] and its per-type state.
pub(super) trait Protocol: Sized {
    type Request: FromFrame + Send + 'static;
    /// For logs and `/debug/syncz`.
    const NAME: &'static str;

    fn node(req: &Self::Request) -> Option<&Node>;
    fn new(session: Session<Self::Request>) -> Self;
    fn session(&mut self) -> &mut Session<Self::Request>;

    /// Reads one request: an answer (ACK or NACK) and/or a change of subscription, and sends
    /// what the change asks for.
    async fn on_request(&mut self, req: Self::Request) -> Result<(), StreamEnd>;

    /// One step of a push: sends what changed of `type_url` for this proxy, if it subscribed
    /// to it. Whether a response was sent (the push then waits for its answer).
    async fn push(&mut self, type_url: &'static str, phase: Phase) -> Result<bool, StreamEnd>;

    /// Whether every response sent has been answered.
    fn all_answered(&self) -> bool;

    /// Whether the proxy has asked for `type_url` yet.
    fn requested(&self, type_url: &str) -> bool;
}

/// Types a proxy asks for only once it holds the type that names them: the endpoints of the
/// clusters it was sent, the routes of its listeners.
const FOLLOW_UPS: [(&str, &str); 2] = [(CLUSTER, ENDPOINT), (LISTENER, ROUTE)];

/// Whether the proxy, connecting, will ask for a type it has not asked for yet: it was sent
/// clusters (listeners) and there are endpoints (routes) to follow. Its push slot is kept
/// until then, so a connecting proxy gets its whole configuration in one turn; given back in
/// between, the proxy would queue for a slot again holding its subscription (thousands of
/// endpoint names), 2,000 times over.
fn awaits_follow_up<P: Protocol>(p: &mut P) -> bool {
    FOLLOW_UPS.iter().any(|&(parent, child)| {
        p.requested(parent)
            && !p.requested(child)
            && p.session()
                .resources
                .shared_of_type(child)
                .is_some_and(|m| !m.is_empty())
    })
}

pub(super) async fn run<P: Protocol>(shared: Arc<Shared>, io: StreamIo<P::Request>) {
    let Some((session, first)) = Session::open(shared, io, P::NAME, P::node).await else {
        return;
    };
    let mut stream = P::new(session);
    if let Err(e) = drive(&mut stream, first).await {
        let s = stream.session();
        if let StreamEnd::BadRequest(why) = &e {
            warn!(node = %s.identity.id, error = %why, "ending the stream");
            s.io.fail(tonic::Status::invalid_argument(why.clone()))
                .await;
        }
        debug!(conn = s.conn, error = %e, "stream ended");
    }
}

async fn drive<P: Protocol>(p: &mut P, first: P::Request) -> Result<(), StreamEnd> {
    let mut config_rx = p.session().shared.config.clone();
    p.on_request(first).await?;
    loop {
        while let Some(step) = p.session().seq.next_step() {
            if p.push(step.type_url, step.phase).await? {
                p.session().seq.wait_for(step.type_url);
            }
        }
        let s = p.session();
        if let Some(since) = s.seq.take_finished() {
            s.shared.status.converged(since);
        }
        if p.all_answered() && !awaits_follow_up(p) {
            p.session().release_slot();
        }
        let s = p.session();
        let deadline = s.seq.deadline();
        let slot_deadline = s.slot_deadline();
        tokio::select! {
            msg = s.io.requests.message() => match msg {
                Ok(Some(req)) => p.on_request(req).await?,
                Ok(None) => return Err(StreamEnd::ClientClosed),
                Err(status) => return Err(StreamEnd::Grpc(status)),
            },
            changed = config_rx.changed() => {
                changed.map_err(|_| StreamEnd::ServerStopping)?;
                let config = config_rx.borrow_and_update().clone();
                p.session().reconfigure(config).await?;
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                let s = p.session();
                warn!(node = %s.identity.id, "no answer in time, continuing the push");
                s.seq.timed_out();
            }
            _ = sleep_until(slot_deadline), if slot_deadline.is_some() => {
                p.session().release_slot();
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[derive(Debug, thiserror::Error)]
pub(super) enum StreamEnd {
    #[error("the proxy closed the stream")]
    ClientClosed,
    #[error("grpc error: {0}")]
    Grpc(tonic::Status),
    #[error("the server is stopping")]
    ServerStopping,
    /// A request weftd cannot read: the proxy is told why and the stream ends.
    #[error("bad request: {0}")]
    BadRequest(String),
}
