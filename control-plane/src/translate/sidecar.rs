//! Sidecar mode: the listener layout istiod emits for a proxy whose pod's traffic iptables
//! redirects to it (node metadata `INTERCEPTION_MODE: REDIRECT`).
//!
//! - `virtualOutbound` (0.0.0.0:15001, `use_original_dst`) receives every redirected outbound
//!   connection and hands it to the listener for its original destination: `0.0.0.0_PORT` for
//!   HTTP service ports, `VIP_PORT` for TCP services with virtual IPs (see [`outbound`]). Those
//!   listeners have `bind_to_port: false`: they exist to be handed connections, not to bind.
//!   What no listener claims goes to `PassthroughCluster` (as addressed), or to
//!   `BlackHoleCluster` under `outboundTrafficPolicy: REGISTRY_ONLY`.
//! - `virtualInbound` (0.0.0.0:15006) serves the workload's own ports, one filter chain per
//!   port matched on the destination port, to `inbound|PORT||` on localhost (see [`inbound`]).
//! - Route configurations are named by port (`9080`), one virtual host per service with an
//!   HTTP port of that number (see [`routes`]).
//!
//! The outbound half depends on the mesh only (and on tracing's view of the proxy), so every
//! sidecar of one class shares it; the inbound half depends on which of the registry's
//! endpoints the pod is, which [`inbound::inbound_ports`] reduces to a list of ports.

pub mod inbound;
pub mod outbound;
pub mod passthrough;
pub mod routes;
#[cfg(test)]
mod tests;

use super::names::{PortProtocol, TCP_PROXY_FILTER};
use super::MeshSnapshot;
use xds_protos::any::pack;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::accesslog::v3::AccessLog;
use xds_protos::pb::envoy::config::cluster::v3::Cluster;
use xds_protos::pb::envoy::config::core::v3::CidrRange;
use xds_protos::pb::envoy::config::listener::v3::{
    filter, listener_filter, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use xds_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::ClusterSpecifier, TcpProxy,
};
use xds_protos::pb::google::protobuf::{Any, UInt32Value};
use xds_protos::type_url::TCP_PROXY;

/// Every listener of a sidecar: the outbound ones, of the hosts its scope `view` reaches, and
/// `virtualInbound`, of the pod's own ports in the whole `mesh`.
pub fn listeners(view: &MeshSnapshot, mesh: &MeshSnapshot, node: &NodeIdentity) -> Vec<Listener> {
    let mut out = outbound::listeners(view, node);
    out.push(inbound::listener(
        mesh,
        node,
        &inbound::inbound_ports(mesh, &node.instance_ip()),
    ));
    out
}

/// The clusters a sidecar has beside the shared `outbound|…` ones: the passthrough and
/// black-hole clusters and one `inbound|PORT||` per port of the workload.
pub fn clusters(mesh: &MeshSnapshot, node: &NodeIdentity) -> Vec<Cluster> {
    let mut out = passthrough::clusters();
    out.extend(inbound::clusters(&inbound::inbound_ports(
        mesh,
        &node.instance_ip(),
    )));
    out
}

/// The network filter that relays a connection's bytes to `cluster`, writing a line per
/// connection to `access_log` (the same loggers as the side's connection managers, as istiod
/// configures them); Istio names the stats of a TCP proxy after its cluster.
fn tcp_proxy_filter(cluster: &str, access_log: Vec<AccessLog>) -> Filter {
    let proxy = TcpProxy {
        stat_prefix: cluster.to_string(),
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_string())),
        access_log,
        ..Default::default()
    };
    Filter {
        name: TCP_PROXY_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack(TCP_PROXY, &proxy))),
    }
}

fn listener_filter(name: &str, config: Any) -> ListenerFilter {
    ListenerFilter {
        name: name.to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

/// What the HTTP inspector reports for plain-text HTTP/1.1 and HTTP/2 prior knowledge: the
/// application protocols a sniffing chain matches, as istiod writes them.
const SNIFFED_HTTP_PROTOCOLS: [&str; 2] = ["http/1.1", "h2c"];

/// The chains for traffic to one destination (`matched` narrows it, e.g. by destination
/// port or address): with sniffing, HTTP goes to `http_filter` and the rest to `tcp_filter`;
/// without, one chain. Envoy prefers a chain that matches the application protocol over one
/// that does not look at it, so the two never compete.
fn chains_for(
    protocol: PortProtocol,
    name: &str,
    matched: FilterChainMatch,
    http_filter: impl FnOnce() -> Filter,
    tcp_filter: impl FnOnce() -> Filter,
) -> Vec<FilterChain> {
    let chain = |filter_chain_match: FilterChainMatch, filter| FilterChain {
        name: name.to_string(),
        filter_chain_match: Some(filter_chain_match).filter(|m| *m != FilterChainMatch::default()),
        filters: vec![filter],
        ..Default::default()
    };
    match protocol {
        PortProtocol::Http => vec![chain(matched, http_filter())],
        PortProtocol::Tcp => vec![chain(matched, tcp_filter())],
        PortProtocol::Sniffed => {
            let http = FilterChainMatch {
                application_protocols: SNIFFED_HTTP_PROTOCOLS.map(String::from).to_vec(),
                ..matched.clone()
            };
            vec![chain(http, http_filter()), chain(matched, tcp_filter())]
        }
    }
}

/// An IP address or CIDR block as a prefix range; `None` for anything else (a host name).
fn cidr_range(address: &str) -> Option<CidrRange> {
    let (ip, len) = match address.split_once('/') {
        Some((ip, len)) => (ip, Some(len.parse::<u32>().ok()?)),
        None => (address, None),
    };
    let ip: std::net::IpAddr = ip.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then(|| CidrRange {
        address_prefix: ip.to_string(),
        prefix_len: Some(UInt32Value { value: len }),
    })
}

fn uint32(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}
