//! A DestinationRule's `connectionPool` and `outlierDetection` → a cluster's circuit breakers,
//! connection options and outlier detection, built the way istiod builds them.
//!
//! Which settings a cluster gets is istiod's merge, as for load balancing: a subset's
//! `connectionPool` (or `outlierDetection`) replaces the rule's when it has one; a matching
//! `portLevelSettings` entry replaces the policy's whole (an entry without the block means
//! none).
//!
//! Every cluster gets istiod's default circuit breakers (all four limits at 2³²−1, so in
//! practice unlimited, with remaining counts tracked); `connectionPool` lowers the ones it
//! names (a 0 keeps the default, as in istiod). `http.idleTimeout`,
//! `http.maxRequestsPerConnection` and `tcp.maxConnectionDuration` go in the common HTTP
//! protocol options, `tcp.connectTimeout` replaces the cluster's connect timeout, and
//! `tcp.tcpKeepalive` goes in `upstream_connection_options`.
//!
//! `outlierDetection` becomes Envoy's consecutive-error detection with success-rate ejection
//! switched off, enforcing 100% for each error kind given a non-zero threshold (the deprecated
//! `consecutiveErrors` counts gateway errors only), and `minHealthPercent` (default 0) as the
//! cluster's panic threshold.
//!
//! Not translated (and warned about by `weftctl analyze`): `http.h2UpgradePolicy`,
//! `http.useClientProtocol`, `http.maxConcurrentStreams` and `tcp.idleTimeout`, which concern
//! protocol selection, HTTP/2 stream limits and TCP proxying that weft-proxy does not do.

use crate::model::{
    ConnectionPoolSettings, DestinationRule, OutlierDetection, PortTrafficPolicy, Subset,
    TrafficPolicy,
};
use xds_protos::pb::envoy::config::cluster::v3::{
    circuit_breakers::Thresholds, CircuitBreakers, Cluster, OutlierDetection as ProtoOutlier,
    UpstreamConnectionOptions,
};
use xds_protos::pb::envoy::config::core::v3::{HttpProtocolOptions, TcpKeepalive};
use xds_protos::pb::envoy::r#type::v3::Percent;
use xds_protos::pb::google::protobuf::UInt32Value;

/// The blocks in force for one cluster.
#[derive(Default, Clone, Copy)]
pub struct Resilience<'a> {
    pub pool: Option<&'a ConnectionPoolSettings>,
    pub outlier: Option<&'a OutlierDetection>,
}

/// istiod's merge of rule, subset and port-level settings for the cluster of `port`.
pub fn settings_for<'a>(
    rule: Option<&'a DestinationRule>,
    subset: Option<&'a Subset>,
    port: u32,
) -> Resilience<'a> {
    let mut out = resolve(rule.and_then(|r| r.traffic_policy.as_ref()), port);
    if let Some(policy) = subset.and_then(|s| s.traffic_policy.as_ref()) {
        match port_level(policy, port) {
            Some(entry) => {
                out.pool = entry.connection_pool.as_ref();
                out.outlier = entry.outlier_detection.as_ref();
            }
            None => {
                if policy.connection_pool.is_some() {
                    out.pool = policy.connection_pool.as_ref();
                }
                if policy.outlier_detection.is_some() {
                    out.outlier = policy.outlier_detection.as_ref();
                }
            }
        }
    }
    out
}

fn resolve(policy: Option<&TrafficPolicy>, port: u32) -> Resilience<'_> {
    let Some(policy) = policy else {
        return Resilience::default();
    };
    match port_level(policy, port) {
        Some(entry) => Resilience {
            pool: entry.connection_pool.as_ref(),
            outlier: entry.outlier_detection.as_ref(),
        },
        None => Resilience {
            pool: policy.connection_pool.as_ref(),
            outlier: policy.outlier_detection.as_ref(),
        },
    }
}

fn port_level(policy: &TrafficPolicy, port: u32) -> Option<&PortTrafficPolicy> {
    policy
        .port_level_settings
        .iter()
        .find(|p| p.port.is_some_and(|p| p.number == port))
}

/// Sets the cluster's circuit breakers, connection settings and outlier detection. Returns the
/// common HTTP protocol options to put in the cluster's `HttpProtocolOptions`, if any.
pub fn apply(c: &mut Cluster, r: Resilience<'_>) -> Option<HttpProtocolOptions> {
    let mut t = Thresholds {
        max_connections: u32_value(u32::MAX),
        max_pending_requests: u32_value(u32::MAX),
        max_requests: u32_value(u32::MAX),
        max_retries: u32_value(u32::MAX),
        track_remaining: true,
        ..Default::default()
    };
    let mut common = HttpProtocolOptions::default();
    let mut has_common = false;
    if let Some(pool) = r.pool {
        if let Some(http) = &pool.http {
            let positive = |v: Option<i32>| v.filter(|v| *v > 0).map(|v| v as u32);
            if let Some(v) = positive(http.http2_max_requests) {
                t.max_requests = u32_value(v);
            }
            if let Some(v) = positive(http.http1_max_pending_requests) {
                t.max_pending_requests = u32_value(v);
            }
            if let Some(v) = positive(http.max_retries) {
                t.max_retries = u32_value(v);
            }
            if let Some(d) = http.idle_timeout {
                common.idle_timeout = Some(super::pb_duration(d));
                has_common = true;
            }
            if let Some(v) = positive(http.max_requests_per_connection) {
                common.max_requests_per_connection = u32_value(v);
                has_common = true;
            }
        }
        if let Some(tcp) = &pool.tcp {
            if let Some(d) = tcp.connect_timeout {
                c.connect_timeout = Some(super::pb_duration(d));
            }
            if let Some(v) = tcp.max_connections.filter(|v| *v > 0) {
                t.max_connections = u32_value(v as u32);
            }
            if let Some(d) = tcp.max_connection_duration {
                common.max_connection_duration = Some(super::pb_duration(d));
                has_common = true;
            }
            if let Some(k) = &tcp.tcp_keepalive {
                let secs = |d: Option<std::time::Duration>| {
                    d.and_then(|d| u32_value(d.as_secs().min(u64::from(u32::MAX)) as u32))
                };
                c.upstream_connection_options = Some(UpstreamConnectionOptions {
                    tcp_keepalive: Some(TcpKeepalive {
                        keepalive_probes: k.probes.and_then(u32_value),
                        keepalive_time: secs(k.time),
                        keepalive_interval: secs(k.interval),
                    }),
                    ..Default::default()
                });
            }
        }
    }
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![t],
        ..Default::default()
    });
    if let Some(o) = r.outlier {
        c.outlier_detection = Some(outlier(o));
        let threshold = o.min_health_percent.unwrap_or(0).max(0);
        c.common_lb_config
            .get_or_insert_with(Default::default)
            .healthy_panic_threshold = Some(Percent {
            value: f64::from(threshold),
        });
    }
    has_common.then_some(common)
}

fn outlier(o: &OutlierDetection) -> ProtoOutlier {
    // Success-rate ejection off; each error kind enforced when its threshold is set.
    let mut out = ProtoOutlier {
        enforcing_success_rate: u32_value(0),
        ..Default::default()
    };
    let enforcing = |v: u32| u32_value(if v > 0 { 100 } else { 0 });
    if let Some(n) = o.consecutive_errors.filter(|n| *n > 0) {
        // Deprecated: gateway errors only.
        out.consecutive_gateway_failure = u32_value(n as u32);
        out.enforcing_consecutive_gateway_failure = u32_value(100);
        out.enforcing_consecutive_5xx = u32_value(0);
    }
    if let Some(n) = o.consecutive_5xx_errors {
        out.consecutive_5xx = u32_value(n);
        out.enforcing_consecutive_5xx = enforcing(n);
    }
    if let Some(n) = o.consecutive_gateway_errors {
        out.consecutive_gateway_failure = u32_value(n);
        out.enforcing_consecutive_gateway_failure = enforcing(n);
    }
    out.interval = o.interval.map(super::pb_duration);
    out.base_ejection_time = o.base_ejection_time.map(super::pb_duration);
    if let Some(p) = o.max_ejection_percent.filter(|p| *p > 0) {
        out.max_ejection_percent = u32_value(p as u32);
    }
    if o.split_external_local_origin_errors == Some(true) {
        out.split_external_local_origin_errors = true;
        if let Some(n) = o.consecutive_local_origin_failures.filter(|n| *n > 0) {
            out.consecutive_local_origin_failure = u32_value(n);
            out.enforcing_consecutive_local_origin_failure = u32_value(100);
        }
        out.enforcing_local_origin_success_rate = u32_value(0);
    }
    out
}

fn u32_value(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}

#[cfg(test)]
mod tests;
