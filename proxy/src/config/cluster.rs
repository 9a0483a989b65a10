//! `Cluster` to the settings the cluster manager needs.
//!
//! Load balancing follows Envoy: `lb_policy` ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH and
//! MAGLEV with their `*_lb_config` (defaults filled in here), `common_lb_config`'s panic
//! threshold, and CLUSTER_PROVIDED for ORIGINAL_DST clusters. What would change where traffic
//! goes but is not implemented is refused by field name: `load_balancing_policy`,
//! `lb_subset_config` with selectors, a config block for another policy, a non-empty
//! `original_dst_lb_config`, locality/zone-aware balancing, and the other
//! `common_lb_config` switches (see `common_lb_config` below).

use std::time::Duration;

use xds_protos::pb::envoy::config::cluster::v3::{
    cluster::{
        common_lb_config::LocalityConfigSpecifier, ring_hash_lb_config::HashFunction,
        ClusterDiscoveryType, CommonLbConfig, DiscoveryType, LbConfig, LbPolicy as ProtoLbPolicy,
        LeastRequestLbConfig, MaglevLbConfig, RingHashLbConfig, RoundRobinLbConfig,
        SlowStartConfig,
    },
    Cluster,
};
use xds_protos::pb::envoy::config::core::v3::{transport_socket, RuntimeDouble};
use xds_protos::pb::envoy::r#type::v3::Percent as ProtoPercent;

use super::endpoint::{endpoints, Endpoint};
use super::error::{duration, refuse_set, AtField, FieldError, ValidationError};
use super::resilience::{
    circuit_breakers, connection_options, outlier_detection, upstream_bind_config,
    upstream_connection_options, CircuitBreakers, ConnectionOptions, OutlierDetection,
};
use super::upstream_http::{protocol_options, UpstreamProtocol, HTTP_PROTOCOL_OPTIONS_KEY};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub name: String,
    pub discovery: Discovery,
    pub lb_policy: LbPolicy,
    /// `common_lb_config.healthy_panic_threshold`, in percent (Envoy's default 50): below this
    /// share of healthy hosts the balancer uses every host, healthy or not. 0 disables panic.
    pub healthy_panic_threshold: Finite,
    pub protocol: UpstreamProtocol,
    /// Envoy's default is 5 s.
    pub connect_timeout: Duration,
    /// The name to ask EDS for: `eds_cluster_config.service_name`, or the cluster name.
    pub eds_service_name: String,
    /// From `load_assignment`, for `STATIC`, `STRICT_DNS` and `LOGICAL_DNS` clusters; empty for
    /// the others.
    pub static_endpoints: Vec<Endpoint>,
    /// `circuit_breakers` at DEFAULT priority.
    pub circuit_breakers: CircuitBreakers,
    pub connection: ConnectionOptions,
    pub outlier_detection: Option<OutlierDetection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    Static,
    StrictDns,
    LogicalDns,
    Eds,
    OriginalDst,
}

/// The balancer and its settings, with Envoy's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin {
        slow_start: Option<SlowStart>,
    },
    LeastRequest(LeastRequest),
    /// Weighted random.
    Random,
    RingHash(RingHash),
    Maglev {
        table_size: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeastRequest {
    /// Hosts sampled per pick when all weights are equal (P2C for the default 2).
    pub choice_count: u32,
    /// With unequal weights: weight / (active + 1)^bias. 0 turns it into weighted round robin.
    pub active_request_bias: Finite,
    pub slow_start: Option<SlowStart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingHash {
    pub minimum_ring_size: u64,
    pub maximum_ring_size: u64,
    /// What places hosts' points on the ring (requests are hashed by the route's policies).
    pub hash_function: RingHashFunction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingHashFunction {
    XxHash,
    /// 64-bit MurmurHash2 as libstdc++'s `std::hash` of strings.
    MurmurHash2,
}

/// `slow_start_config`: a host new to the cluster has its weight scaled by
/// `max(min_weight_percent / 100, (max(age_s, 1) / window_s) ^ (1 / aggression))` while its age
/// is below the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowStart {
    pub window: Duration,
    pub aggression: Finite,
    /// As a fraction (0.1 for Envoy's default 10%).
    pub min_weight: Finite,
}

/// An `f64` known to be finite, so settings that hold one can still be compared with `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Finite(f64);

impl Eq for Finite {}

impl Finite {
    pub fn new(v: f64) -> Option<Finite> {
        v.is_finite().then_some(Finite(v))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTHY_PANIC_THRESHOLD: f64 = 50.0;
pub const DEFAULT_CHOICE_COUNT: u32 = 2;
pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
/// Also the largest ring Envoy accepts, for either bound.
pub const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65537;
/// The largest table Envoy's validation accepts.
pub const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;
const DEFAULT_SLOW_START_MIN_WEIGHT_PERCENT: f64 = 10.0;

pub fn compile_cluster(c: &Cluster) -> Result<ClusterConfig, ValidationError> {
    compile(c).map_err(|e| e.into_error("Cluster", &c.name))
}

fn compile(c: &Cluster) -> Result<ClusterConfig, FieldError> {
    if c.name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    let discovery = discovery(c)?;
    let lb_policy = lb_policy(c, discovery)?;
    let healthy_panic_threshold =
        common_lb_config(c.common_lb_config.as_ref()).at("common_lb_config")?;
    if c.lb_subset_config
        .as_ref()
        .is_some_and(|s| !s.subset_selectors.is_empty())
    {
        return Err(FieldError::unsupported("lb_subset_config"));
    }
    dns_settings(c)?;
    transport(c)?;
    if c.load_balancing_policy.is_some() {
        return Err(FieldError::new(
            "load_balancing_policy",
            "not supported (use lb_policy and its lb config)",
        ));
    }
    let connect_timeout = match &c.connect_timeout {
        None => DEFAULT_CONNECT_TIMEOUT,
        Some(d) => match duration(d).at("connect_timeout")? {
            Duration::ZERO => {
                return Err(FieldError::new("connect_timeout", "must be greater than 0"))
            }
            d => d,
        },
    };
    let eds_service_name = c
        .eds_cluster_config
        .as_ref()
        .map(|e| e.service_name.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(&c.name)
        .to_string();
    let static_endpoints = match (discovery, &c.load_assignment) {
        (Discovery::Static | Discovery::StrictDns | Discovery::LogicalDns, Some(cla)) => {
            let allow_hostnames = discovery != Discovery::Static;
            endpoints(cla, allow_hostnames).at("load_assignment")?
        }
        _ => Vec::new(),
    };
    // Envoy resolves exactly one name for a logical DNS cluster.
    if discovery == Discovery::LogicalDns && static_endpoints.len() != 1 {
        return Err(FieldError::new(
            "load_assignment",
            "a LOGICAL_DNS cluster needs exactly one endpoint",
        ));
    }
    let options = protocol_options(c)?;
    #[allow(deprecated)] // Still sent by control planes in the cluster's own fields.
    let mut connection = if let Some(common) = &options.common {
        connection_options(Some(common), c.max_requests_per_connection).map_err(|e| {
            e.under(&format!(
                "typed_extension_protocol_options[{HTTP_PROTOCOL_OPTIONS_KEY:?}].common_http_protocol_options"
            ))
        })?
    } else {
        connection_options(
            c.common_http_protocol_options.as_ref(),
            c.max_requests_per_connection,
        )
        .map_err(|e| e.under("common_http_protocol_options"))?
    };
    connection.http2 = options.http2;
    if let Some(u) = &c.upstream_connection_options {
        connection.tcp_keepalive =
            upstream_connection_options(u).at("upstream_connection_options")?;
    }
    if let Some(b) = &c.upstream_bind_config {
        connection.source_address = Some(upstream_bind_config(b).at("upstream_bind_config")?);
    }
    Ok(ClusterConfig {
        name: c.name.clone(),
        discovery,
        lb_policy,
        healthy_panic_threshold,
        protocol: options.protocol,
        circuit_breakers: circuit_breakers(c.circuit_breakers.as_ref()).at("circuit_breakers")?,
        connection,
        outlier_detection: c
            .outlier_detection
            .as_ref()
            .map(outlier_detection)
            .transpose()
            .at("outlier_detection")?,
        connect_timeout,
        eds_service_name,
        static_endpoints,
    })
}

fn discovery(c: &Cluster) -> Result<Discovery, FieldError> {
    let raw = match &c.cluster_discovery_type {
        // The proto default, STATIC.
        None => 0,
        Some(ClusterDiscoveryType::Type(t)) => *t,
        Some(ClusterDiscoveryType::ClusterType(_)) => {
            return Err(FieldError::unsupported("cluster_type"))
        }
    };
    Ok(match DiscoveryType::try_from(raw) {
        Ok(DiscoveryType::Static) => Discovery::Static,
        Ok(DiscoveryType::StrictDns) => Discovery::StrictDns,
        Ok(DiscoveryType::LogicalDns) => Discovery::LogicalDns,
        Ok(DiscoveryType::Eds) => Discovery::Eds,
        Ok(DiscoveryType::OriginalDst) => Discovery::OriginalDst,
        Err(_) => {
            return Err(FieldError::new(
                "type",
                format!("unknown discovery type {raw}"),
            ))
        }
    })
}

/// `lb_policy` with its `lb_config`. `CLUSTER_PROVIDED` is accepted for `ORIGINAL_DST` clusters,
/// which Envoy requires to use it (Istio's `PassthroughCluster`): the destination is the
/// original one, so no balancer runs and the value stored is irrelevant.
fn lb_policy(c: &Cluster, discovery: Discovery) -> Result<LbPolicy, FieldError> {
    let raw = c.lb_policy;
    let policy = ProtoLbPolicy::try_from(raw)
        .map_err(|_| FieldError::new("lb_policy", format!("unknown policy {raw}")))?;
    let config = c.lb_config.as_ref();
    // A config block for another policy would be silently ignored: refuse it instead.
    let mismatch = |field: &str| {
        Err(FieldError::new(
            field,
            format!("does not apply to lb_policy {}", policy.as_str_name()),
        ))
    };
    match (policy, config) {
        (_, Some(LbConfig::OriginalDstLbConfig(o))) => {
            // All defaults: nothing to act on. Any setting reads the destination from a
            // header, a port override or metadata, which is not implemented.
            if o.use_http_header
                || !o.http_header_name.is_empty()
                || o.upstream_port_override.is_some()
                || o.metadata_key.is_some()
            {
                return Err(FieldError::unsupported("original_dst_lb_config"));
            }
            if discovery != Discovery::OriginalDst {
                return Err(FieldError::new(
                    "original_dst_lb_config",
                    "only applies to ORIGINAL_DST clusters",
                ));
            }
            lb_policy_without_config(policy, discovery)
        }
        (ProtoLbPolicy::RoundRobin, Some(LbConfig::RoundRobinLbConfig(rr))) => {
            round_robin(rr).at("round_robin_lb_config")
        }
        (ProtoLbPolicy::LeastRequest, Some(LbConfig::LeastRequestLbConfig(lr))) => {
            least_request(lr).at("least_request_lb_config")
        }
        (ProtoLbPolicy::RingHash, Some(LbConfig::RingHashLbConfig(rh))) => {
            ring_hash(rh).at("ring_hash_lb_config")
        }
        (ProtoLbPolicy::Maglev, Some(LbConfig::MaglevLbConfig(m))) => {
            maglev(m).at("maglev_lb_config")
        }
        (_, Some(LbConfig::RoundRobinLbConfig(_))) => mismatch("round_robin_lb_config"),
        (_, Some(LbConfig::LeastRequestLbConfig(_))) => mismatch("least_request_lb_config"),
        (_, Some(LbConfig::RingHashLbConfig(_))) => mismatch("ring_hash_lb_config"),
        (_, Some(LbConfig::MaglevLbConfig(_))) => mismatch("maglev_lb_config"),
        (_, None) => lb_policy_without_config(policy, discovery),
    }
}

fn lb_policy_without_config(
    policy: ProtoLbPolicy,
    discovery: Discovery,
) -> Result<LbPolicy, FieldError> {
    match policy {
        ProtoLbPolicy::RoundRobin => Ok(LbPolicy::RoundRobin { slow_start: None }),
        ProtoLbPolicy::LeastRequest => least_request(&LeastRequestLbConfig::default()),
        ProtoLbPolicy::Random => Ok(LbPolicy::Random),
        ProtoLbPolicy::RingHash => ring_hash(&RingHashLbConfig::default()),
        ProtoLbPolicy::Maglev => maglev(&MaglevLbConfig::default()),
        ProtoLbPolicy::ClusterProvided if discovery == Discovery::OriginalDst => {
            Ok(LbPolicy::RoundRobin { slow_start: None })
        }
        other => Err(FieldError::new(
            "lb_policy",
            format!(
                "{} is not supported (use ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH or \
                 MAGLEV)",
                other.as_str_name()
            ),
        )),
    }
}

fn round_robin(rr: &RoundRobinLbConfig) -> Result<LbPolicy, FieldError> {
    Ok(LbPolicy::RoundRobin {
        slow_start: slow_start(rr.slow_start_config.as_ref()).at("slow_start_config")?,
    })
}

fn least_request(lr: &LeastRequestLbConfig) -> Result<LbPolicy, FieldError> {
    let choice_count = match lr.choice_count {
        None => DEFAULT_CHOICE_COUNT,
        Some(n) if n.value >= 2 => n.value,
        Some(n) => {
            return Err(FieldError::new(
                "choice_count",
                format!("{} is below the minimum of 2", n.value),
            ))
        }
    };
    let active_request_bias = runtime_double(lr.active_request_bias.as_ref(), 1.0)
        .filter(|b| b.get() >= 0.0)
        .ok_or_else(|| {
            FieldError::new(
                "active_request_bias.default_value",
                "must be a finite number of at least 0",
            )
        })?;
    Ok(LbPolicy::LeastRequest(LeastRequest {
        choice_count,
        active_request_bias,
        slow_start: slow_start(lr.slow_start_config.as_ref()).at("slow_start_config")?,
    }))
}

fn ring_hash(rh: &RingHashLbConfig) -> Result<LbPolicy, FieldError> {
    let hash_function = match HashFunction::try_from(rh.hash_function) {
        Ok(HashFunction::XxHash) => RingHashFunction::XxHash,
        Ok(HashFunction::MurmurHash2) => RingHashFunction::MurmurHash2,
        Err(_) => {
            return Err(FieldError::new(
                "hash_function",
                format!("unknown hash function {}", rh.hash_function),
            ))
        }
    };
    let min = rh
        .minimum_ring_size
        .map_or(DEFAULT_MIN_RING_SIZE, |v| v.value);
    let max = rh.maximum_ring_size.map_or(MAX_RING_SIZE, |v| v.value);
    // A zero-sized ring would hold no host and fail every request.
    if min == 0 || min > MAX_RING_SIZE {
        return Err(FieldError::new(
            "minimum_ring_size",
            format!("{min} is not between 1 and {MAX_RING_SIZE}"),
        ));
    }
    if max > MAX_RING_SIZE {
        return Err(FieldError::new(
            "maximum_ring_size",
            format!("{max} is above the limit of {MAX_RING_SIZE}"),
        ));
    }
    if min > max {
        return Err(FieldError::new(
            "minimum_ring_size",
            format!("{min} is greater than maximum_ring_size {max}"),
        ));
    }
    Ok(LbPolicy::RingHash(RingHash {
        minimum_ring_size: min,
        maximum_ring_size: max,
        hash_function,
    }))
}

fn maglev(m: &MaglevLbConfig) -> Result<LbPolicy, FieldError> {
    let table_size = m.table_size.map_or(DEFAULT_MAGLEV_TABLE_SIZE, |v| v.value);
    if table_size > MAX_MAGLEV_TABLE_SIZE || !is_prime(table_size) {
        return Err(FieldError::new(
            "table_size",
            format!("{table_size} must be a prime number no greater than {MAX_MAGLEV_TABLE_SIZE}"),
        ));
    }
    Ok(LbPolicy::Maglev { table_size })
}

/// Trial division: table sizes are at most a few million, so this is a few thousand steps.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    (2..)
        .take_while(|d| d * d <= n)
        .all(|d| !n.is_multiple_of(d))
}

/// A missing config or a window of zero means no slow start, as in Envoy.
fn slow_start(config: Option<&SlowStartConfig>) -> Result<Option<SlowStart>, FieldError> {
    let Some(config) = config else {
        return Ok(None);
    };
    let window = match &config.slow_start_window {
        None => return Ok(None),
        Some(d) => duration(d).at("slow_start_window")?,
    };
    if window.is_zero() {
        return Ok(None);
    }
    let aggression = runtime_double(config.aggression.as_ref(), 1.0)
        .filter(|a| a.get() > 0.0)
        .ok_or_else(|| {
            FieldError::new(
                "aggression.default_value",
                "must be a finite number greater than 0",
            )
        })?;
    let min_weight = percent(
        config.min_weight_percent.as_ref(),
        DEFAULT_SLOW_START_MIN_WEIGHT_PERCENT,
    )
    .at("min_weight_percent")?;
    Ok(Some(SlowStart {
        window,
        aggression,
        min_weight: Finite(min_weight.get() / 100.0),
    }))
}

/// weft-proxy has no runtime layer, so a `RuntimeDouble` is its default value, which is what
/// Envoy uses when the runtime key is not set.
fn runtime_double(value: Option<&RuntimeDouble>, default: f64) -> Option<Finite> {
    Finite::new(value.map_or(default, |v| v.default_value))
}

fn percent(value: Option<&ProtoPercent>, default: f64) -> Result<Finite, FieldError> {
    let v = value.map_or(default, |p| p.value);
    Finite::new(v)
        .filter(|v| (0.0..=100.0).contains(&v.get()))
        .ok_or_else(|| FieldError::new("value", format!("{v} is not between 0 and 100")))
}

/// Returns the panic threshold; every other setting is refused when it would change where
/// traffic goes, since it is not implemented.
fn common_lb_config(common: Option<&CommonLbConfig>) -> Result<Finite, FieldError> {
    let Some(common) = common else {
        return Ok(Finite(DEFAULT_HEALTHY_PANIC_THRESHOLD));
    };
    match &common.locality_config_specifier {
        None => {}
        Some(LocalityConfigSpecifier::ZoneAwareLbConfig(_)) => {
            return Err(FieldError::unsupported("zone_aware_lb_config"))
        }
        // Localities are flattened into one host list (see `endpoint`), so their weights
        // cannot be applied.
        Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_)) => {
            return Err(FieldError::unsupported("locality_weighted_lb_config"))
        }
    }
    // Updates apply at once: only a merge window of zero says that.
    if let Some(w) = &common.update_merge_window {
        if !duration(w).at("update_merge_window")?.is_zero() {
            return Err(FieldError::new(
                "update_merge_window",
                "not supported (updates apply immediately; only 0s is accepted)",
            ));
        }
    }
    if common.ignore_new_hosts_until_first_hc {
        return Err(FieldError::unsupported("ignore_new_hosts_until_first_hc"));
    }
    if common.close_connections_on_host_set_change {
        return Err(FieldError::unsupported(
            "close_connections_on_host_set_change",
        ));
    }
    if let Some(ch) = &common.consistent_hashing_lb_config {
        if ch.use_hostname_for_hashing {
            return Err(FieldError::unsupported(
                "consistent_hashing_lb_config.use_hostname_for_hashing",
            ));
        }
        if ch.hash_balance_factor.is_some() {
            return Err(FieldError::unsupported(
                "consistent_hashing_lb_config.hash_balance_factor",
            ));
        }
    }
    if common.override_host_status.is_some() {
        return Err(FieldError::unsupported("override_host_status"));
    }
    // Envoy rounds the threshold to a whole percent.
    let threshold = percent(
        common.healthy_panic_threshold.as_ref(),
        DEFAULT_HEALTHY_PANIC_THRESHOLD,
    )
    .at("healthy_panic_threshold")?;
    Ok(Finite(threshold.get().round()))
}

/// weft-proxy speaks plaintext TCP to upstreams. A cluster asking for anything else (TLS,
/// Istio's mTLS by `transport_socket_matches`) is refused: accepted, its requests would leave
/// in plaintext. Envoy's explicit plaintext socket is accepted.
fn transport(c: &Cluster) -> Result<(), FieldError> {
    const RAW_BUFFER: &str = "envoy.transport_sockets.raw_buffer";
    const RAW_BUFFER_TYPE: &str =
        "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
    if let Some(socket) = &c.transport_socket {
        let typed = socket.config_type.as_ref().map(|t| match t {
            transport_socket::ConfigType::TypedConfig(any) => any.type_url.as_str(),
        });
        let plaintext = match typed {
            Some(type_url) => type_url == RAW_BUFFER_TYPE,
            None => socket.name == RAW_BUFFER,
        };
        if !plaintext {
            return Err(FieldError::new(
                "transport_socket",
                format!(
                    "not supported: {} (weft-proxy connects to upstreams in plaintext only)",
                    typed.unwrap_or(&socket.name)
                ),
            ));
        }
    }
    if !c.transport_socket_matches.is_empty() {
        return Err(FieldError::unsupported("transport_socket_matches"));
    }
    Ok(())
}

/// Envoy's default `dns_refresh_rate`: how often weft-proxy resolves every DNS name again.
pub const DEFAULT_DNS_REFRESH_RATE: Duration = Duration::from_secs(5);

/// How DNS names are resolved: weft-proxy refreshes every name every 5 s (Envoy's default
/// `dns_refresh_rate`) with the system's resolver or `--dns-resolver`, keeping the last good
/// addresses on failure. Settings that would change that are refused rather than ignored.
#[allow(deprecated)] // Envoy deprecated the cluster-level DNS fields; control planes still send them.
fn dns_settings(c: &Cluster) -> Result<(), FieldError> {
    if let Some(rate) = &c.dns_refresh_rate {
        if duration(rate).at("dns_refresh_rate")? != DEFAULT_DNS_REFRESH_RATE {
            return Err(FieldError::new(
                "dns_refresh_rate",
                "not supported (weft-proxy refreshes DNS names every 5s, Envoy's default)",
            ));
        }
    }
    let unsupported = [
        ("dns_jitter", c.dns_jitter.is_some()),
        (
            "dns_failure_refresh_rate",
            c.dns_failure_refresh_rate.is_some(),
        ),
        ("respect_dns_ttl", c.respect_dns_ttl),
        ("dns_lookup_family", c.dns_lookup_family != 0),
        ("dns_resolvers", !c.dns_resolvers.is_empty()),
        ("use_tcp_for_dns_lookups", c.use_tcp_for_dns_lookups),
        ("dns_resolution_config", c.dns_resolution_config.is_some()),
        (
            "typed_dns_resolver_config",
            c.typed_dns_resolver_config.is_some(),
        ),
    ];
    refuse_set(&unsupported)
}
