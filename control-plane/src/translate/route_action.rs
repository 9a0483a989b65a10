//! Forwarding routes: which cluster (or weighted clusters) a route sends to, and what happens
//! on the way, as istiod builds it: timeout, retries, rewrites, mirrors, per-destination
//! header mutations and the consistent-hash key.
//!
//! A single destination is a plain `cluster`, and its header mutations join the route's
//! (appended after them, so a destination's `set` wins). Several destinations become
//! `weighted_clusters`, each carrying its own mutations; destinations of weight 0 are left
//! out.

use super::clusters::pb_duration;
use super::hash_policy;
use super::names::outbound_cluster;
use super::route_policy::{header_mutations, percent_of_hundred, percent_of_million, retry_policy};
use super::MeshSnapshot;
use crate::model::{Destination, HttpMirrorPolicy, HttpRoute, HttpRouteDestination};
use std::time::Duration;
use xds_protos::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use xds_protos::pb::envoy::config::route::v3::{
    route_action::{
        ClusterSpecifier, HashPolicy, HostRewriteSpecifier, MaxStreamDuration, RequestMirrorPolicy,
    },
    weighted_cluster::{cluster_weight, ClusterWeight},
    Route, RouteAction, WeightedCluster,
};
use xds_protos::pb::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};
use xds_protos::pb::envoy::r#type::v3::FractionalPercent;
use xds_protos::pb::google::protobuf::{BoolValue, UInt32Value};

/// The cluster a destination names: its port, else the service's only port, else the port
/// the route is for.
pub fn destination_cluster(mesh: &MeshSnapshot, d: &Destination, port: u32) -> String {
    outbound_cluster(
        destination_port(mesh, d, port),
        d.subset.as_deref().unwrap_or(""),
        &d.host,
    )
}

fn destination_port(mesh: &MeshSnapshot, d: &Destination, port: u32) -> u32 {
    d.port
        .as_ref()
        .map(|p| p.number)
        .or_else(|| {
            let svc = mesh.registry.service(&d.host)?;
            (svc.ports.len() == 1).then(|| svc.ports[0].number)
        })
        .unwrap_or(port)
}

/// Istio's request timeout: the VirtualService's, or none at all (Envoy's own default is
/// 15 s). A gRPC client's `grpc-timeout` header is honoured either way, as istiod arranges:
///
/// - no timeout: `max_stream_duration` 0 with `grpc_timeout_header_max` 0, so the header (if
///   any) bounds the stream and nothing else does;
/// - a timeout: the route `timeout`, and `max_grpc_timeout` equal to it, so the header may
///   shorten it but not extend it. `max_stream_duration` must stay unset here: when it is set,
///   Envoy ignores the route `timeout` altogether.
pub fn set_timeout(action: &mut RouteAction, timeout: Option<Duration>) {
    let timeout = timeout.unwrap_or(Duration::ZERO);
    action.timeout = Some(pb_duration(timeout));
    if timeout.is_zero() {
        action.max_stream_duration = Some(MaxStreamDuration {
            max_stream_duration: Some(pb_duration(Duration::ZERO)),
            grpc_timeout_header_max: Some(pb_duration(Duration::ZERO)),
            grpc_timeout_header_offset: None,
        });
    } else {
        #[allow(deprecated)]
        {
            action.max_grpc_timeout = Some(pb_duration(timeout));
        }
    }
}

/// The route a service port gets without a VirtualService: all endpoints, Istio's default
/// retries and timeout, and the DestinationRule's consistent-hash key if it has one.
pub fn default_action(mesh: &MeshSnapshot, host: &str, port: u32) -> RouteAction {
    let mut action = RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(outbound_cluster(port, "", host))),
        retry_policy: retry_policy(None, false),
        hash_policy: hash_policy::for_service(mesh, host, port)
            .map(hash_policy::hash_policies)
            .unwrap_or_default(),
        ..Default::default()
    };
    set_timeout(&mut action, None);
    action
}

/// The forwarding action of an HTTP route. Route-level header mutations are already on `out`
/// (a single destination's are appended to them); `authority` is the one they asked for.
pub fn apply_forwarding(
    out: &mut Route,
    mesh: &MeshSnapshot,
    http: &HttpRoute,
    port: u32,
    authority: Option<String>,
) -> RouteAction {
    let mut action = RouteAction::default();
    set_timeout(&mut action, http.timeout);
    let mut authority = authority;
    if let Some(rw) = &http.rewrite {
        if let Some(re) = &rw.uri_regex_rewrite {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(RegexMatcher {
                    regex: re.r#match.clone(),
                    ..Default::default()
                }),
                substitution: re.rewrite.clone(),
            });
        } else if let Some(uri) = rw.uri.as_ref().filter(|u| !u.is_empty()) {
            // Envoy replaces the matched part of the path: the prefix for a prefix match,
            // the whole path for an exact or regex match.
            action.prefix_rewrite = uri.clone();
        }
        if let Some(a) = rw.authority.as_ref().filter(|a| !a.is_empty()) {
            authority = Some(a.clone());
        }
    }
    if let Some(a) = authority {
        action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(a));
    }
    action.request_mirror_policies = mirror_policies(mesh, http, port);

    let mut consistent_hash = false;
    if let [only] = http.route.as_slice() {
        action.cluster_specifier = Some(ClusterSpecifier::Cluster(destination_cluster(
            mesh,
            &only.destination,
            port,
        )));
        if let Some(h) = &only.headers {
            let m = header_mutations(h);
            out.request_headers_to_add.extend(m.request_headers_to_add);
            out.request_headers_to_remove
                .extend(m.request_headers_to_remove);
            out.response_headers_to_add
                .extend(m.response_headers_to_add);
            out.response_headers_to_remove
                .extend(m.response_headers_to_remove);
            // The route's own authority rewrite, when there is one, wins.
            if let (Some(a), None) = (m.authority, &action.host_rewrite_specifier) {
                action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(a));
            }
        }
        let hash = destination_hash(mesh, only, port);
        consistent_hash = hash.is_some();
        action.hash_policy.extend(hash.unwrap_or_default());
    } else {
        let mut clusters = Vec::new();
        for d in http.route.iter().filter(|d| d.weight.unwrap_or(0) > 0) {
            clusters.push(cluster_weight(mesh, d, port));
            // As istiod does, every destination's key is listed; Envoy combines all of them
            // into the one hash the picked cluster's ring or maglev table is searched with.
            action
                .hash_policy
                .extend(destination_hash(mesh, d, port).unwrap_or_default());
        }
        action.cluster_specifier = Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters,
            ..Default::default()
        }));
    }
    action.retry_policy = retry_policy(http.retries.as_ref(), consistent_hash);
    action
}

fn destination_hash(
    mesh: &MeshSnapshot,
    d: &HttpRouteDestination,
    port: u32,
) -> Option<Vec<HashPolicy>> {
    let port = destination_port(mesh, &d.destination, port);
    hash_policy::for_destination(mesh, &d.destination, port).map(hash_policy::hash_policies)
}

fn cluster_weight(mesh: &MeshSnapshot, d: &HttpRouteDestination, port: u32) -> ClusterWeight {
    let mut cw = ClusterWeight {
        name: destination_cluster(mesh, &d.destination, port),
        weight: Some(UInt32Value {
            value: d.weight.unwrap_or(0).max(0) as u32,
        }),
        ..Default::default()
    };
    if let Some(h) = &d.headers {
        let m = header_mutations(h);
        cw.request_headers_to_add = m.request_headers_to_add;
        cw.request_headers_to_remove = m.request_headers_to_remove;
        cw.response_headers_to_add = m.response_headers_to_add;
        cw.response_headers_to_remove = m.response_headers_to_remove;
        cw.host_rewrite_specifier = m
            .authority
            .map(cluster_weight::HostRewriteSpecifier::HostRewriteLiteral);
    }
    cw
}

/// `mirror` (with `mirrorPercentage` or the deprecated `mirror_percent`) and `mirrors`, in
/// that order. A percentage of 0 given explicitly mirrors nothing; none given mirrors all.
fn mirror_policies(mesh: &MeshSnapshot, http: &HttpRoute, port: u32) -> Vec<RequestMirrorPolicy> {
    let mut out = Vec::new();
    if let Some(mirror) = &http.mirror {
        let fraction = match (http.mirror_percentage, http.mirror_percent) {
            (Some(p), _) => (p.value > 0.0).then(|| percent_of_million(p)),
            (None, Some(p)) => (p > 0).then(|| percent_of_hundred(p.min(i32::MAX as u32) as i32)),
            (None, None) => Some(percent_of_hundred(100)),
        };
        if let Some(f) = fraction {
            out.push(mirror_policy(mesh, mirror, port, f));
        }
    }
    for HttpMirrorPolicy {
        destination,
        percentage,
    } in &http.mirrors
    {
        let fraction = match percentage {
            Some(p) => (p.value > 0.0).then(|| percent_of_million(*p)),
            None => Some(percent_of_hundred(100)),
        };
        if let Some(f) = fraction {
            out.push(mirror_policy(mesh, destination, port, f));
        }
    }
    out
}

fn mirror_policy(
    mesh: &MeshSnapshot,
    d: &Destination,
    port: u32,
    fraction: FractionalPercent,
) -> RequestMirrorPolicy {
    RequestMirrorPolicy {
        cluster: destination_cluster(mesh, d, port),
        runtime_fraction: Some(RuntimeFractionalPercent {
            default_value: Some(fraction),
            runtime_key: String::new(),
        }),
        // Mirrored requests do not decide tracing for themselves (istiod's choice).
        trace_sampled: Some(BoolValue { value: false }),
        ..Default::default()
    }
}
