//! The ADS load client (`weft-bench ads-load`): N simulated proxies on one thread, each with
//! its own gRPC connection, node id and outbound address, speaking state-of-the-world or
//! delta ADS to weftd the way a sidecar does: CDS and LDS by wildcard, then EDS and RDS by the
//! names those name, and an ACK for every response.
//!
//! It measures xDS push latency itself, so that the clock and the file write are in the same
//! process: it writes a changed file into weftd's folder and times until every client has
//! received and ACKed a response carrying the new version for clusters, endpoints and routes
//! (the probe change adds a service, so all three change).
//!
//! The simulated proxies are one class: for one config version weftd sends every one of them
//! the same clusters and listeners over state-of-the-world. The client reads the names those
//! make it follow once per (type, version) and shares them between its proxies
//! ([`FollowCache`]), so that its own decoding (3,000 clusters for each of 2,000 proxies, on the
//! one core it has) does not pace the measurement of weftd.
//!
//! It prints JSON lines: `{"phase":"connected",...}` once every client holds a full config
//! (the harness samples weftd's CPU and memory then), and `{"phase":"done",...}` at the end.

use crate::ads_wire::{self, EncodedNames};
use crate::configs::{push_probe, write_atomic};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};
use xds_protos::any::unpack;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::cluster::v3::{
    cluster::ClusterDiscoveryType, cluster::DiscoveryType, Cluster,
};
use xds_protos::pb::envoy::config::listener::v3::{filter::ConfigType, Listener};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use xds_protos::type_url::{CLUSTER, ENDPOINT, HTTP_CONNECTION_MANAGER, LISTENER, ROUTE};
use xds_protos::{DeltaDiscoveryRequest, DiscoveryRequest};

#[derive(clap::Args, Debug, Clone)]
pub struct AdsArgs {
    #[arg(long)]
    pub xds_addr: SocketAddr,
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Incremental (delta) ADS instead of state-of-the-world.
    #[arg(long)]
    pub delta: bool,
    /// weftd's config folder: the probe file is written there.
    #[arg(long)]
    pub config_dir: PathBuf,
    /// How many changes to time.
    #[arg(long, default_value_t = 5)]
    pub pushes: usize,
    /// The endpoint port of the probe service (any port: nothing calls it).
    #[arg(long, default_value_t = 9)]
    pub probe_port: u16,
    /// Give up on a push (or on the initial config) after this long.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Pause between pushes, so each is timed on its own and not merged by weftd's debounce.
    #[arg(long, default_value_t = 300)]
    pub gap_ms: u64,
    /// The HTTP/2 frame size the proxies accept: weft-proxy's by default; 16384 is Envoy's.
    #[arg(long, default_value_t = xds_protos::CLIENT_MAX_FRAME_SIZE)]
    pub max_frame_size: u32,
    /// Where to write the final JSON; stdout still gets it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The final report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdsReport {
    pub phase: String,
    pub clients: usize,
    pub protocol: String,
    /// From starting to connect until every client ACKed its whole initial config.
    pub connect_secs: f64,
    /// Per push: file written -> last client ACKed (ms).
    pub push_all_ms: Vec<f64>,
    /// Per push: the median client's latency (ms).
    pub push_median_ms: Vec<f64>,
    /// Per push: the 99th-percentile client's latency (ms; nearest rank).
    #[serde(default)]
    pub push_p99_ms: Vec<f64>,
    /// Pushes that did not reach every client within the timeout.
    pub timeouts: usize,
}

/// The types the probe change touches, by index into the per-client version table.
const TYPES: [&str; 4] = [CLUSTER, ENDPOINT, LISTENER, ROUTE];
const CHANGED: [usize; 3] = [0, 1, 3];

/// The names a whole state-of-the-world CDS or LDS response makes a proxy follow, by (type
/// index, `version_info`), encoded for its requests: what every proxy of the class is sent
/// for that version.
#[derive(Default)]
struct FollowCache(std::cell::RefCell<HashMap<(usize, String), EncodedNames>>);

impl FollowCache {
    fn get_or(&self, t: usize, version: &str, read: impl FnOnce() -> Vec<String>) -> EncodedNames {
        let key = (t, version.to_string());
        if let Some(v) = self.0.borrow().get(&key) {
            return v.clone();
        }
        let v = EncodedNames::new(&read());
        self.0.borrow_mut().insert(key, v.clone());
        v
    }
}

fn type_index(url: &str) -> Option<usize> {
    TYPES.iter().position(|t| *t == url)
}

/// A client ACKed a response of `type_idx` carrying `version`.
struct Ack {
    client: usize,
    type_idx: usize,
    version: String,
    at: Instant,
}

pub fn run(args: AdsArgs) -> Result<()> {
    keep_freed_memory();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, drive(args))
}

/// The client receives a few hundred kilobytes per simulated proxy in turn. glibc hands each
/// such buffer back to the kernel when it is freed and maps fresh pages for the next, so the
/// kernel zeroed pages for every response: 28 % of the client's CPU while 2,000 delta proxies
/// connected (perf), and the client, one thread standing in for them all, paces that phase.
/// Freed memory stays in the heap instead (this process only).
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    let set = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
    };
    if !set {
        // Figures are still right, but the client may pace the connect phase again.
        eprintln!(
            "ads-load: malloc did not take the thresholds; freed memory goes back to the kernel"
        );
    }
}

fn emit(line: &impl Serialize) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(line)?)?;
    out.flush()?;
    Ok(())
}

async fn drive(args: AdsArgs) -> Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Ack>();
    let endpoint = Endpoint::from_shared(format!("http://{}", args.xds_addr))?
        .tcp_nodelay(true)
        .max_frame_size(args.max_frame_size)
        .connect_timeout(Duration::from_secs(10));
    let start = Instant::now();
    // versions[client][type]: the last version the client ACKed.
    let mut versions: Vec<[Option<String>; 4]> = vec![Default::default(); args.clients];
    let mut errors = Vec::new();
    let follow = Rc::new(FollowCache::default());
    let deltas = Rc::new(DeltaDeps::default());
    for i in 0..args.clients {
        let channel = endpoint.connect().await.context("connect to weftd")?;
        let tx = tx.clone();
        let delta = args.delta;
        let (err_tx, err_rx) = tokio::sync::oneshot::channel();
        errors.push(err_rx);
        let follow = follow.clone();
        let deltas = deltas.clone();
        tokio::task::spawn_local(async move {
            let r = if delta {
                delta_client(i, channel, tx, &deltas).await
            } else {
                sotw_client(i, channel, tx, &follow).await
            };
            let _ = err_tx.send(r);
        });
    }
    drop(tx);
    let limit = Duration::from_secs_f64(args.timeout);

    // Initial config: every client ACKed clusters, listeners, and the endpoints and routes
    // they name.
    let initial = |v: &Vec<[Option<String>; 4]>| v.iter().all(|c| c.iter().all(Option::is_some));
    while !initial(&versions) {
        match tokio::time::timeout_at(start + limit, rx.recv()).await {
            Ok(Some(a)) => versions[a.client][a.type_idx] = Some(a.version),
            Ok(None) => bail!("every client stopped: {}", first_error(errors).await),
            Err(_) => {
                let done = versions
                    .iter()
                    .filter(|c| c.iter().all(Option::is_some))
                    .count();
                bail!(
                    "only {done} of {} clients got a whole config within {limit:?}",
                    args.clients
                )
            }
        }
    }
    let connect_secs = start.elapsed().as_secs_f64();
    emit(&serde_json::json!({"phase": "connected", "secs": connect_secs}))?;

    let mut report = AdsReport {
        phase: "done".into(),
        clients: args.clients,
        protocol: if args.delta { "delta" } else { "sotw" }.into(),
        connect_secs,
        push_all_ms: Vec::new(),
        push_median_ms: Vec::new(),
        push_p99_ms: Vec::new(),
        timeouts: 0,
    };
    let generation_base = std::process::id() as u64 * 1000;
    for k in 0..args.pushes {
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
        // Drain ACKs that arrived during the gap (there should be none).
        while let Ok(a) = rx.try_recv() {
            versions[a.client][a.type_idx] = Some(a.version);
        }
        let before = versions.clone();
        let mut done_at: Vec<Option<Instant>> = vec![None; args.clients];
        let mut remaining = args.clients;
        let text = push_probe(generation_base + k as u64, args.probe_port);
        let t0 = Instant::now();
        write_atomic(&args.config_dir, "push-probe.yaml", &text)?;
        while remaining > 0 {
            match tokio::time::timeout_at(t0 + limit, rx.recv()).await {
                Ok(Some(a)) => {
                    versions[a.client][a.type_idx] = Some(a.version);
                    let c = a.client;
                    let changed = CHANGED.iter().all(|&t| versions[c][t] != before[c][t]);
                    if done_at[c].is_none() && changed {
                        done_at[c] = Some(a.at);
                        remaining -= 1;
                    }
                }
                Ok(None) => bail!("every client stopped: {}", first_error(errors).await),
                Err(_) => break,
            }
        }
        if remaining > 0 {
            report.timeouts += 1;
            continue;
        }
        let mut ms: Vec<f64> = done_at
            .iter()
            .flatten()
            .map(|t| t.duration_since(t0).as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        report.push_all_ms.push(*ms.last().unwrap_or(&0.0));
        report.push_median_ms.push(ms[ms.len() / 2]);
        report.push_p99_ms.push(nearest_rank(&ms, 0.99));
    }
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string(&report)?)?;
    }
    emit(&report)?;
    // Leave the folder as it was, for whoever measures next (after the report, so that the
    // harness's CPU reading does not include this last push).
    let _ = std::fs::remove_file(args.config_dir.join("push-probe.yaml"));
    Ok(())
}

/// The nearest-rank percentile `q` (0..=1) of sorted, non-empty `sorted`.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn first_error(errors: Vec<tokio::sync::oneshot::Receiver<Result<()>>>) -> String {
    for e in errors {
        if let Ok(Err(e)) = e.await {
            return format!("{e:#}");
        }
    }
    "no error reported".into()
}

fn identity(i: usize) -> NodeIdentity {
    NodeIdentity {
        id: format!("sidecar~127.0.0.1~ads-load-{i}.default~default.svc.cluster.local"),
        namespace: "default".into(),
        workload: format!("ads-load-{i}"),
        // Distinct per client, as real sidecars' are; nothing listens there.
        outbound_addr: Some(format!("127.0.0.1:{}", 20_000 + i % 40_000)),
        ..Default::default()
    }
}

/// The EDS name of a cluster that gets its endpoints from EDS.
fn eds_name(c: &Cluster) -> Option<String> {
    let is_eds = matches!(c.cluster_discovery_type, Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32);
    if !is_eds {
        return None;
    }
    let service = c
        .eds_cluster_config
        .as_ref()
        .map(|e| e.service_name.clone())
        .unwrap_or_default();
    Some(if service.is_empty() {
        c.name.clone()
    } else {
        service
    })
}

/// The route configurations a listener's HTTP connection managers fetch over RDS.
fn rds_names(l: &Listener) -> Vec<String> {
    let mut out = Vec::new();
    for chain in l.filter_chains.iter().chain(l.default_filter_chain.iter()) {
        for f in &chain.filters {
            let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
                continue;
            };
            if any.type_url != HTTP_CONNECTION_MANAGER {
                continue;
            }
            let Ok(hcm) = unpack::<HttpConnectionManager>(HTTP_CONNECTION_MANAGER, any) else {
                continue;
            };
            if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                out.push(rds.route_config_name);
            }
        }
    }
    out
}

/// One state-of-the-world proxy.
async fn sotw_client(
    i: usize,
    channel: Channel,
    acks: mpsc::UnboundedSender<Ack>,
    cache: &FollowCache,
) -> Result<()> {
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let node = identity(i).to_node("weft-bench-ads-load");
    let nothing = EncodedNames::default();
    for (n, t) in [CLUSTER, LISTENER].iter().enumerate() {
        let head = DiscoveryRequest {
            node: (n == 0).then(|| node.clone()),
            type_url: t.to_string(),
            ..Default::default()
        };
        tx.send(ads_wire::sotw_request(&head, &nothing))?;
    }
    let mut stream = ads_wire::sotw(channel, UnboundedReceiverStream::new(rx)).await?;
    // Per type: the names subscribed, the last ACKed version and nonce.
    let mut names: [EncodedNames; 4] = Default::default();
    let mut acked: [(String, String); 4] = Default::default();
    while let Some(message) = stream.message().await? {
        let resp = ads_wire::SotwHead::decode(message.clone())?;
        let Some(t) = type_index(&resp.type_url) else {
            continue;
        };
        // What the names of dependent resources are now, from clusters and listeners.
        let resources = || -> Vec<Bytes> {
            ads_wire::SotwResponse::decode(message.clone())
                .map(|r| r.resources)
                .unwrap_or_default()
        };
        let follow = match t {
            0 => Some((
                1,
                cache.get_or(t, &resp.version_info, || {
                    let set: BTreeSet<String> = resources()
                        .iter()
                        .filter_map(ads_wire::any)
                        .filter_map(|a| unpack::<Cluster>(CLUSTER, &a).ok())
                        .filter_map(|c| eds_name(&c))
                        .collect();
                    set.into_iter().collect()
                }),
            )),
            2 => Some((
                3,
                cache.get_or(t, &resp.version_info, || {
                    let set: BTreeSet<String> = resources()
                        .iter()
                        .filter_map(ads_wire::any)
                        .filter_map(|a| unpack::<Listener>(LISTENER, &a).ok())
                        .flat_map(|l| rds_names(&l))
                        .collect();
                    set.into_iter().collect()
                }),
            )),
            _ => None,
        };
        acked[t] = (resp.version_info.clone(), resp.nonce.clone());
        let ack = DiscoveryRequest {
            version_info: resp.version_info.clone(),
            response_nonce: resp.nonce.clone(),
            type_url: resp.type_url.clone(),
            ..Default::default()
        };
        tx.send(ads_wire::sotw_request(&ack, &names[t]))?;
        let _ = acks.send(Ack {
            client: i,
            type_idx: t,
            version: resp.version_info,
            at: Instant::now(),
        });
        if let Some((dep, wanted)) = follow {
            if wanted != names[dep] {
                names[dep] = wanted;
                let subscribe = DiscoveryRequest {
                    version_info: acked[dep].0.clone(),
                    response_nonce: acked[dep].1.clone(),
                    type_url: TYPES[dep].to_string(),
                    ..Default::default()
                };
                tx.send(ads_wire::sotw_request(&subscribe, &names[dep]))?;
            }
        }
    }
    bail!("client {i}: weftd closed the stream")
}

/// One delta (incremental) proxy.
async fn delta_client(
    i: usize,
    channel: Channel,
    acks: mpsc::UnboundedSender<Ack>,
    deps_cache: &DeltaDeps,
) -> Result<()> {
    let (tx, rx) = mpsc::unbounded_channel::<DeltaDiscoveryRequest>();
    let node = identity(i).to_node("weft-bench-ads-load");
    for (n, t) in [CLUSTER, LISTENER].iter().enumerate() {
        // A first request that names nothing is the wildcard subscription.
        tx.send(DeltaDiscoveryRequest {
            node: (n == 0).then(|| node.clone()),
            type_url: t.to_string(),
            ..Default::default()
        })?;
    }
    let mut stream = ads_wire::delta(channel, UnboundedReceiverStream::new(rx)).await?;
    // Per followed type (clusters, listeners): what each held resource makes us follow, and
    // how many held resources follow each name, so a response changes the subscription by
    // what it carries only.
    let mut held: [ByName<Names>; 4] = Default::default();
    let mut following: [HashMap<Rc<str>, usize>; 4] = Default::default();
    while let Some(resp) = stream.message().await? {
        let Some(t) = type_index(&resp.type_url) else {
            continue;
        };
        let (mut add, mut drop): (Vec<Rc<str>>, Vec<Rc<str>>) = (Vec::new(), Vec::new());
        if t == 0 || t == 2 {
            let dep = t + 1;
            let mut unfollow = |deps: &[Rc<str>], following: &mut HashMap<Rc<str>, usize>| {
                for d in deps {
                    if let Some(n) = following.get_mut(d) {
                        *n -= 1;
                        if *n == 0 {
                            following.remove(d);
                            drop.push(d.clone());
                        }
                    }
                }
            };
            for r in &resp.resources {
                let f = deps_cache.of(t, r);
                if let Some(old) = held[t].insert(f.name, f.deps.clone()) {
                    unfollow(&old, &mut following[dep]);
                }
                for d in f.deps.iter() {
                    let n = following[dep].entry(d.clone()).or_insert(0);
                    *n += 1;
                    if *n == 1 {
                        add.push(d.clone());
                    }
                }
            }
            for name in &resp.removed_resources {
                if let Some(old) = held[t].remove(name.as_str()) {
                    unfollow(&old, &mut following[dep]);
                }
            }
            // A name dropped and followed again within one response stays.
            add.retain(|d| !drop.contains(d));
            drop.retain(|d| !following[dep].contains_key(d));
        }
        tx.send(DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        })?;
        let _ = acks.send(Ack {
            client: i,
            type_idx: t,
            version: resp.system_version_info.clone(),
            at: Instant::now(),
        });
        if !add.is_empty() || !drop.is_empty() {
            add.sort_unstable();
            tx.send(DeltaDiscoveryRequest {
                type_url: TYPES[t + 1].to_string(),
                resource_names_subscribe: add.iter().map(|d| d.to_string()).collect(),
                resource_names_unsubscribe: drop.iter().map(|d| d.to_string()).collect(),
                ..Default::default()
            })?;
        }
    }
    bail!("client {i}: weftd closed the stream")
}

/// What a delta resource makes a proxy follow: its name and its dependencies, shared (not
/// copied) by every simulated proxy that holds it.
#[derive(Clone)]
struct Followed {
    name: Rc<str>,
    deps: Names,
}

/// [`Followed`] by type index and resource name, for the version last seen: the same resource
/// is decoded once for every simulated proxy.
#[derive(Default)]
struct DeltaDeps(std::cell::RefCell<[ByName<(String, Followed)>; 4]>);

/// Names shared by every simulated proxy that holds them.
type Names = Rc<[Rc<str>]>;
type ByName<V> = HashMap<Rc<str>, V>;

impl DeltaDeps {
    fn of(&self, t: usize, r: &ads_wire::DeltaResource) -> Followed {
        if let Some((version, f)) = self.0.borrow()[t].get(r.name.as_str()) {
            if *version == r.version {
                return f.clone();
            }
        }
        let any = ads_wire::any(&r.resource);
        let deps: Vec<String> = match (t, any) {
            (0, Some(any)) => unpack::<Cluster>(CLUSTER, &any)
                .ok()
                .and_then(|c| eds_name(&c))
                .into_iter()
                .collect(),
            (_, Some(any)) => unpack::<Listener>(LISTENER, &any)
                .map(|l| rds_names(&l))
                .unwrap_or_default(),
            (_, None) => Vec::new(),
        };
        let f = Followed {
            name: Rc::from(r.name.as_str()),
            deps: deps.into_iter().map(Rc::from).collect(),
        };
        self.0.borrow_mut()[t].insert(f.name.clone(), (r.version.clone(), f.clone()));
        f
    }
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn p99_is_the_nearest_rank() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.99), 198.0);
        assert_eq!(nearest_rank(&v[..1], 0.99), 1.0);
        assert_eq!(nearest_rank(&v[..100], 0.99), 99.0);
    }
}
