//! A cluster's resilience settings: circuit breakers, upstream connection options and outlier
//! detection, with Envoy's defaults filled in.
//!
//! What is acted on: the DEFAULT-priority `circuit_breakers` thresholds (`max_connections`,
//! `max_pending_requests`, `max_requests`, `max_retries`); the common HTTP protocol options'
//! `idle_timeout`, `max_connection_duration` and `max_requests_per_connection` (on the cluster or
//! in the `HttpProtocolOptions` extension); `upstream_connection_options.tcp_keepalive`; and
//! outlier detection by consecutive 5xx, gateway and local-origin failures. Success-rate and
//! failure-percentage ejection are not implemented, so a config that would enable them (Envoy
//! enables success-rate ejection by default) is refused by field name, as is every other setting
//! of these blocks that would change behaviour.
//!
//! HIGH-priority thresholds are accepted and unused: weft-proxy sends every request at DEFAULT
//! priority, which is what those thresholds would never apply to either.

use std::time::Duration;

use xds_protos::pb::envoy::config::cluster::v3::{
    circuit_breakers::Thresholds, CircuitBreakers as ProtoCircuitBreakers,
    OutlierDetection as ProtoOutlier, UpstreamConnectionOptions,
};
use xds_protos::pb::envoy::config::core::v3::{
    socket_address, BindConfig, HttpProtocolOptions as CommonHttpOptions, RoutingPriority,
};
use xds_protos::pb::google::protobuf::UInt32Value;

use super::error::{duration, refuse_set, AtField, FieldError};
use super::upstream_http::UpstreamHttp2;

/// `circuit_breakers` at DEFAULT priority, Envoy's defaults when unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakers {
    /// Connections open to all of the cluster's hosts.
    pub max_connections: u64,
    /// Requests waiting for a connection.
    pub max_pending_requests: u64,
    /// Requests in flight.
    pub max_requests: u64,
    /// Retries in flight.
    pub max_retries: u64,
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        CircuitBreakers {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

/// How upstream connections are opened, reused and retired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// A connection with no request for this long is closed (Envoy's default: one hour).
    pub idle_timeout: Option<Duration>,
    /// A connection older than this takes no new request.
    pub max_connection_duration: Option<Duration>,
    /// A connection that has carried this many requests takes no more.
    pub max_requests_per_connection: Option<u32>,
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// `upstream_bind_config.source_address`: the local address upstream connections are made
    /// from (Istio binds inbound passthrough to 127.0.0.6 so its iptables rules let it by).
    pub source_address: Option<std::net::IpAddr>,
    /// The HTTP/2 client's settings, for an HTTP/2 cluster's new connections.
    pub http2: UpstreamHttp2,
}

pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_connection_duration: None,
            max_requests_per_connection: None,
            tcp_keepalive: None,
            source_address: None,
            http2: UpstreamHttp2::default(),
        }
    }
}

/// TCP keepalive on upstream sockets; unset parts keep the operating system's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub probes: Option<u32>,
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
}

/// `outlier_detection`: consecutive-failure ejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierDetection {
    pub consecutive_5xx: u32,
    /// Percent chance that a detected outlier is ejected.
    pub enforcing_consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    /// Locally originated failures (refused, reset, timeout) counted apart from the upstream's
    /// own answers instead of as 5xx.
    pub split_external_local_origin_errors: bool,
    pub consecutive_local_origin_failure: u32,
    pub enforcing_consecutive_local_origin_failure: u32,
    /// How often ejected hosts are checked for return.
    pub interval: Duration,
    /// Ejection lasts `base_ejection_time × times ejected`, up to `max_ejection_time`.
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    /// A random extra of up to this much is added to each ejection.
    pub max_ejection_time_jitter: Duration,
    /// No ejection once this share of the hosts is ejected.
    pub max_ejection_percent: u32,
}

pub(crate) fn circuit_breakers(
    cb: Option<&ProtoCircuitBreakers>,
) -> Result<CircuitBreakers, FieldError> {
    let mut out = CircuitBreakers::default();
    let Some(cb) = cb else {
        return Ok(out);
    };
    if !cb.per_host_thresholds.is_empty() {
        return Err(FieldError::unsupported("per_host_thresholds"));
    }
    for (i, t) in cb.thresholds.iter().enumerate() {
        thresholds_supported(t).at_index("thresholds", i)?;
        if t.priority == RoutingPriority::Default as i32 {
            let v = |w: Option<UInt32Value>, d: u64| w.map_or(d, |w| u64::from(w.value));
            out = CircuitBreakers {
                max_connections: v(t.max_connections, out.max_connections),
                max_pending_requests: v(t.max_pending_requests, out.max_pending_requests),
                max_requests: v(t.max_requests, out.max_requests),
                max_retries: v(t.max_retries, out.max_retries),
            };
        }
    }
    Ok(out)
}

fn thresholds_supported(t: &Thresholds) -> Result<(), FieldError> {
    if RoutingPriority::try_from(t.priority).is_err() {
        return Err(FieldError::new(
            "priority",
            format!("unknown priority {}", t.priority),
        ));
    }
    if t.retry_budget.is_some() {
        return Err(FieldError::unsupported("retry_budget"));
    }
    if t.max_connection_pools.is_some() {
        return Err(FieldError::unsupported("max_connection_pools"));
    }
    Ok(())
}

/// The common HTTP options from the cluster (deprecated place) or the protocol-options
/// extension (which wins, as in Envoy), plus the cluster's deprecated
/// `max_requests_per_connection`. The TCP keepalive is filled in by the caller.
pub(crate) fn connection_options(
    common: Option<&CommonHttpOptions>,
    cluster_max_requests_per_connection: Option<UInt32Value>,
) -> Result<ConnectionOptions, FieldError> {
    let mut out = ConnectionOptions::default();
    if let Some(c) = common {
        common_supported(c)?;
        if let Some(d) = &c.idle_timeout {
            // Zero disables the idle timeout.
            let d = duration(d).at("idle_timeout")?;
            out.idle_timeout = (!d.is_zero()).then_some(d);
        }
        if let Some(d) = &c.max_connection_duration {
            let d = duration(d).at("max_connection_duration")?;
            out.max_connection_duration = (!d.is_zero()).then_some(d);
        }
        if let Some(n) = c.max_requests_per_connection {
            out.max_requests_per_connection = (n.value > 0).then_some(n.value);
        }
    }
    if out.max_requests_per_connection.is_none() {
        if let Some(n) = cluster_max_requests_per_connection {
            out.max_requests_per_connection = (n.value > 0).then_some(n.value);
        }
    }
    Ok(out)
}

fn common_supported(c: &CommonHttpOptions) -> Result<(), FieldError> {
    if c.max_connection_duration_jitter.is_some() {
        return Err(FieldError::unsupported("max_connection_duration_jitter"));
    }
    if c.max_headers_count.is_some() {
        return Err(FieldError::unsupported("max_headers_count"));
    }
    if c.max_response_headers_kb.is_some() {
        return Err(FieldError::unsupported("max_response_headers_kb"));
    }
    if c.max_stream_duration.is_some() {
        return Err(FieldError::unsupported("max_stream_duration"));
    }
    if c.headers_with_underscores_action != 0 {
        return Err(FieldError::unsupported("headers_with_underscores_action"));
    }
    Ok(())
}

/// `upstream_bind_config`: the source IP of upstream connections. A fixed source port, extra
/// addresses and socket options are refused: they change how connections are made.
pub(crate) fn upstream_bind_config(b: &BindConfig) -> Result<std::net::IpAddr, FieldError> {
    #[allow(deprecated)] // Still on the wire from older control planes.
    let unsupported = [
        ("freebind", b.freebind.as_ref().is_some_and(|v| v.value)),
        ("socket_options", !b.socket_options.is_empty()),
        (
            "extra_source_addresses",
            !b.extra_source_addresses.is_empty(),
        ),
        (
            "additional_source_addresses",
            !b.additional_source_addresses.is_empty(),
        ),
        ("local_address_selector", b.local_address_selector.is_some()),
    ];
    refuse_set(&unsupported)?;
    let Some(a) = &b.source_address else {
        return Err(FieldError::new("source_address", "is required"));
    };
    if matches!(a.port_specifier, Some(socket_address::PortSpecifier::PortValue(p)) if p != 0) {
        return Err(FieldError::new(
            "source_address.port_value",
            "a fixed source port is not supported (use 0)",
        ));
    }
    if matches!(
        a.port_specifier,
        Some(socket_address::PortSpecifier::NamedPort(_))
    ) {
        return Err(FieldError::unsupported("source_address.named_port"));
    }
    a.address.parse().map_err(|_| {
        FieldError::new(
            "source_address.address",
            format!("{:?} is not an IP address", a.address),
        )
    })
}

/// `upstream_connection_options`: its TCP keepalive.
pub(crate) fn upstream_connection_options(
    u: &UpstreamConnectionOptions,
) -> Result<Option<TcpKeepalive>, FieldError> {
    if u.set_local_interface_name_on_upstream_connections {
        return Err(FieldError::unsupported(
            "set_local_interface_name_on_upstream_connections",
        ));
    }
    if u.happy_eyeballs_config.is_some() {
        return Err(FieldError::unsupported("happy_eyeballs_config"));
    }
    let Some(k) = &u.tcp_keepalive else {
        return Ok(None);
    };
    let secs = |v: Option<UInt32Value>| v.map(|v| Duration::from_secs(u64::from(v.value)));
    Ok(Some(TcpKeepalive {
        probes: k.keepalive_probes.map(|v| v.value),
        time: secs(k.keepalive_time),
        interval: secs(k.keepalive_interval),
    }))
}

pub(crate) fn outlier_detection(o: &ProtoOutlier) -> Result<OutlierDetection, FieldError> {
    let v = |w: Option<UInt32Value>, d: u32| w.map_or(d, |w| w.value);
    // Success-rate ejection is Envoy's default; it must be switched off to be accepted.
    if v(o.enforcing_success_rate, 100) != 0 {
        return Err(FieldError::new(
            "enforcing_success_rate",
            "success-rate ejection is not supported (set enforcing_success_rate to 0)",
        ));
    }
    if o.split_external_local_origin_errors && v(o.enforcing_local_origin_success_rate, 100) != 0 {
        return Err(FieldError::new(
            "enforcing_local_origin_success_rate",
            "local-origin success-rate ejection is not supported (set it to 0)",
        ));
    }
    if v(o.enforcing_failure_percentage, 0) != 0 {
        return Err(FieldError::unsupported("enforcing_failure_percentage"));
    }
    if v(o.enforcing_failure_percentage_local_origin, 0) != 0 {
        return Err(FieldError::unsupported(
            "enforcing_failure_percentage_local_origin",
        ));
    }
    if !o.monitors.is_empty() {
        return Err(FieldError::unsupported("monitors"));
    }
    if o.always_eject_one_host.is_some_and(|b| b.value) {
        return Err(FieldError::unsupported("always_eject_one_host"));
    }
    if o.detect_degraded_hosts.is_some_and(|b| b.value) {
        return Err(FieldError::unsupported("detect_degraded_hosts"));
    }
    let d = |p: &Option<xds_protos::pb::google::protobuf::Duration>,
             field: &str,
             default: Duration| match p {
        None => Ok(default),
        Some(p) => duration(p).at(field),
    };
    let percent = |w: Option<UInt32Value>, d: u32, field: &str| {
        let n = v(w, d);
        if n > 100 {
            Err(FieldError::new(field, format!("{n} is above 100")))
        } else {
            Ok(n)
        }
    };
    let interval = d(&o.interval, "interval", Duration::from_secs(10))?;
    if interval.is_zero() {
        return Err(FieldError::new("interval", "must be greater than 0"));
    }
    let base_ejection_time = d(
        &o.base_ejection_time,
        "base_ejection_time",
        Duration::from_secs(30),
    )?;
    // Envoy raises the maximum to the base when the base is larger.
    let max_ejection_time = d(
        &o.max_ejection_time,
        "max_ejection_time",
        Duration::from_secs(300),
    )?
    .max(base_ejection_time);
    Ok(OutlierDetection {
        consecutive_5xx: v(o.consecutive_5xx, 5),
        enforcing_consecutive_5xx: percent(
            o.enforcing_consecutive_5xx,
            100,
            "enforcing_consecutive_5xx",
        )?,
        consecutive_gateway_failure: v(o.consecutive_gateway_failure, 5),
        enforcing_consecutive_gateway_failure: percent(
            o.enforcing_consecutive_gateway_failure,
            0,
            "enforcing_consecutive_gateway_failure",
        )?,
        split_external_local_origin_errors: o.split_external_local_origin_errors,
        consecutive_local_origin_failure: v(o.consecutive_local_origin_failure, 5),
        enforcing_consecutive_local_origin_failure: percent(
            o.enforcing_consecutive_local_origin_failure,
            100,
            "enforcing_consecutive_local_origin_failure",
        )?,
        interval,
        base_ejection_time,
        max_ejection_time,
        max_ejection_time_jitter: d(
            &o.max_ejection_time_jitter,
            "max_ejection_time_jitter",
            Duration::ZERO,
        )?,
        max_ejection_percent: v(o.max_ejection_percent, 10).min(100),
    })
}
