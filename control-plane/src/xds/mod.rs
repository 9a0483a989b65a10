//! The ADS server: state-of-the-world and delta streams over one gRPC service.
//!
//! A new configuration is published once, as a [`ConfigVersion`] on a watch channel; every
//! stream notices it, generates the resources of its own proxy and pushes them in
//! make-before-break order (see [`sequencer`]). What each proxy was sent, ACKed and NACKed is
//! recorded in [`StatusRegistry`].
//!
//! Generating may translate (the first proxy of a class after a change), which is CPU work:
//! it runs on the blocking pool, never on the async workers that serve the streams, and at
//! most [`generation_slots`] generations run at once. Sessions wait for a slot in arrival
//! order (the semaphore is fair), which makes the slots the bounded queue of pending pushes.
//!
//! Sending is bounded too. A response is a copy of the bytes of every resource in it, and a
//! proxy that reads slowly leaves it buffered in weftd: 2,000 proxies each sent the clusters,
//! endpoints and routes of 1,000 services at once is gigabytes. So a session takes one of
//! [`PUSH_SLOTS`] before it sends and keeps it until the proxy has answered everything it was
//! sent (and, connecting, asked for the endpoints and routes that follow its clusters and
//! listeners), or for [`SLOT_HOLD`] at most, so that a proxy that never answers cannot keep it.
//!
//! Responses are assembled from the resources' shared serialized bytes and framed by weftd
//! itself, not by tonic's encoder (see [`wire`]).

mod compact;
mod delta;
mod driver;
mod map_diff;
pub mod resources;
pub mod sequencer;
mod service;
mod sotw;
pub mod status;
pub mod wire;

pub use resources::{ConfigVersion, ResourceGenerator, Resources, VersionedResource};
pub use status::{ProxyStatus, StatusRegistry};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use wire::EncodedMessage;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::core::v3::Node;

/// How many sessions may have responses out that their proxy has not answered yet
/// (istiod's default push throttle is 100).
pub const PUSH_SLOTS: usize = 64;

/// The longest a session keeps its push slot while its proxy does not answer.
pub const SLOT_HOLD: std::time::Duration = sequencer::ACK_WAIT;

/// State every stream shares.
pub struct Shared {
    pub config: watch::Receiver<Arc<ConfigVersion>>,
    pub status: Arc<StatusRegistry>,
    conn_ids: AtomicU64,
    generation: Semaphore,
    push_slots: Arc<Semaphore>,
    /// Whole maps' resources, encoded once for every session that sends them.
    whole_maps: wire::WholeMaps,
    /// What changed between shared maps, found once for every session that rebases.
    map_diffs: map_diff::MapDiffs,
}

/// How many generations may run at once: one per core, leaving the async workers free.
pub fn generation_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Shared {
    fn next_conn_id(&self) -> u64 {
        self.conn_ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The resources of `identity` under `config`, generated on the blocking pool. `None`
    /// when the server is stopping (the runtime cancelled the work).
    async fn generate(
        &self,
        config: &Arc<ConfigVersion>,
        identity: &NodeIdentity,
    ) -> Option<Resources> {
        // The semaphore is never closed.
        let _slot = self.generation.acquire().await.ok()?;
        let generator = config.generator.clone();
        let identity = identity.clone();
        match tokio::task::spawn_blocking(move || generator.generate(&identity)).await {
            Ok(resources) => Some(resources),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        }
    }
}

/// The two halves of one bidirectional stream.
struct StreamIo<Req> {
    requests: wire::RequestStream<Req>,
    responses: mpsc::Sender<Result<EncodedMessage, Status>>,
}

impl<Req> StreamIo<Req> {
    // The futures borrow the response sender only: the request body is not `Sync`, and a
    // session's future must stay `Send`.
    fn send(
        &self,
        resp: EncodedMessage,
    ) -> impl std::future::Future<Output = Result<(), driver::StreamEnd>> + Send + '_ {
        let tx = &self.responses;
        async move {
            tx.send(Ok(resp))
                .await
                .map_err(|_| driver::StreamEnd::ClientClosed)
        }
    }

    fn fail(&self, status: Status) -> impl std::future::Future<Output = ()> + Send + '_ {
        let tx = &self.responses;
        async move {
            let _ = tx.send(Err(status)).await;
        }
    }
}

/// What every session, state-of-the-world or delta, holds: who the proxy is, what it should
/// have now, and the push in progress.
struct Session<Req> {
    shared: Arc<Shared>,
    conn: u64,
    identity: NodeIdentity,
    io: StreamIo<Req>,
    config: Arc<ConfigVersion>,
    resources: Resources,
    seq: sequencer::PushSequencer,
    nonce: u64,
    /// The push slot, while responses are unanswered, and when it must be given back.
    slot: Option<(OwnedSemaphorePermit, tokio::time::Instant)>,
}

impl<Req: wire::FromFrame> Session<Req> {
    /// Reads the first request, which must name the proxy, and registers the stream.
    async fn open(
        shared: Arc<Shared>,
        mut io: StreamIo<Req>,
        protocol: &'static str,
        node_of: fn(&Req) -> Option<&Node>,
    ) -> Option<(Self, Req)> {
        let first = io.requests.message().await.ok()??;
        let Some(node) = node_of(&first) else {
            io.fail(Status::invalid_argument(
                "the first request must carry a Node",
            ))
            .await;
            return None;
        };
        let identity = NodeIdentity::from_node(node);
        let config = shared.config.borrow().clone();
        let resources = shared.generate(&config, &identity).await?;
        let conn = shared.next_conn_id();
        shared.status.connect(conn, &identity, protocol);
        tracing::info!(node = %identity.id, conn, protocol, "proxy connected");
        let session = Session {
            shared,
            conn,
            identity,
            io,
            config,
            resources,
            seq: sequencer::PushSequencer::default(),
            nonce: 0,
            slot: None,
        };
        Some((session, first))
    }

    /// A new configuration was published: regenerate and start pushing it.
    async fn reconfigure(&mut self, config: Arc<ConfigVersion>) -> Result<(), driver::StreamEnd> {
        self.resources = self
            .shared
            .generate(&config, &self.identity)
            .await
            .ok_or(driver::StreamEnd::ServerStopping)?;
        self.seq.start(config.published);
        self.config = config;
        Ok(())
    }

    /// Before sending: waits for a push slot unless the session holds one, and (re)starts the
    /// time it may be held.
    async fn take_slot(&mut self) {
        let until = tokio::time::Instant::now() + SLOT_HOLD;
        match &mut self.slot {
            Some((_, deadline)) => *deadline = until,
            None => {
                // The semaphore is never closed.
                if let Ok(permit) = self.shared.push_slots.clone().acquire_owned().await {
                    self.slot = Some((permit, until));
                }
            }
        }
    }

    /// The proxy answered everything, or took too long: the slot goes to the next session.
    fn release_slot(&mut self) {
        self.slot = None;
    }

    fn slot_deadline(&self) -> Option<tokio::time::Instant> {
        self.slot.as_ref().map(|(_, d)| *d)
    }

    fn next_nonce(&mut self) -> String {
        self.nonce += 1;
        self.nonce.to_string()
    }
}

impl<Req> Drop for Session<Req> {
    fn drop(&mut self) {
        self.shared.status.disconnect(self.conn);
        tracing::info!(node = %self.identity.id, conn = self.conn, "proxy disconnected");
    }
}

#[derive(Clone)]
pub struct AdsService {
    shared: Arc<Shared>,
}

impl AdsService {
    pub fn new(config: watch::Receiver<Arc<ConfigVersion>>, status: Arc<StatusRegistry>) -> Self {
        Self::with_push_slots(config, status, PUSH_SLOTS)
    }

    /// [`AdsService::new`] with another number of push slots (see the module note).
    pub fn with_push_slots(
        config: watch::Receiver<Arc<ConfigVersion>>,
        status: Arc<StatusRegistry>,
        push_slots: usize,
    ) -> Self {
        AdsService {
            shared: Arc::new(Shared {
                config,
                status,
                conn_ids: AtomicU64::new(0),
                generation: Semaphore::new(generation_slots()),
                push_slots: Arc::new(Semaphore::new(push_slots.max(1))),
                whole_maps: wire::WholeMaps::default(),
                map_diffs: map_diff::MapDiffs::default(),
            }),
        }
    }

    /// The gRPC service, ready for tonic's server.
    pub fn into_server(self) -> service::AdsServer {
        service::AdsServer::new(self.shared)
    }
}

/// Serves ADS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: AdsService,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Where the server listens, for logs.
pub fn describe(addr: SocketAddr) -> String {
    format!("grpc://{addr}")
}
