//! Sidecar-mode translation: istiod's listener, route and cluster layout from Istio YAML.

use super::super::tests::{decode, mesh};
use super::super::{translate, MeshSnapshot, TranslateOptions};
use crate::model::parse_mesh_config;
use std::path::Path;
use std::sync::Arc;
use xds_protos::any::unpack;
use xds_protos::node::{NodeIdentity, ProxyMode};
use xds_protos::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use xds_protos::pb::envoy::config::cluster::v3::Cluster;
use xds_protos::pb::envoy::config::core::v3::{address, socket_address::PortSpecifier};
use xds_protos::pb::envoy::config::core::v3::{Address, TrafficDirection};
use xds_protos::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use xds_protos::pb::envoy::config::route::v3::{
    route, route_action::ClusterSpecifier, RouteConfiguration,
};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use xds_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy};
use xds_protos::snapshot::Resources;
use xds_protos::type_url::{CLUSTER, HTTP_CONNECTION_MANAGER, LISTENER, ROUTE, TCP_PROXY};

/// reviews (HTTP, a VIP, two workloads), mongo (TCP with a VIP), two TCP services without
/// addresses on 6379, and a service whose port declares no protocol; the pod is 10.77.0.1.
const MESH: &str = include_str!("../../../tests/fixtures/sidecar-mesh.yaml");

fn sidecar(ip: &str, namespace: &str) -> NodeIdentity {
    NodeIdentity {
        id: format!("sidecar~{ip}~pod.{namespace}~{namespace}.svc.cluster.local"),
        namespace: namespace.into(),
        mode: ProxyMode::Sidecar,
        ip: Some(ip.into()),
        ..Default::default()
    }
}

fn with_mesh_config(yaml: &[&str], mesh_config: &str) -> MeshSnapshot {
    let base = mesh(yaml);
    let mc = parse_mesh_config(Path::new("mesh.yaml"), mesh_config)
        .expect("mesh config")
        .config;
    MeshSnapshot::new(
        base.config,
        TranslateOptions {
            mesh_config: Arc::new(mc),
            ..TranslateOptions::default()
        },
    )
}

fn names(r: &Resources, type_url: &str) -> Vec<String> {
    r.of_type(type_url)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn socket(a: &Option<Address>) -> (String, u32) {
    match a.as_ref().and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(sa)) => match sa.port_specifier {
            Some(PortSpecifier::PortValue(p)) => (sa.address.clone(), p),
            _ => panic!("no port in {sa:?}"),
        },
        other => panic!("not a socket address: {other:?}"),
    }
}

fn typed(f: &Filter) -> &xds_protos::pb::google::protobuf::Any {
    match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => any,
        other => panic!("{}: no typed config: {other:?}", f.name),
    }
}

fn tcp_proxy_cluster(chain: &FilterChain) -> String {
    assert_eq!(chain.filters.len(), 1, "{chain:?}");
    assert_eq!(chain.filters[0].name, "envoy.filters.network.tcp_proxy");
    let p: TcpProxy = unpack(TCP_PROXY, typed(&chain.filters[0])).expect("tcp_proxy");
    let Some(tcp_proxy::ClusterSpecifier::Cluster(c)) = p.cluster_specifier else {
        panic!("no cluster: {p:?}")
    };
    assert_eq!(
        p.stat_prefix, c,
        "Istio names a TCP proxy's stats after its cluster"
    );
    c
}

fn hcm(chain: &FilterChain) -> HttpConnectionManager {
    assert_eq!(chain.filters.len(), 1, "{chain:?}");
    assert_eq!(
        chain.filters[0].name,
        "envoy.filters.network.http_connection_manager"
    );
    unpack(HTTP_CONNECTION_MANAGER, typed(&chain.filters[0])).expect("hcm")
}

fn rds_name(h: &HttpConnectionManager) -> &str {
    match &h.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => &rds.route_config_name,
        other => panic!("not RDS: {other:?}"),
    }
}

fn app_protocols(chain: &FilterChain) -> Vec<String> {
    chain
        .filter_chain_match
        .as_ref()
        .map(|m| m.application_protocols.clone())
        .unwrap_or_default()
}

fn prefixes(chain: &FilterChain) -> Vec<String> {
    chain
        .filter_chain_match
        .as_ref()
        .map(|m| {
            m.prefix_ranges
                .iter()
                .map(|r| {
                    let len = r.prefix_len.as_ref().map_or(0, |l| l.value);
                    format!("{}/{len}", r.address_prefix)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn destination_port(chain: &FilterChain) -> Option<u32> {
    chain
        .filter_chain_match
        .as_ref()
        .and_then(|m| m.destination_port.as_ref())
        .map(|p| p.value)
}

fn listener_filter_names(l: &Listener) -> Vec<&str> {
    l.listener_filters.iter().map(|f| f.name.as_str()).collect()
}

#[test]
fn a_sidecar_gets_istios_listeners_by_name() {
    let r = translate(&mesh(&[MESH]), &sidecar("10.77.0.1", "default"));
    assert_eq!(
        names(&r, LISTENER),
        [
            "0.0.0.0_6379",
            "0.0.0.0_8000",
            "0.0.0.0_9080",
            "10.96.0.30_27017",
            "virtualInbound",
            "virtualOutbound",
        ]
    );
    assert_eq!(names(&r, ROUTE), ["8000", "9080"]);
    for name in names(&r, LISTENER) {
        let l: Listener = decode(&r, LISTENER, &name);
        let virtual_listener = name.starts_with("virtual");
        assert_eq!(
            l.bind_to_port.map(|b| b.value),
            (!virtual_listener).then_some(false),
            "{name}: only the capture listeners bind"
        );
    }
}

#[test]
fn virtual_outbound_hands_off_by_original_destination_and_passes_the_rest_through() {
    let r = translate(&mesh(&[MESH]), &sidecar("10.77.0.1", "default"));
    let l: Listener = decode(&r, LISTENER, "virtualOutbound");
    assert_eq!(socket(&l.address), ("0.0.0.0".to_string(), 15001));
    assert_eq!(l.use_original_dst.map(|b| b.value), Some(true));
    assert_eq!(l.traffic_direction, TrafficDirection::Outbound as i32);
    let default = l.default_filter_chain.as_ref().expect("default chain");
    assert_eq!(default.name, "PassthroughFilterChain");
    assert_eq!(tcp_proxy_cluster(default), "PassthroughCluster");
    // A connection to 15001 itself would loop.
    assert_eq!(l.filter_chains.len(), 1);
    assert_eq!(destination_port(&l.filter_chains[0]), Some(15001));
    assert_eq!(tcp_proxy_cluster(&l.filter_chains[0]), "BlackHoleCluster");
}

#[test]
fn registry_only_sends_unknown_destinations_to_the_black_hole() {
    let m = with_mesh_config(&[MESH], "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n");
    let r = translate(&m, &sidecar("10.77.0.1", "default"));
    let l: Listener = decode(&r, LISTENER, "virtualOutbound");
    let default = l.default_filter_chain.as_ref().expect("default chain");
    assert_eq!(tcp_proxy_cluster(default), "BlackHoleCluster");
    let rc: RouteConfiguration = decode(&r, ROUTE, "9080");
    let last = rc.virtual_hosts.last().expect("vhosts");
    assert_eq!(last.name, "block_all");
    assert_eq!(last.domains, ["*"]);
    let Some(route::Action::DirectResponse(d)) = &last.routes[0].action else {
        panic!("{last:?}")
    };
    assert_eq!(d.status, 502);
    assert!(rc.virtual_hosts.iter().all(|v| v.name != "allow_any"));

    let r = translate(&mesh(&[MESH]), &sidecar("10.77.0.1", "default"));
    let rc: RouteConfiguration = decode(&r, ROUTE, "9080");
    let last = rc.virtual_hosts.last().expect("vhosts");
    assert_eq!(last.name, "allow_any");
    assert_eq!(last.domains, ["*"]);
    let Some(route::Action::Route(a)) = &last.routes[0].action else {
        panic!("{last:?}")
    };
    assert_eq!(
        a.cluster_specifier,
        Some(ClusterSpecifier::Cluster("PassthroughCluster".into()))
    );
    assert!(rc.virtual_hosts.iter().all(|v| v.name != "block_all"));
}

#[test]
fn an_http_port_listener_is_the_outbound_connection_manager_on_route_config_port() {
    let r = translate(&mesh(&[MESH]), &sidecar("10.77.0.1", "default"));
    let l: Listener = decode(&r, LISTENER, "0.0.0.0_9080");
    assert_eq!(socket(&l.address), ("0.0.0.0".to_string(), 9080));
    assert_eq!(l.traffic_direction, TrafficDirection::Outbound as i32);
    assert!(
        l.listener_filters.is_empty(),
        "a declared port sniffs nothing"
    );
    assert_eq!(l.filter_chains.len(), 1);
    assert!(l.filter_chains[0].filter_chain_match.is_none());
    let h = hcm(&l.filter_chains[0]);
    assert_eq!(h.stat_prefix, "outbound_0.0.0.0_9080");
    assert_eq!(rds_name(&h), "9080");
    // istiod's sidecar: not the edge, no address internal.
    assert!(!h.use_remote_address.is_some_and(|b| b.value));
    assert!(h.internal_address_config.is_none());
    let filters: Vec<&str> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        filters,
        [
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(h.access_log.len(), 1, "the same access log as local mode");
}

#[test]
fn a_tcp_service_with_a_vip_gets_its_own_listener() {
    let r = translate(&mesh(&[MESH]), &sidecar("10.77.0.1", "default"));
    let l: Listener = decode(&r, LISTENER, "10.96.0.30_27017");
    assert_eq!(socket(&l.address), ("10.96.0.30".to_string(), 27017));
    assert_eq!(l.filter_chains.len(), 1);
    assert!(l.listener_filters.is_empty());
    assert_eq!(
        tcp_proxy_cluster(&l.filter_chains[0]),
        "outbound|27017||mongo.default.svc.cluster.local"
    );
    assert!(r.get(LISTENER, "0.0.0.0_27017").is_none());
}

#[test]
fn tcp_services_sharing_a_port_without_addresses_are_told_apart_by_endpoint_ip() {
    let r = translate(&mesh(&[MESH]), &sidecar("10.77.0.1", "default"));
    let l: Listener = decode(&r, LISTENER, "0.0.0.0_6379");
    let chains: Vec<(Vec<String>, String)> = l
        .filter_chains
        .iter()
        .map(|c| (prefixes(c), tcp_proxy_cluster(c)))
        .collect();
    assert_eq!(
        chains,
        [
            (
                vec!["10.77.0.9/32".to_string()],
                "outbound|6379||b-redis.default.svc.cluster.local".to_string()
            ),
            (
                vec![],
                "outbound|6379||a-redis.default.svc.cluster.local".to_string()
            ),
        ]
    );
}

#[test]
fn an_undeclared_protocol_is_sniffed() {
    let r = translate(&mesh(&[MESH]), &sidecar("10.77.0.1", "default"));
    let l: Listener = decode(&r, LISTENER, "0.0.0.0_8000");
    assert_eq!(
        listener_filter_names(&l),
        ["envoy.filters.listener.http_inspector"]
    );
    assert_eq!(l.filter_chains.len(), 2);
    assert_eq!(app_protocols(&l.filter_chains[0]), ["http/1.1", "h2c"]);
    assert_eq!(rds_name(&hcm(&l.filter_chains[0])), "8000");
    assert!(app_protocols(&l.filter_chains[1]).is_empty());
    assert_eq!(
        tcp_proxy_cluster(&l.filter_chains[1]),
        "outbound|8000||legacy.default.svc.cluster.local"
    );
    let rc: RouteConfiguration = decode(&r, ROUTE, "8000");
    assert_eq!(
        rc.virtual_hosts[0].name,
        "legacy.default.svc.cluster.local:8000"
    );
}

#[test]
fn http_beside_an_unaddressed_tcp_service_sniffs_so_both_work() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: raw, namespace: default}
spec:
  hosts: [raw.default.svc.cluster.local]
  ports: [{number: 9080, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.77.0.50}]
"#;
    let r = translate(&mesh(&[MESH, extra]), &sidecar("10.77.0.1", "default"));
    let l: Listener = decode(&r, LISTENER, "0.0.0.0_9080");
    assert_eq!(
        listener_filter_names(&l),
        ["envoy.filters.listener.http_inspector"]
    );
    assert_eq!(app_protocols(&l.filter_chains[0]), ["http/1.1", "h2c"]);
    assert_eq!(rds_name(&hcm(&l.filter_chains[0])), "9080");
    assert_eq!(
        tcp_proxy_cluster(&l.filter_chains[1]),
        "outbound|9080||raw.default.svc.cluster.local"
    );
}

#[test]
fn route_config_domains_are_istiods_with_and_without_port_and_the_vip() {
    let r = translate(&mesh(&[MESH]), &sidecar("10.77.0.1", "default"));
    let rc: RouteConfiguration = decode(&r, ROUTE, "9080");
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.name, "reviews.default.svc.cluster.local:9080");
    let mut domains = vh.domains.clone();
    domains.sort();
    assert_eq!(
        domains,
        [
            "10.96.0.20",
            "10.96.0.20:9080",
            "reviews",
            "reviews.default",
            "reviews.default.svc",
            "reviews.default.svc.cluster.local",
            "reviews.default.svc.cluster.local:9080",
            "reviews.default.svc:9080",
            "reviews.default:9080",
            "reviews:9080",
        ]
    );
    let elsewhere = translate(&mesh(&[MESH]), &sidecar("10.77.0.1", "prod"));
    let rc: RouteConfiguration = decode(&elsewhere, ROUTE, "9080");
    assert!(
        !rc.virtual_hosts[0].domains.iter().any(|d| d == "reviews"),
        "the bare name is for the service's own namespace"
    );
}

#[test]
fn routes_come_from_the_virtual_service_as_in_local_mode() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, port: {number: 9080}}
      weight: 100
"#;
    let m = mesh(&[MESH, vs]);
    let local = translate(
        &m,
        &NodeIdentity {
            namespace: "default".into(),
            outbound_addr: Some("127.0.0.1:15001".into()),
            ..Default::default()
        },
    );
    let side = translate(&m, &sidecar("10.77.0.1", "default"));
    let lrc: RouteConfiguration = decode(&local, ROUTE, "http_proxy");
    let src: RouteConfiguration = decode(&side, ROUTE, "9080");
    let pick = |rc: &RouteConfiguration| {
        rc.virtual_hosts
            .iter()
            .find(|v| v.name == "reviews.default.svc.cluster.local:9080")
            .expect("reviews vhost")
            .routes
            .clone()
    };
    assert_eq!(pick(&lrc), pick(&src));
}

#[test]
fn inbound_serves_only_the_workloads_own_ports() {
    let r = translate(&mesh(&[MESH]), &sidecar("10.77.0.1", "default"));
    let l: Listener = decode(&r, LISTENER, "virtualInbound");
    assert_eq!(socket(&l.address), ("0.0.0.0".to_string(), 15006));
    assert_eq!(l.traffic_direction, TrafficDirection::Inbound as i32);
    assert_eq!(
        listener_filter_names(&l),
        [
            "envoy.filters.listener.original_dst",
            "envoy.filters.listener.tls_inspector",
            "envoy.filters.listener.http_inspector"
        ]
    );
    // Istio's default protocolDetectionTimeout: no timeout, and a silent client goes on as TCP.
    assert_eq!(l.listener_filters_timeout, Some(Default::default()));
    assert!(l.continue_on_listener_filters_timeout);
    let ports: Vec<(String, Option<u32>, Vec<String>)> = l
        .filter_chains
        .iter()
        .map(|c| (c.name.clone(), destination_port(c), app_protocols(c)))
        .collect();
    let sniffed = vec!["http/1.1".to_string(), "h2c".to_string()];
    assert_eq!(
        ports,
        [
            ("virtualInbound-blackhole".to_string(), Some(15006), vec![]),
            // legacy's endpoint port, sniffed: HTTP, then the rest.
            ("0.0.0.0_8001".to_string(), Some(8001), sniffed),
            ("0.0.0.0_8001".to_string(), Some(8001), vec![]),
            ("0.0.0.0_9080".to_string(), Some(9080), vec![]),
        ]
    );
    assert_eq!(tcp_proxy_cluster(&l.filter_chains[0]), "BlackHoleCluster");
    assert_eq!(tcp_proxy_cluster(&l.filter_chains[2]), "inbound|8001||");
    let h = hcm(&l.filter_chains[3]);
    assert_eq!(h.stat_prefix, "inbound_0.0.0.0_9080");
    // WebSocket passes the serving sidecar too, as istiod allows it inbound.
    let upgrades: Vec<&str> = h
        .upgrade_configs
        .iter()
        .map(|u| u.upgrade_type.as_str())
        .collect();
    assert_eq!(upgrades, ["websocket"]);
    let Some(RouteSpecifier::RouteConfig(rc)) = &h.route_specifier else {
        panic!("inline route config: {h:?}")
    };
    assert_eq!(rc.name, "inbound|9080||");
    assert_eq!(rc.virtual_hosts[0].name, "inbound|http|9080");
    assert_eq!(rc.virtual_hosts[0].domains, ["*"]);
    let Some(route::Action::Route(a)) = &rc.virtual_hosts[0].routes[0].action else {
        panic!("{rc:?}")
    };
    assert_eq!(
        a.cluster_specifier,
        Some(ClusterSpecifier::Cluster("inbound|9080||".into()))
    );
    let default = l.default_filter_chain.as_ref().expect("default chain");
    assert_eq!(default.name, "virtualInbound");
    assert_eq!(tcp_proxy_cluster(default), "InboundPassthroughClusterIpv4");

    // reviews-v2 serves reviews on its own port 19080, and nothing else.
    let r = translate(&mesh(&[MESH]), &sidecar("10.77.0.2", "default"));
    let l: Listener = decode(&r, LISTENER, "virtualInbound");
    let ports: Vec<Option<u32>> = l.filter_chains.iter().map(destination_port).collect();
    assert_eq!(ports, [Some(15006), Some(19080)]);
    // A pod the registry does not know has only the passthrough.
    let r = translate(&mesh(&[MESH]), &sidecar("10.77.0.99", "default"));
    let l: Listener = decode(&r, LISTENER, "virtualInbound");
    assert_eq!(l.filter_chains.len(), 1);
    assert!(l.default_filter_chain.is_some());
}

#[test]
fn a_sidecar_gets_inbound_and_passthrough_clusters_beside_the_shared_ones() {
    let m = mesh(&[MESH]);
    let r = translate(&m, &sidecar("10.77.0.1", "default"));
    let mut own: Vec<String> = names(&r, CLUSTER)
        .into_iter()
        .filter(|n| !n.starts_with("outbound|"))
        .collect();
    own.sort();
    assert_eq!(
        own,
        [
            "BlackHoleCluster",
            "InboundPassthroughClusterIpv4",
            "PassthroughCluster",
            "inbound|8001||",
            "inbound|9080||",
        ]
    );
    let c: Cluster = decode(&r, CLUSTER, "inbound|9080||");
    assert_eq!(
        c.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32))
    );
    let ep = &c.load_assignment.expect("endpoints").endpoints[0].lb_endpoints[0];
    let Some(xds_protos::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(e)) =
        &ep.host_identifier
    else {
        panic!("{ep:?}")
    };
    assert_eq!(socket(&e.address), ("127.0.0.1".to_string(), 9080));

    let c: Cluster = decode(&r, CLUSTER, "PassthroughCluster");
    assert_eq!(
        c.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32
        ))
    );
    assert_eq!(c.lb_policy, LbPolicy::ClusterProvided as i32);
    assert!(c.connect_timeout.is_some());
    let c: Cluster = decode(&r, CLUSTER, "InboundPassthroughClusterIpv4");
    let bind = c.upstream_bind_config.expect("bind config");
    assert_eq!(bind.source_address.expect("source").address, "127.0.0.6");
    let c: Cluster = decode(&r, CLUSTER, "BlackHoleCluster");
    assert!(c.load_assignment.is_none());

    // Local mode is as it was: none of these.
    let local = translate(
        &m,
        &NodeIdentity {
            outbound_addr: Some("127.0.0.1:15001".into()),
            ..Default::default()
        },
    );
    assert!(names(&local, CLUSTER)
        .iter()
        .all(|n| n.starts_with("outbound|")));
    assert_eq!(names(&local, LISTENER), ["virtualOutbound"]);
    assert_eq!(names(&local, ROUTE), ["http_proxy"]);
}

#[test]
fn vips_cidr_blocks_and_shared_addresses_each_get_one_destination() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  addresses: [10.96.0.40]
  ports: [{number: 5432, name: pg}]
  resolution: STATIC
  endpoints: [{address: 10.77.0.40}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db2, namespace: default}
spec:
  hosts: [db2.default.svc.cluster.local]
  addresses: [10.96.0.40, 10.10.0.0/16]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.77.0.41}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: c-redis, namespace: default}
spec:
  hosts: [c-redis.default.svc.cluster.local]
  ports: [{number: 6379, name: redis, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.77.0.8}, {address: 10.77.0.10}]
"#;
    let r = translate(&mesh(&[MESH, extra]), &sidecar("10.77.0.1", "default"));
    // An undeclared protocol on a VIP sniffs there; the second claim of the VIP loses.
    let l: Listener = decode(&r, LISTENER, "10.96.0.40_5432");
    assert_eq!(
        listener_filter_names(&l),
        ["envoy.filters.listener.http_inspector"]
    );
    assert_eq!(rds_name(&hcm(&l.filter_chains[0])), "5432");
    assert_eq!(
        hcm(&l.filter_chains[0]).stat_prefix,
        "outbound_10.96.0.40_5432"
    );
    assert_eq!(
        tcp_proxy_cluster(&l.filter_chains[1]),
        "outbound|5432||db.default.svc.cluster.local"
    );
    // The CIDR block is a chain on the wildcard listener.
    let l: Listener = decode(&r, LISTENER, "0.0.0.0_5432");
    assert_eq!(l.filter_chains.len(), 1);
    assert_eq!(prefixes(&l.filter_chains[0]), ["10.10.0.0/16"]);
    assert_eq!(
        tcp_proxy_cluster(&l.filter_chains[0]),
        "outbound|5432||db2.default.svc.cluster.local"
    );
    // c-redis shares 10.77.0.8 with a-redis, which keeps it.
    let l: Listener = decode(&r, LISTENER, "0.0.0.0_6379");
    let chains: Vec<(Vec<String>, String)> = l
        .filter_chains
        .iter()
        .map(|c| (prefixes(c), tcp_proxy_cluster(c)))
        .collect();
    assert_eq!(
        chains,
        [
            (
                vec!["10.77.0.9/32".to_string()],
                "outbound|6379||b-redis.default.svc.cluster.local".to_string()
            ),
            (
                vec!["10.77.0.10/32".to_string()],
                "outbound|6379||c-redis.default.svc.cluster.local".to_string()
            ),
            (
                vec![],
                "outbound|6379||a-redis.default.svc.cluster.local".to_string()
            ),
        ]
    );
}

#[test]
fn inbound_reports_server_spans_with_the_entries_covering_server() {
    let mesh_config = "
extensionProviders:
- name: otel
  opentelemetry: {service: 127.0.0.1, port: 4317}
defaultProviders: {tracing: [otel]}
defaultConfig: {tracing: {sampling: 5}}
";
    let server_only = "
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: server, namespace: default}
spec:
  tracing:
  - match: {mode: SERVER}
    randomSamplingPercentage: 100
";
    let sampling = |r: &Resources, listener: &str, chain: usize| {
        let l: Listener = decode(r, LISTENER, listener);
        hcm(&l.filter_chains[chain])
            .tracing
            .and_then(|t| t.random_sampling)
            .map(|p| p.value)
    };
    let m = with_mesh_config(&[MESH, server_only], mesh_config);
    let n = sidecar("10.77.0.1", "default");
    let r = translate(&m, &n);
    assert_eq!(m.generate_shared(&n), r);
    // virtualInbound's chain 3 is reviews' port 9080 (see inbound_serves_only_...).
    assert_eq!(sampling(&r, "virtualInbound", 3), Some(100.0));
    assert_eq!(sampling(&r, "0.0.0.0_9080", 0), Some(5.0), "client side");
    // Without a provider, nothing traces.
    let r = translate(&mesh(&[MESH, server_only]), &n);
    assert_eq!(sampling(&r, "virtualInbound", 3), None);
}
