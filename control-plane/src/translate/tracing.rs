//! Tracing: MeshConfig's providers and defaults plus the Telemetry resources that cover a
//! proxy, turned into the connection manager's `tracing` (Envoy's OpenTelemetry tracer, as
//! istiod configures it) and a cluster for each collector.
//!
//! Resolution follows Istio: MeshConfig's default provider and sampling, then a mesh-wide
//! Telemetry (root namespace, no selector), then the proxy's namespace (no selector), then
//! those whose selector matches the proxy's labels; each narrower one overrides what it sets
//! (custom tags key by key). The outbound listener reports client spans, so entries whose
//! `match.mode` is SERVER do not apply to it; a sidecar's inbound listener reports server spans,
//! with the entries that cover SERVER. `disableSpanReporting: true`, no provider, or
//! `enableTracing: false` leave tracing off.
//!
//! The collector is reached through the cluster `outbound|<port>||<host>`: the registry's own
//! when the provider's service is a service of the mesh, else one made here (static for an IP
//! address, strict DNS for a host name), always HTTP/2 since OTLP is gRPC.

use super::endpoints::socket_address;
use super::names::outbound_cluster;
use super::MeshSnapshot;
use crate::model::telemetry::{CustomTag, Telemetry};
use crate::model::{OtelProvider, Resource};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::net::IpAddr;
use xds_protos::any::pack;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use xds_protos::pb::envoy::config::cluster::v3::Cluster;
use xds_protos::pb::envoy::config::core::v3::{grpc_service, GrpcService, Http2ProtocolOptions};
use xds_protos::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use xds_protos::pb::envoy::config::trace::v3::{tracing, OpenTelemetryConfig};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use xds_protos::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
};
use xds_protos::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use xds_protos::pb::envoy::r#type::tracing::v3::{custom_tag, CustomTag as PbCustomTag};
use xds_protos::pb::envoy::r#type::v3::Percent;
use xds_protos::pb::envoy::config::route::v3::{
    route, route_action::ClusterSpecifier, route_match::PathSpecifier, Decorator, Route,
    RouteAction,
};
use xds_protos::pb::google::protobuf::{Duration as PbDuration, UInt32Value};
use xds_protos::type_url::HTTP_PROTOCOL_OPTIONS;

pub const OPEN_TELEMETRY_TRACER: &str = "envoy.tracers.opentelemetry";
pub const OPEN_TELEMETRY_CONFIG: &str =
    "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig";
/// Istio's default `max_path_tag_length` when the provider sets no `maxTagLength`.
const DEFAULT_MAX_TAG_LENGTH: u32 = 256;
/// One second: a collector on the mesh's network answers fast or not at all.
const COLLECTOR_CONNECT_TIMEOUT: PbDuration = PbDuration {
    seconds: 1,
    nanos: 0,
};

/// What a proxy's client spans are reported with.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTracing {
    pub provider_name: String,
    pub provider: OtelProvider,
    pub sampling: f64,
    pub custom_tags: BTreeMap<String, CustomTag>,
}

/// Which side of a request a connection manager is on: the client's (outbound listeners) or
/// the server's (a sidecar's inbound listener). Telemetry entries say which they cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// The tracing in force for the client side of `node`, or `None` when it traces nothing.
pub fn resolve(mesh: &MeshSnapshot, node: &NodeIdentity) -> Option<ResolvedTracing> {
    resolve_side(mesh, node, Side::Client)
}

/// The tracing in force for one side of `node`, or `None` when it traces nothing.
pub fn resolve_side(
    mesh: &MeshSnapshot,
    node: &NodeIdentity,
    side: Side,
) -> Option<ResolvedTracing> {
    let mc = &mesh.options.mesh_config;
    if !mc.enable_tracing {
        return None;
    }
    let mut provider = mc.default_tracing_provider.clone();
    let mut sampling = mc.default_sampling;
    let mut disabled = false;
    let mut custom_tags = BTreeMap::new();
    for t in covering(&mesh.config.telemetries, &mc.root_namespace, node) {
        let covers = |e: &&crate::model::telemetry::TracingSpec| match side {
            Side::Client => e.mode().covers_client(),
            Side::Server => e.mode().covers_server(),
        };
        let Some(entry) = t.spec.tracing.iter().find(covers) else {
            continue;
        };
        if let Some(p) = entry.providers.first() {
            provider = Some(p.name.clone());
        }
        if let Some(s) = entry.random_sampling_percentage {
            sampling = s;
        }
        if let Some(d) = entry.disable_span_reporting {
            disabled = d;
        }
        custom_tags.extend(entry.custom_tags.clone());
    }
    if disabled {
        return None;
    }
    let provider_name = provider?;
    let Some(p) = mc.tracing_providers.get(&provider_name) else {
        ::tracing::warn!(
            provider = %provider_name,
            namespace = %node.namespace,
            workload = %node.workload,
            "tracing provider is not an opentelemetry provider of the mesh config: tracing off"
        );
        return None;
    };
    Some(ResolvedTracing {
        provider: p.clone(),
        provider_name,
        sampling,
        custom_tags,
    })
}

/// The Telemetry resources that cover `node`, widest first.
pub(super) fn covering<'a>(
    all: &'a [Arc<Resource<Telemetry>>],
    root: &'a str,
    node: &'a NodeIdentity,
) -> impl Iterator<Item = &'a Resource<Telemetry>> {
    let mesh_wide = all
        .iter()
        .filter(move |t| t.meta.namespace == root && t.spec.selector.is_none());
    let namespace = all.iter().filter(move |t| {
        t.meta.namespace == node.namespace && t.meta.namespace != root && t.spec.selector.is_none()
    });
    let workload = all.iter().filter(move |t| {
        t.meta.namespace == node.namespace
            && t.spec.selector.as_ref().is_some_and(|s| {
                s.match_labels
                    .iter()
                    .all(|(k, v)| node.labels.get(k) == Some(v))
            })
    });
    // One per level, as Istio takes one: the first by name.
    mesh_wide
        .take(1)
        .chain(namespace.take(1))
        .chain(workload.take(1))
        .map(|t| &**t)
}

/// The label keys some Telemetry selector names, plus those the span tags read: the part of a
/// proxy's labels its listener depends on.
pub fn label_keys(mesh: &MeshSnapshot) -> impl Iterator<Item = &str> {
    mesh.config
        .telemetries
        .iter()
        .filter_map(|t| t.spec.selector.as_ref())
        .flat_map(|s| s.match_labels.keys().map(String::as_str))
        .chain(CANONICAL_LABELS.iter().flat_map(|(a, b)| [*a, *b]))
}

/// Istio's canonical service and revision: the `service.istio.io` labels, else the
/// `app.kubernetes.io` ones, else `app` / `version`.
const CANONICAL_LABELS: [(&str, &str); 3] = [
    (
        "service.istio.io/canonical-name",
        "service.istio.io/canonical-revision",
    ),
    ("app.kubernetes.io/name", "app.kubernetes.io/version"),
    ("app", "version"),
];

fn canonical(node: &NodeIdentity) -> (String, String) {
    let service = CANONICAL_LABELS
        .iter()
        .find_map(|(n, _)| node.labels.get(*n).cloned())
        .unwrap_or_else(|| {
            if node.workload.is_empty() {
                "unknown".to_string()
            } else {
                node.workload.clone()
            }
        });
    let revision = CANONICAL_LABELS
        .iter()
        .find_map(|(_, r)| node.labels.get(*r).cloned())
        .unwrap_or_else(|| "latest".to_string());
    (service, revision)
}

/// The connection manager's `tracing` for `node`'s outbound listener.
pub fn hcm_tracing(mesh: &MeshSnapshot, node: &NodeIdentity) -> Option<Tracing> {
    hcm_tracing_side(mesh, node, Side::Client)
}

/// The connection manager's `tracing` for one side of `node`: the same configuration, with the
/// Telemetry entries that cover that side.
pub fn hcm_tracing_side(mesh: &MeshSnapshot, node: &NodeIdentity, side: Side) -> Option<Tracing> {
    let t = resolve_side(mesh, node, side)?;
    let (service, revision) = canonical(node);
    let namespace = if node.namespace.is_empty() {
        crate::model::DEFAULT_NAMESPACE.to_string()
    } else {
        node.namespace.clone()
    };
    let otel = OpenTelemetryConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: collector_cluster_name(&t.provider),
                    // As istiod does: the cluster name is no valid `:authority`, and gRPC
                    // servers refuse it.
                    authority: t.provider.host().to_string(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        service_name: format!("{service}.{namespace}"),
        ..Default::default()
    };
    let literal = |tag: &str, value: String| PbCustomTag {
        tag: tag.to_string(),
        r#type: Some(custom_tag::Type::Literal(custom_tag::Literal { value })),
    };
    let mut custom_tags = vec![
        literal("istio.canonical_revision", revision),
        literal("istio.canonical_service", service),
        literal("istio.mesh_id", "cluster.local".to_string()),
        literal("istio.namespace", namespace),
    ];
    for (name, tag) in &t.custom_tags {
        let r#type = if let Some(l) = &tag.literal {
            custom_tag::Type::Literal(custom_tag::Literal {
                value: l.value.clone(),
            })
        } else if let Some(e) = &tag.environment {
            custom_tag::Type::Environment(custom_tag::Environment {
                name: e.name.clone(),
                default_value: e.default_value.clone(),
            })
        } else if let Some(h) = &tag.header {
            custom_tag::Type::RequestHeader(custom_tag::Header {
                name: h.name.clone(),
                default_value: h.default_value.clone(),
            })
        } else {
            // Validation makes this unreachable; a tag without a value is left out.
            continue;
        };
        custom_tags.retain(|c| c.tag != *name);
        custom_tags.push(PbCustomTag {
            tag: name.clone(),
            r#type: Some(r#type),
        });
    }
    let percent = |value| Some(Percent { value });
    Some(Tracing {
        client_sampling: percent(100.0),
        random_sampling: percent(t.sampling),
        overall_sampling: percent(100.0),
        max_path_tag_length: Some(UInt32Value {
            value: t.provider.max_tag_length.unwrap_or(DEFAULT_MAX_TAG_LENGTH),
        }),
        custom_tags,
        provider: Some(tracing::Http {
            name: OPEN_TELEMETRY_TRACER.to_string(),
            config_type: Some(tracing::http::ConfigType::TypedConfig(pack(
                OPEN_TELEMETRY_CONFIG,
                &otel,
            ))),
        }),
        ..Default::default()
    })
}

/// Names each route's span as istiod does: `<host>:<port><path>`, the host being the route's
/// only destination (else the VirtualService's name) and the path its match (`/*` for any).
/// `propagate` is left at its default (true), as istiod leaves it: a tracing outbound listener
/// sends the operation upstream in `x-envoy-decorator-operation`.
pub fn decorate(routes: &mut [Route], vs_name: &str, port: u32) {
    for r in routes {
        let path = match r.r#match.as_ref().and_then(|m| m.path_specifier.as_ref()) {
            Some(PathSpecifier::Prefix(p)) => format!("{p}*"),
            Some(PathSpecifier::Path(p)) => p.clone(),
            Some(PathSpecifier::SafeRegex(re)) => re.regex.clone(),
            _ => "/*".to_string(),
        };
        let host = match &r.action {
            Some(route::Action::Route(RouteAction {
                cluster_specifier: Some(ClusterSpecifier::Cluster(c)),
                ..
            })) => c.rsplit('|').next().unwrap_or(vs_name),
            _ => vs_name,
        };
        r.decorator = Some(Decorator {
            operation: format!("{host}:{port}{path}"),
            propagate: None,
        });
    }
}

pub fn collector_cluster_name(p: &OtelProvider) -> String {
    outbound_cluster(p.port, "", p.host())
}

/// Clusters for the collectors of the mesh config's OpenTelemetry providers that the mesh's
/// own services do not already provide (`existing` are the clusters translated so far).
pub fn collector_clusters(mesh: &MeshSnapshot, existing: &[Cluster]) -> Vec<Cluster> {
    let mc = &mesh.options.mesh_config;
    if !mc.enable_tracing {
        return Vec::new();
    }
    let mut out: Vec<Cluster> = Vec::new();
    for p in mc.tracing_providers.values() {
        let name = collector_cluster_name(p);
        if existing.iter().chain(out.iter()).any(|c| c.name == name) {
            continue;
        }
        out.push(collector_cluster(name, p));
    }
    out
}

fn collector_cluster(name: String, p: &OtelProvider) -> Cluster {
    let host = p.host();
    let kind = if host.parse::<IpAddr>().is_ok() {
        DiscoveryType::Static
    } else {
        DiscoveryType::StrictDns
    };
    let opts = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    let mut c = Cluster {
        name: name.clone(),
        connect_timeout: Some(COLLECTOR_CONNECT_TIMEOUT),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket_address(host, p.port)),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    c.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
        pack(HTTP_PROTOCOL_OPTIONS, &opts),
    );
    c
}

#[cfg(test)]
mod tests;
