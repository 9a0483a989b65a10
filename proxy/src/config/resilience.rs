//! A cluster's resilience settings: circuit breakers and upstream connection options, with
//! Envoy's defaults filled in.
//!
//! What is acted on: the DEFAULT-priority `circuit_breakers` thresholds (`max_connections`,
//! `max_pending_requests`, `max_requests`, `max_retries`); the common HTTP protocol options'
//! `idle_timeout`, `max_connection_duration` and `max_requests_per_connection` (on the cluster or
//! in the `HttpProtocolOptions` extension); `upstream_connection_options.tcp_keepalive`. Every
//! other setting of these blocks that would change behaviour is refused by field name.
//!
//! HIGH-priority thresholds are accepted and unused: weft-proxy sends every request at DEFAULT
//! priority, which is what those thresholds would never apply to either.

use std::time::Duration;

use xds_protos::pb::envoy::config::cluster::v3::{
    circuit_breakers::Thresholds, CircuitBreakers as ProtoCircuitBreakers,
    UpstreamConnectionOptions,
};
use xds_protos::pb::envoy::config::core::v3::{
    HttpProtocolOptions as CommonHttpOptions, RoutingPriority,
};
use xds_protos::pb::google::protobuf::UInt32Value;

use super::error::{duration, AtField, FieldError};

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
}

pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_connection_duration: None,
            max_requests_per_connection: None,
            tcp_keepalive: None,
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
