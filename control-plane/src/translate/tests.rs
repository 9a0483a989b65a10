//! Translation tests: Istio YAML in, the Envoy resources a proxy gets out.

use super::*;
use prost::Message;
use xds_protos::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use xds_protos::pb::envoy::config::cluster::v3::Cluster;
use xds_protos::pb::envoy::config::core::v3::address;
use xds_protos::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment,
};
use xds_protos::pb::envoy::config::listener::v3::Listener;
use xds_protos::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, route, route_action::ClusterSpecifier, RouteConfiguration,
};
use xds_protos::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

pub(super) const BOOKINFO: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.0.1, ports: {http: 19082}, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 127.0.0.2, ports: {http: 19083}, labels: {app: reviews, version: v2}, weight: 3}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc, namespace: prod}
spec:
  hosts: [greeter.prod.svc.cluster.local]
  ports: [{number: 80, name: grpc, protocol: GRPC, targetPort: 50051}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.9}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: http, protocol: HTTP}]
  resolution: DNS
"#;

const JASON_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers: {end-user: {exact: jason}}
    - uri: {prefix: /v2}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"#;

pub(super) fn mesh(yaml: &[&str]) -> MeshSnapshot {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, y) in yaml.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.yaml")), y).expect("write");
    }
    let (config, diagnostics) = crate::source::load_dir(dir.path());
    assert!(
        diagnostics
            .iter()
            .all(|d| d.severity != crate::model::Severity::Error),
        "{diagnostics:?}"
    );
    MeshSnapshot::new(config, TranslateOptions::default())
}

pub(super) fn node(namespace: &str) -> NodeIdentity {
    NodeIdentity {
        id: "sidecar~127.0.0.1~pp.default~default.svc.cluster.local".into(),
        namespace: namespace.into(),
        outbound_addr: Some("127.0.0.1:15001".into()),
        ..Default::default()
    }
}

pub(super) fn decode<M: Message + Default>(r: &Resources, type_url: &str, name: &str) -> M {
    let res = r
        .get(type_url, name)
        .unwrap_or_else(|| panic!("no {type_url} {name}"));
    M::decode(res.any().expect("decode the Any").value.as_slice()).expect("decode")
}

fn names(r: &Resources, type_url: &str) -> Vec<String> {
    r.of_type(type_url)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn clusters_follow_istio_naming_with_one_per_subset() {
    let r = translate(&mesh(&[BOOKINFO]), &node("default"));
    assert_eq!(
        names(&r, CLUSTER),
        [
            "outbound|443||api.example.com",
            "outbound|80||greeter.prod.svc.cluster.local",
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v2|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        ]
    );
    let c: Cluster = decode(
        &r,
        CLUSTER,
        "outbound|9080|v1|reviews.default.svc.cluster.local",
    );
    assert_eq!(
        c.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
    );
    // An empty EDS service name: the proxy asks for the cluster's own name.
    assert_eq!(c.eds_cluster_config.expect("eds").service_name, "");
    assert!(
        c.typed_extension_protocol_options.is_empty(),
        "HTTP/1.1 upstream"
    );
}

#[test]
fn grpc_ports_speak_http2_upstream_on_the_target_port() {
    let r = translate(&mesh(&[BOOKINFO]), &node("default"));
    let c: Cluster = decode(&r, CLUSTER, "outbound|80||greeter.prod.svc.cluster.local");
    assert!(c
        .typed_extension_protocol_options
        .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"));
    let cla: ClusterLoadAssignment =
        decode(&r, ENDPOINT, "outbound|80||greeter.prod.svc.cluster.local");
    assert_eq!(endpoints(&cla), [("127.0.0.9".to_string(), 50051, 1)]);
}

#[test]
fn dns_services_resolve_in_the_proxy() {
    let r = translate(&mesh(&[BOOKINFO]), &node("default"));
    let c: Cluster = decode(&r, CLUSTER, "outbound|443||api.example.com");
    assert_eq!(
        c.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32))
    );
    assert!(r.get(ENDPOINT, "outbound|443||api.example.com").is_none());
}

fn endpoints(cla: &ClusterLoadAssignment) -> Vec<(String, u32, u32)> {
    cla.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| {
            let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                panic!("endpoint")
            };
            let Some(address::Address::SocketAddress(sa)) =
                ep.address.as_ref().and_then(|a| a.address.as_ref())
            else {
                panic!("socket address")
            };
            let Some(
                xds_protos::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(
                    port,
                ),
            ) = sa.port_specifier
            else {
                panic!("port")
            };
            (
                sa.address.clone(),
                port,
                e.load_balancing_weight.as_ref().map_or(1, |w| w.value),
            )
        })
        .collect()
}

#[test]
fn subsets_select_workload_entries_by_label() {
    let r = translate(&mesh(&[BOOKINFO]), &node("default"));
    let all: ClusterLoadAssignment = decode(
        &r,
        ENDPOINT,
        "outbound|9080||reviews.default.svc.cluster.local",
    );
    assert_eq!(endpoints(&all).len(), 2);
    let v2: ClusterLoadAssignment = decode(
        &r,
        ENDPOINT,
        "outbound|9080|v2|reviews.default.svc.cluster.local",
    );
    assert_eq!(endpoints(&v2), [("127.0.0.2".to_string(), 19083, 3)]);
}

#[test]
fn the_outbound_listener_binds_where_the_proxy_said_and_uses_rds() {
    let r = translate(&mesh(&[BOOKINFO]), &node("default"));
    assert_eq!(names(&r, LISTENER), ["virtualOutbound"]);
    let l: Listener = decode(&r, LISTENER, "virtualOutbound");
    let Some(address::Address::SocketAddress(sa)) = l.address.and_then(|a| a.address) else {
        panic!()
    };
    assert_eq!(sa.address, "127.0.0.1");
    assert_eq!(names(&r, ROUTE), ["http_proxy"]);
    // A proxy that announced no outbound address gets no listener.
    let r = translate(&mesh(&[BOOKINFO]), &NodeIdentity::default());
    assert!(names(&r, LISTENER).is_empty());
}

#[test]
fn the_local_outbound_listener_is_the_edge_for_loopback_and_private_callers() {
    use xds_protos::pb::envoy::config::listener::v3::filter;
    use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    let r = translate(&mesh(&[BOOKINFO]), &node("default"));
    let l: Listener = decode(&r, LISTENER, "virtualOutbound");
    let Some(filter::ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type
    else {
        panic!("no typed config");
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    assert_eq!(hcm.use_remote_address.map(|b| b.value), Some(true));
    assert!(hcm.preserve_external_request_id);
    let upgrades: Vec<&str> = hcm
        .upgrade_configs
        .iter()
        .map(|u| u.upgrade_type.as_str())
        .collect();
    assert_eq!(upgrades, ["websocket"]);
    let ranges: Vec<(String, u32)> = hcm
        .internal_address_config
        .expect("internal_address_config")
        .cidr_ranges
        .into_iter()
        .map(|c| (c.address_prefix, c.prefix_len.map_or(0, |l| l.value)))
        .collect();
    let expected: Vec<(String, u32)> = super::listeners::LOCAL_INTERNAL_RANGES
        .iter()
        .map(|(a, l)| (a.to_string(), *l))
        .collect();
    assert_eq!(ranges, expected);
    assert!(ranges.contains(&("127.0.0.0".to_string(), 8)));
}

#[test]
fn virtual_hosts_answer_every_name_of_a_service() {
    let r = translate(&mesh(&[BOOKINFO]), &node("default"));
    let rc: RouteConfiguration = decode(&r, ROUTE, "http_proxy");
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "reviews.default.svc.cluster.local:9080")
        .expect("vhost");
    for d in [
        "reviews:9080",
        "reviews.default:9080",
        "reviews.default.svc:9080",
        "reviews.default.svc.cluster.local:9080",
    ] {
        assert!(vh.domains.iter().any(|x| x == d), "{d} in {:?}", vh.domains);
    }
    assert!(
        !vh.domains.iter().any(|x| x == "reviews"),
        "no port means port 80"
    );
    // Port 80: the port-less names too; the short name only within the namespace.
    let greeter = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name.starts_with("greeter"))
        .expect("vhost");
    assert!(greeter.domains.iter().any(|x| x == "greeter.prod"));
    assert!(!greeter
        .domains
        .iter()
        .any(|x| x == "greeter" || x == "greeter:80"));
    let r = translate(&mesh(&[BOOKINFO]), &node("prod"));
    let rc: RouteConfiguration = decode(&r, ROUTE, "http_proxy");
    let greeter = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name.starts_with("greeter"))
        .expect("vhost");
    assert!(greeter.domains.iter().any(|x| x == "greeter"));
}

#[test]
fn without_a_virtual_service_a_host_routes_to_all_endpoints() {
    let r = translate(&mesh(&[BOOKINFO]), &node("default"));
    let rc: RouteConfiguration = decode(&r, ROUTE, "http_proxy");
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name.starts_with("reviews"))
        .expect("vhost");
    assert_eq!(vh.routes.len(), 1);
    let Some(route::Action::Route(a)) = &vh.routes[0].action else {
        panic!()
    };
    assert_eq!(
        a.cluster_specifier,
        Some(ClusterSpecifier::Cluster(
            "outbound|9080||reviews.default.svc.cluster.local".into()
        ))
    );
}

#[test]
fn virtual_service_match_blocks_become_ordered_routes() {
    let r = translate(&mesh(&[BOOKINFO, JASON_VS]), &node("default"));
    let rc: RouteConfiguration = decode(&r, ROUTE, "http_proxy");
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name.starts_with("reviews"))
        .expect("vhost");
    // Two OR'ed match blocks, then the catch-all split.
    assert_eq!(vh.routes.len(), 3);
    let m = vh.routes[0].r#match.as_ref().expect("match");
    assert_eq!(m.headers[0].name, "end-user");
    assert!(matches!(
        m.headers[0].header_match_specifier,
        Some(HeaderMatchSpecifier::StringMatch(_))
    ));
    assert_eq!(vh.routes[0].name, "jason");
    let Some(route::Action::Route(a)) = &vh.routes[2].action else {
        panic!()
    };
    let Some(ClusterSpecifier::WeightedClusters(w)) = &a.cluster_specifier else {
        panic!("weighted")
    };
    let split: Vec<_> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.as_ref().map_or(0, |w| w.value)))
        .collect();
    assert_eq!(
        split,
        [
            ("outbound|9080|v1|reviews.default.svc.cluster.local", 80),
            ("outbound|9080|v2|reviews.default.svc.cluster.local", 20)
        ]
    );
}

#[test]
fn translation_is_deterministic() {
    let m = mesh(&[BOOKINFO, JASON_VS]);
    assert_eq!(
        translate(&m, &node("default")),
        translate(&m, &node("default"))
    );
}

#[test]
fn external_hosts_keep_their_names_in_routes() {
    let se = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.7}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  http:
  - match: [{uri: {prefix: /status}}]
    route: [{destination: {host: httpbin.org}}]
"#;
    let r = translate(&mesh(&[se]), &node("default"));
    let rc: RouteConfiguration = decode(&r, ROUTE, "http_proxy");
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "httpbin.org:80")
        .expect("vhost");
    assert!(vh.domains.iter().any(|d| d == "httpbin.org"));
    let Some(route::Action::Route(a)) = &vh.routes[0].action else {
        panic!()
    };
    assert_eq!(
        a.cluster_specifier,
        Some(ClusterSpecifier::Cluster("outbound|80||httpbin.org".into()))
    );
}

#[test]
fn client_conditions_are_decided_for_each_sidecar() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: canary-client}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /admin}}]
    directResponse: {status: 403, body: {string: denied}}
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, redirectCode: 302}
  - match: [{withoutHeaders: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gateway-only, namespace: default}
spec:
  hosts: [ratings]
  gateways: [ingress]
  http:
  - route: [{destination: {host: ratings}}]
"#;
    let routes_for = |labels: &[(&str, &str)]| {
        let mut n = node("default");
        n.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = translate(&mesh(&[BOOKINFO, vs]), &n);
        let rc: RouteConfiguration = decode(&r, ROUTE, "http_proxy");
        rc.virtual_hosts
            .into_iter()
            .find(|v| v.name.starts_with("reviews"))
            .expect("vhost")
            .routes
    };
    assert_eq!(routes_for(&[("app", "canary-client")]).len(), 4);
    let others = routes_for(&[("app", "productpage")]);
    assert_eq!(
        others.len(),
        3,
        "the sourceLabels block is not this sidecar's"
    );
    assert!(
        matches!(others[0].action, Some(route::Action::DirectResponse(ref d)) if d.status == 403)
    );
    assert!(
        matches!(others[1].action, Some(route::Action::Redirect(ref r)) if r.response_code == 1)
    );
    let without = &others[2].r#match.as_ref().expect("match").headers[0];
    assert!(without.invert_match && without.treat_missing_header_as_empty);
}
