use super::*;
use crate::model::parse_mesh_config;
use crate::translate::tests::{decode, mesh, node};
use crate::translate::{translate, MeshSnapshot, TranslateOptions};
use prost::Message;
use std::path::Path;
use std::sync::Arc;
use xds_protos::pb::envoy::config::listener::v3::{filter, Listener};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use xds_protos::type_url::{CLUSTER, LISTENER};

const MESH_CONFIG: &str = "
extensionProviders:
- name: otel
  opentelemetry: {service: 127.0.0.1, port: 4317}
- name: other
  opentelemetry: {service: observability/collector.observability.svc.cluster.local, port: 4317}
defaultProviders: {tracing: [otel]}
defaultConfig: {tracing: {sampling: 5}}
";

fn with_mesh_config(yaml: &[&str], mesh_config: &str) -> MeshSnapshot {
    let base = mesh(yaml);
    let mc = parse_mesh_config(Path::new("mesh.yaml"), mesh_config)
        .unwrap()
        .config;
    MeshSnapshot::new(
        base.config,
        TranslateOptions {
            mesh_config: Arc::new(mc),
            ..TranslateOptions::default()
        },
    )
}

fn labelled(namespace: &str, labels: &[(&str, &str)]) -> NodeIdentity {
    let mut n = node(namespace);
    n.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    n
}

fn hcm_of(m: &MeshSnapshot, n: &NodeIdentity) -> HttpConnectionManager {
    let l: Listener = decode(&translate(m, n), LISTENER, "virtualOutbound");
    let Some(filter::ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type
    else {
        panic!("no typed config");
    };
    HttpConnectionManager::decode(any.value.as_slice()).unwrap()
}

fn otel_of(t: &Tracing) -> OpenTelemetryConfig {
    let Some(tracing::http::ConfigType::TypedConfig(any)) =
        &t.provider.as_ref().unwrap().config_type
    else {
        panic!("no provider config");
    };
    assert_eq!(any.type_url, OPEN_TELEMETRY_CONFIG);
    OpenTelemetryConfig::decode(any.value.as_slice()).unwrap()
}

const TELEMETRY: &str = "
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - randomSamplingPercentage: 50
    customTags:
      team: {literal: {value: core}}
---
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: shop, namespace: shop}
spec:
  tracing:
  - providers: [{name: other}]
    customTags:
      user: {header: {name: x-user, defaultValue: anonymous}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  tracing:
  - randomSamplingPercentage: 100
";

#[test]
fn without_a_provider_nothing_is_traced() {
    let m = mesh(&[]);
    assert_eq!(hcm_of(&m, &node("default")).tracing, None);
    let l: Listener = decode(
        &translate(&m, &node("default")),
        LISTENER,
        "virtualOutbound",
    );
    assert_eq!(l.traffic_direction, 2, "OUTBOUND");
}

#[test]
fn the_mesh_config_default_provider_and_sampling_apply() {
    let m = with_mesh_config(&[], MESH_CONFIG);
    let n = labelled("default", &[("app", "productpage"), ("version", "v1")]);
    let t = hcm_of(&m, &n).tracing.unwrap();
    assert_eq!(t.random_sampling.unwrap().value, 5.0);
    assert_eq!(t.client_sampling.unwrap().value, 100.0);
    let otel = otel_of(&t);
    assert_eq!(otel.service_name, "productpage.default");
    let Some(grpc_service::TargetSpecifier::EnvoyGrpc(g)) =
        otel.grpc_service.unwrap().target_specifier
    else {
        panic!("not envoy_grpc");
    };
    assert_eq!(g.cluster_name, "outbound|4317||127.0.0.1");
    assert_eq!(
        g.authority, "127.0.0.1",
        "a cluster name is no valid :authority"
    );
    let tags: Vec<(String, String)> = t
        .custom_tags
        .iter()
        .map(|c| match &c.r#type {
            Some(custom_tag::Type::Literal(l)) => (c.tag.clone(), l.value.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(tags.contains(&("istio.canonical_service".into(), "productpage".into())));
    assert!(tags.contains(&("istio.canonical_revision".into(), "v1".into())));
    assert!(tags.contains(&("istio.namespace".into(), "default".into())));
}

#[test]
fn collector_clusters_are_made_for_providers_outside_the_registry() {
    let m = with_mesh_config(&[], MESH_CONFIG);
    let r = translate(&m, &node("default"));
    let c: Cluster = decode(&r, CLUSTER, "outbound|4317||127.0.0.1");
    assert_eq!(
        c.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32))
    );
    assert!(c
        .typed_extension_protocol_options
        .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"));
    let c: Cluster = decode(
        &r,
        CLUSTER,
        "outbound|4317||collector.observability.svc.cluster.local",
    );
    assert_eq!(
        c.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32))
    );
}

#[test]
fn telemetry_narrows_from_mesh_to_namespace_to_workload() {
    let m = with_mesh_config(&[TELEMETRY], MESH_CONFIG);

    // Mesh-wide only.
    let t = resolve(&m, &labelled("default", &[("app", "a")])).unwrap();
    assert_eq!(t.provider_name, "otel");
    assert_eq!(t.sampling, 50.0);
    assert_eq!(t.custom_tags.keys().collect::<Vec<_>>(), ["team"]);

    // The namespace changes the provider and adds a tag; sampling stays mesh-wide.
    let t = resolve(&m, &labelled("shop", &[("app", "web")])).unwrap();
    assert_eq!(t.provider_name, "other");
    assert_eq!(t.sampling, 50.0);
    assert_eq!(t.custom_tags.keys().collect::<Vec<_>>(), ["team", "user"]);

    // The selected workload changes the sampling only.
    let t = resolve(&m, &labelled("shop", &[("app", "cart")])).unwrap();
    assert_eq!(t.provider_name, "other");
    assert_eq!(t.sampling, 100.0);

    let hcm = hcm_of(&m, &labelled("shop", &[("app", "cart")]));
    let tracing = hcm.tracing.unwrap();
    let user = tracing
        .custom_tags
        .iter()
        .find(|c| c.tag == "user")
        .unwrap();
    assert_eq!(
        user.r#type,
        Some(custom_tag::Type::RequestHeader(custom_tag::Header {
            name: "x-user".into(),
            default_value: "anonymous".into()
        }))
    );
}

#[test]
fn span_reporting_can_be_turned_off_and_server_entries_do_not_apply() {
    let off = "
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: quiet}
spec:
  tracing:
  - disableSpanReporting: true
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: server, namespace: srv}
spec:
  tracing:
  - match: {mode: SERVER}
    randomSamplingPercentage: 100
";
    let m = with_mesh_config(&[off], MESH_CONFIG);
    assert_eq!(resolve(&m, &node("quiet")), None);
    assert_eq!(resolve(&m, &node("srv")).unwrap().sampling, 5.0);
    let m = with_mesh_config(&[], &format!("{MESH_CONFIG}enableTracing: false\n"));
    assert_eq!(resolve(&m, &node("default")), None);
}

#[test]
fn listeners_of_different_workloads_differ_when_tracing_is_on() {
    let m = with_mesh_config(&[], MESH_CONFIG);
    let a = labelled("default", &[("app", "a")]);
    let b = labelled("default", &[("app", "b")]);
    let shared_a = m.generate_shared(&a);
    let shared_b = m.generate_shared(&b);
    assert_eq!(shared_a, translate(&m, &a));
    assert_eq!(shared_b, translate(&m, &b));
    assert_ne!(shared_a, shared_b);
}

#[test]
fn routes_are_decorated_as_istiod_does() {
    use xds_protos::pb::envoy::config::route::v3::RouteConfiguration;
    let vs = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-vs, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews}}]
  - route:
    - {destination: {host: reviews}, weight: 50}
    - {destination: {host: reviews}, weight: 50}
";
    let m = mesh(&[vs]);
    let rc: RouteConfiguration = decode(
        &translate(&m, &node("default")),
        xds_protos::type_url::ROUTE,
        "http_proxy",
    );
    let ops: Vec<(String, Option<bool>)> = rc.virtual_hosts[0]
        .routes
        .iter()
        .map(|r| {
            let d = r.decorator.clone().unwrap();
            (d.operation, d.propagate.map(|p| p.value))
        })
        .collect();
    assert_eq!(
        ops,
        [
            (
                "reviews.default.svc.cluster.local:9080/api*".to_string(),
                None
            ),
            ("reviews-vs:9080/*".to_string(), None),
        ]
    );
}
