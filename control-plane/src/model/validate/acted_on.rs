//! Which fields weft acts on, and which it may ignore. Every other field that is set earns one
//! warning per resource and field, so nobody believes a connection pool or a TCP route is in
//! force when it is not; a field whose absence changes no traffic earns none, so that an
//! ordinary folder analyzes clean.
//!
//! As features land, add their paths to [`acted_on_fields`]; nothing else needs to change.

use super::Findings;
use crate::model::meta::Kind;
use crate::model::path::FieldPath;
use serde_json::Value;
use std::collections::BTreeSet;

/// The message of the warning.
pub const NOT_ACTED_ON: &str = "parsed but not yet acted on by weft-proxy";

/// The fields weft acts on, per kind, as YAML paths with `[]` for list items. A path covers
/// everything below it (`spec.ports` covers each port's number, name, protocol and
/// targetPort).
pub fn acted_on_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::ServiceEntry => &[
            "spec.hosts",
            // A sidecar's route domains and its per-VIP TCP listeners.
            "spec.addresses",
            "spec.ports",
            "spec.resolution",
            "spec.endpoints[].address",
            "spec.endpoints[].ports",
            "spec.endpoints[].labels",
            "spec.endpoints[].weight",
            "spec.workloadSelector",
            "spec.exportTo",
        ],
        Kind::WorkloadEntry => &["spec.address", "spec.ports", "spec.labels", "spec.weight"],
        Kind::Sidecar => &["spec.workloadSelector", "spec.egress[].hosts"],
        Kind::Telemetry => &[
            "spec.selector",
            "spec.tracing[].match",
            "spec.tracing[].providers",
            "spec.tracing[].randomSamplingPercentage",
            "spec.tracing[].disableSpanReporting",
            "spec.tracing[].customTags",
            "spec.accessLogging[].match",
            "spec.accessLogging[].providers",
            "spec.accessLogging[].disabled",
            // Refused with an error of its own (see validate::telemetry).
            "spec.accessLogging[].filter",
        ],
        Kind::VirtualService => &[
            "spec.hosts",
            "spec.gateways",
            "spec.exportTo",
            "spec.http[].name",
            "spec.http[].match[].name",
            "spec.http[].match[].uri",
            "spec.http[].match[].scheme",
            "spec.http[].match[].method",
            "spec.http[].match[].authority",
            "spec.http[].match[].headers",
            "spec.http[].match[].queryParams",
            "spec.http[].match[].withoutHeaders",
            "spec.http[].match[].port",
            "spec.http[].match[].sourceLabels",
            "spec.http[].match[].sourceNamespace",
            "spec.http[].match[].gateways",
            "spec.http[].match[].ignoreUriCase",
            "spec.http[].route[].destination",
            "spec.http[].route[].weight",
            "spec.http[].route[].headers",
            "spec.http[].redirect.uri",
            "spec.http[].redirect.authority",
            "spec.http[].redirect.port",
            "spec.http[].redirect.scheme",
            "spec.http[].redirect.redirectCode",
            "spec.http[].directResponse",
            "spec.http[].rewrite.uri",
            "spec.http[].rewrite.authority",
            "spec.http[].rewrite.uriRegexRewrite",
            "spec.http[].timeout",
            "spec.http[].retries.attempts",
            "spec.http[].retries.perTryTimeout",
            "spec.http[].retries.retryOn",
            "spec.http[].retries.retryRemoteLocalities",
            "spec.http[].retries.backoff",
            "spec.http[].retries.retryIgnorePreviousHosts",
            "spec.http[].fault.delay.fixedDelay",
            "spec.http[].fault.delay.percentage",
            "spec.http[].fault.delay.percent",
            "spec.http[].fault.abort.httpStatus",
            "spec.http[].fault.abort.grpcStatus",
            "spec.http[].fault.abort.percentage",
            "spec.http[].fault.abort.percent",
            "spec.http[].mirror",
            "spec.http[].mirrors",
            "spec.http[].mirrorPercentage",
            "spec.http[].mirrorPercent",
            "spec.http[].corsPolicy",
            "spec.http[].headers",
        ],
        Kind::DestinationRule => &[
            "spec.host",
            "spec.exportTo",
            "spec.subsets[].name",
            "spec.subsets[].labels",
            // Load balancing, at the top, per subset, per port and per subset and port. The
            // consistent-hash keys become the routes' hash policies.
            "spec.trafficPolicy.loadBalancer.simple",
            "spec.trafficPolicy.loadBalancer.consistentHash",
            "spec.trafficPolicy.loadBalancer.warmup",
            "spec.trafficPolicy.loadBalancer.warmupDurationSecs",
            "spec.trafficPolicy.portLevelSettings[].port",
            "spec.trafficPolicy.portLevelSettings[].loadBalancer.simple",
            "spec.trafficPolicy.portLevelSettings[].loadBalancer.consistentHash",
            "spec.trafficPolicy.portLevelSettings[].loadBalancer.warmup",
            "spec.trafficPolicy.portLevelSettings[].loadBalancer.warmupDurationSecs",
            "spec.subsets[].trafficPolicy.loadBalancer.simple",
            "spec.subsets[].trafficPolicy.loadBalancer.consistentHash",
            "spec.subsets[].trafficPolicy.loadBalancer.warmup",
            "spec.subsets[].trafficPolicy.loadBalancer.warmupDurationSecs",
            "spec.subsets[].trafficPolicy.portLevelSettings[].port",
            "spec.subsets[].trafficPolicy.portLevelSettings[].loadBalancer.simple",
            "spec.subsets[].trafficPolicy.portLevelSettings[].loadBalancer.consistentHash",
            "spec.subsets[].trafficPolicy.portLevelSettings[].loadBalancer.warmup",
            "spec.subsets[].trafficPolicy.portLevelSettings[].loadBalancer.warmupDurationSecs",
            // Connection pools (circuit breakers) and outlier detection, at the same four
            // levels. Not acted on: http.h2UpgradePolicy, http.useClientProtocol,
            // http.maxConcurrentStreams and tcp.idleTimeout.
            "spec.trafficPolicy.connectionPool.tcp.maxConnections",
            "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
            "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive",
            "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration",
            "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests",
            "spec.trafficPolicy.connectionPool.http.http2MaxRequests",
            "spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection",
            "spec.trafficPolicy.connectionPool.http.maxRetries",
            "spec.trafficPolicy.connectionPool.http.idleTimeout",
            "spec.trafficPolicy.outlierDetection",
            "spec.trafficPolicy.portLevelSettings[].connectionPool.tcp.maxConnections",
            "spec.trafficPolicy.portLevelSettings[].connectionPool.tcp.connectTimeout",
            "spec.trafficPolicy.portLevelSettings[].connectionPool.tcp.tcpKeepalive",
            "spec.trafficPolicy.portLevelSettings[].connectionPool.tcp.maxConnectionDuration",
            "spec.trafficPolicy.portLevelSettings[].connectionPool.http.http1MaxPendingRequests",
            "spec.trafficPolicy.portLevelSettings[].connectionPool.http.http2MaxRequests",
            "spec.trafficPolicy.portLevelSettings[].connectionPool.http.maxRequestsPerConnection",
            "spec.trafficPolicy.portLevelSettings[].connectionPool.http.maxRetries",
            "spec.trafficPolicy.portLevelSettings[].connectionPool.http.idleTimeout",
            "spec.trafficPolicy.portLevelSettings[].outlierDetection",
            "spec.subsets[].trafficPolicy.connectionPool.tcp.maxConnections",
            "spec.subsets[].trafficPolicy.connectionPool.tcp.connectTimeout",
            "spec.subsets[].trafficPolicy.connectionPool.tcp.tcpKeepalive",
            "spec.subsets[].trafficPolicy.connectionPool.tcp.maxConnectionDuration",
            "spec.subsets[].trafficPolicy.connectionPool.http.http1MaxPendingRequests",
            "spec.subsets[].trafficPolicy.connectionPool.http.http2MaxRequests",
            "spec.subsets[].trafficPolicy.connectionPool.http.maxRequestsPerConnection",
            "spec.subsets[].trafficPolicy.connectionPool.http.maxRetries",
            "spec.subsets[].trafficPolicy.connectionPool.http.idleTimeout",
            "spec.subsets[].trafficPolicy.outlierDetection",
            "spec.subsets[].trafficPolicy.portLevelSettings[].connectionPool.tcp.maxConnections",
            "spec.subsets[].trafficPolicy.portLevelSettings[].connectionPool.tcp.connectTimeout",
            "spec.subsets[].trafficPolicy.portLevelSettings[].connectionPool.tcp.tcpKeepalive",
            "spec.subsets[].trafficPolicy.portLevelSettings[].connectionPool.tcp.maxConnectionDuration",
            "spec.subsets[].trafficPolicy.portLevelSettings[].connectionPool.http.http1MaxPendingRequests",
            "spec.subsets[].trafficPolicy.portLevelSettings[].connectionPool.http.http2MaxRequests",
            "spec.subsets[].trafficPolicy.portLevelSettings[].connectionPool.http.maxRequestsPerConnection",
            "spec.subsets[].trafficPolicy.portLevelSettings[].connectionPool.http.maxRetries",
            "spec.subsets[].trafficPolicy.portLevelSettings[].connectionPool.http.idleTimeout",
            "spec.subsets[].trafficPolicy.portLevelSettings[].outlierDetection",
        ],
    }
}

/// Fields weft does not act on but need not warn about: ignoring them changes neither where
/// requests go nor what happens to them. Each with the reason, for the reader of this table.
pub fn without_traffic_effect(kind: Kind) -> &'static [(&'static str, &'static str)] {
    match kind {
        Kind::ServiceEntry => &[
            (
                "spec.location",
                "MESH_EXTERNAL/MESH_INTERNAL decide mutual TLS and telemetry labels; weft has no \
                 mutual TLS, so where and how requests go is the same either way",
            ),
            (
                "spec.endpoints[].locality",
                "only read by locality-aware load balancing, whose settings (localityLbSetting) \
                 warn by themselves",
            ),
            (
                "spec.endpoints[].serviceAccount",
                "a workload identity for mutual TLS and authorization, neither of which weft has",
            ),
        ],
        Kind::WorkloadEntry => &[
            (
                "spec.locality",
                "only read by locality-aware load balancing, whose settings warn by themselves",
            ),
            (
                "spec.serviceAccount",
                "a workload identity for mutual TLS and authorization, neither of which weft has",
            ),
        ],
        Kind::VirtualService => &[(
            "spec.http[].match[].statPrefix",
            "names the route's statistics; requests are matched and routed the same",
        )],
        Kind::DestinationRule => &[],
        Kind::Telemetry => &[],
        Kind::Sidecar => &[],
    }
}

/// Adds a warning for every field set in `spec` (the spec serialized, which leaves out unset
/// fields) that is neither acted on nor without traffic effect: one per normalized path, at
/// its first occurrence.
pub(super) fn check(kind: Kind, spec: &Value, f: &mut Findings) {
    let table = Table {
        acted_on: acted_on_fields(kind),
        ignored: without_traffic_effect(kind),
    };
    let mut warned = BTreeSet::new();
    walk(spec, &FieldPath::spec(), &table, &mut warned, f);
}

struct Table {
    acted_on: &'static [&'static str],
    ignored: &'static [(&'static str, &'static str)],
}

impl Table {
    fn covers(&self, path: &str) -> bool {
        self.acted_on.contains(&path) || self.ignored.iter().any(|(p, _)| *p == path)
    }

    /// Whether some listed path lies below `path`.
    fn has_children(&self, path: &str) -> bool {
        let below = |entry: &str| {
            entry.starts_with(path) && matches!(entry.as_bytes().get(path.len()), Some(b'.' | b'['))
        };
        self.acted_on.iter().any(|e| below(e)) || self.ignored.iter().any(|(e, _)| below(e))
    }
}

fn walk(
    value: &Value,
    path: &FieldPath,
    table: &Table,
    warned: &mut BTreeSet<String>,
    f: &mut Findings,
) {
    let normalized = path.without_indexes();
    if table.covers(&normalized) {
        return;
    }
    match value {
        Value::Object(map) if table.has_children(&normalized) => {
            for (key, child) in map {
                walk(child, &path.key(key), table, warned, f);
            }
        }
        Value::Array(items) if table.has_children(&normalized) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, &path.index(i), table, warned, f);
            }
        }
        _ => {
            if warned.insert(normalized) {
                f.warning(path, NOT_ACTED_ON);
            }
        }
    }
}
