//! The outbound side of a sidecar: `virtualOutbound` and one listener per service port, which
//! `virtualOutbound` hands each connection to by its original destination.
//!
//! Where a service port's listener is:
//! - HTTP ports (HTTP, HTTP2, GRPC, GRPC-WEB) all share `0.0.0.0_PORT`, whose connection
//!   manager routes by the `Host` header with route configuration `PORT`;
//! - a TCP or undeclared port of a service with virtual IPs gets `VIP_PORT` per IP (a CIDR
//!   block instead gets a chain on `0.0.0.0_PORT` matched on it); an undeclared port sniffs:
//!   HTTP/1.1 and h2c to the connection manager, the rest to the service's TCP proxy;
//! - a TCP or undeclared port of a service without addresses goes to `0.0.0.0_PORT`. Only one
//!   such service can have the port's unmatched traffic: the first by host name. Each later
//!   one gets a chain matched on its endpoints' IPs (Istio gives a headless service's
//!   endpoints their own listeners for the same reason); one without IP endpoints cannot be
//!   told apart and is reported as a conflict, not silently dropped.
//!
//! On `0.0.0.0_PORT`, HTTP services beside a TCP one make the unmatched chain sniff too, so
//! both keep working. An address claimed twice (two services on one VIP and port, or sharing
//! an endpoint IP) stays with the first service and the conflict is logged.

use super::super::access_log::access_log;
use super::super::endpoints::socket_address;
use super::super::listeners::{hcm_filter, outbound_hcm};
use super::super::names::{
    listener_name, outbound_cluster, PortProtocol, BLACK_HOLE_CLUSTER, HTTP_INSPECTOR_FILTER,
    INBOUND_CAPTURE_PORT, OUTBOUND_CAPTURE_PORT, PASSTHROUGH_CLUSTER, PASSTHROUGH_FILTER_CHAIN,
    VIRTUAL_OUTBOUND,
};
use super::super::tracing::Side;
use super::super::MeshSnapshot;
use super::{chains_for, cidr_range, listener_filter, tcp_proxy_filter, uint32};
use crate::model::OutboundTrafficPolicy;
use crate::registry::Service;
use std::collections::{BTreeMap, HashSet};
use xds_protos::any::pack;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::core::v3::{CidrRange, TrafficDirection};
use xds_protos::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use xds_protos::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use xds_protos::pb::google::protobuf::BoolValue;
use xds_protos::type_url::HTTP_INSPECTOR;

/// The chain for connections addressed to 15001 itself, which would otherwise loop.
const VIRTUAL_OUTBOUND_BLACKHOLE_CHAIN: &str = "virtualOutbound-blackhole";

pub fn listeners(mesh: &MeshSnapshot, node: &NodeIdentity) -> Vec<Listener> {
    for svc in &mesh.registry.services {
        for sp in svc.ports.iter().filter(|sp| is_capture_port(sp.number)) {
            ::tracing::warn!(
                service = %svc.hostname,
                port = sp.number,
                "service port is a sidecar capture port: sidecars get no listener for it"
            );
        }
    }
    let mut out = vec![virtual_outbound(mesh, node)];
    for (port, services) in services_by_port(mesh) {
        out.extend(port_listeners(mesh, node, port, &services));
    }
    out
}

/// Where unclaimed outbound traffic goes under the mesh's `outboundTrafficPolicy`.
pub fn unclaimed_cluster(mesh: &MeshSnapshot) -> &'static str {
    match mesh.options.mesh_config.outbound_traffic_policy {
        OutboundTrafficPolicy::AllowAny => PASSTHROUGH_CLUSTER,
        OutboundTrafficPolicy::RegistryOnly => BLACK_HOLE_CLUSTER,
    }
}

fn virtual_outbound(mesh: &MeshSnapshot, node: &NodeIdentity) -> Listener {
    let log = || access_log(mesh, node, Side::Client);
    Listener {
        name: VIRTUAL_OUTBOUND.to_string(),
        address: Some(socket_address("0.0.0.0", OUTBOUND_CAPTURE_PORT)),
        use_original_dst: Some(BoolValue { value: true }),
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: vec![FilterChain {
            name: VIRTUAL_OUTBOUND_BLACKHOLE_CHAIN.to_string(),
            filter_chain_match: Some(FilterChainMatch {
                destination_port: uint32(OUTBOUND_CAPTURE_PORT),
                ..Default::default()
            }),
            filters: vec![tcp_proxy_filter(BLACK_HOLE_CLUSTER, log())],
            ..Default::default()
        }],
        default_filter_chain: Some(FilterChain {
            name: PASSTHROUGH_FILTER_CHAIN.to_string(),
            filters: vec![tcp_proxy_filter(unclaimed_cluster(mesh), log())],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Every service port by number, services in host-name order (the registry's), leaving out
/// the capture ports: a listener there would share `virtualOutbound`'s or `virtualInbound`'s
/// address.
pub(super) fn services_by_port(
    mesh: &MeshSnapshot,
) -> BTreeMap<u32, Vec<(&Service, PortProtocol)>> {
    let mut by_port: BTreeMap<u32, Vec<(&Service, PortProtocol)>> = BTreeMap::new();
    for svc in &mesh.registry.services {
        for sp in svc.ports.iter().filter(|sp| !is_capture_port(sp.number)) {
            by_port
                .entry(sp.number)
                .or_default()
                .push((svc, PortProtocol::of(sp.protocol.as_deref())));
        }
    }
    by_port
}

fn is_capture_port(port: u32) -> bool {
    port == OUTBOUND_CAPTURE_PORT || port == INBOUND_CAPTURE_PORT
}

/// A non-HTTP destination of a listener: a service, and the destination addresses that pick
/// it (none: the listener's unmatched traffic).
struct TcpTarget<'a> {
    svc: &'a Service,
    protocol: PortProtocol,
    prefixes: Vec<CidrRange>,
}

fn port_listeners(
    mesh: &MeshSnapshot,
    node: &NodeIdentity,
    port: u32,
    services: &[(&Service, PortProtocol)],
) -> Vec<Listener> {
    let mut claimed = Claimed::default();
    let mut http = false;
    let mut vips: Vec<(String, TcpTarget)> = Vec::new();
    let mut wildcard_matched: Vec<TcpTarget> = Vec::new();
    let mut unaddressed: Vec<(&Service, PortProtocol)> = Vec::new();
    for &(svc, protocol) in services {
        if protocol == PortProtocol::Http {
            http = true;
            continue;
        }
        let ranges: Vec<CidrRange> = svc.addresses.iter().filter_map(|a| cidr_range(a)).collect();
        if ranges.is_empty() {
            unaddressed.push((svc, protocol));
            continue;
        }
        let mut blocks = Vec::new();
        for r in ranges {
            if !claimed.claim(&r, svc, port) {
                continue;
            }
            if is_single_address(&r) {
                let target = TcpTarget {
                    svc,
                    protocol,
                    prefixes: Vec::new(),
                };
                vips.push((r.address_prefix, target));
            } else {
                blocks.push(r);
            }
        }
        if !blocks.is_empty() {
            wildcard_matched.push(TcpTarget {
                svc,
                protocol,
                prefixes: blocks,
            });
        }
    }
    let mut unmatched = None;
    for (svc, protocol) in unaddressed {
        if unmatched.is_none() {
            // Its endpoints stay its own: a later service listing the same IP cannot take them.
            for r in svc
                .endpoints
                .iter()
                .filter_map(|ep| cidr_range(&ep.address))
            {
                claimed.claim(&r, svc, port);
            }
            unmatched = Some(TcpTarget {
                svc,
                protocol,
                prefixes: Vec::new(),
            });
            continue;
        }
        let prefixes: Vec<CidrRange> = svc
            .endpoints
            .iter()
            .filter_map(|ep| cidr_range(&ep.address))
            .filter(|r| is_single_address(r) && claimed.claim(r, svc, port))
            .collect();
        if prefixes.is_empty() {
            let first = unmatched.as_ref().map_or("", |t| t.svc.hostname.as_str());
            ::tracing::warn!(
                service = %svc.hostname,
                port,
                kept = %first,
                "TCP services without addresses share a port and this one has no endpoint \
                 IPs to tell it apart: sidecars send the port's traffic to the first service"
            );
            continue;
        }
        wildcard_matched.push(TcpTarget {
            svc,
            protocol,
            prefixes,
        });
    }

    let mut out = Vec::new();
    for (vip, target) in vips {
        let chains = target_chains(mesh, node, port, &vip, &target, false);
        out.push(port_listener(&vip, port, chains));
    }
    let mut chains = Vec::new();
    for target in &wildcard_matched {
        chains.extend(target_chains(mesh, node, port, "0.0.0.0", target, false));
    }
    match &unmatched {
        Some(target) => chains.extend(target_chains(mesh, node, port, "0.0.0.0", target, http)),
        None if http => chains.push(FilterChain {
            filters: vec![http_filter(mesh, node, port, "0.0.0.0")],
            ..Default::default()
        }),
        None => {}
    }
    if !chains.is_empty() {
        out.push(port_listener("0.0.0.0", port, chains));
    }
    out
}

/// The chains of one TCP target; `http_beside` when HTTP services share its unmatched
/// traffic, so that it sniffs even if its own port is declared TCP.
fn target_chains(
    mesh: &MeshSnapshot,
    node: &NodeIdentity,
    port: u32,
    address: &str,
    target: &TcpTarget,
    http_beside: bool,
) -> Vec<FilterChain> {
    let protocol = if http_beside {
        PortProtocol::Sniffed
    } else {
        target.protocol
    };
    let cluster = outbound_cluster(port, "", &target.svc.hostname);
    chains_for(
        protocol,
        "",
        FilterChainMatch {
            prefix_ranges: target.prefixes.clone(),
            ..Default::default()
        },
        || http_filter(mesh, node, port, address),
        || tcp_proxy_filter(&cluster, access_log(mesh, node, Side::Client)),
    )
}

fn http_filter(
    mesh: &MeshSnapshot,
    node: &NodeIdentity,
    port: u32,
    address: &str,
) -> xds_protos::pb::envoy::config::listener::v3::Filter {
    let stat_prefix = format!("outbound_{}", listener_name(address, port));
    hcm_filter(&outbound_hcm(mesh, node, stat_prefix, &port.to_string()))
}

/// A listener `virtualOutbound` hands connections to; it binds nothing itself.
fn port_listener(address: &str, port: u32, filter_chains: Vec<FilterChain>) -> Listener {
    let sniffs = filter_chains.iter().any(|c| {
        c.filter_chain_match
            .as_ref()
            .is_some_and(|m| !m.application_protocols.is_empty())
    });
    Listener {
        name: listener_name(address, port),
        address: Some(socket_address(address, port)),
        bind_to_port: Some(BoolValue { value: false }),
        traffic_direction: TrafficDirection::Outbound as i32,
        listener_filters: if sniffs {
            vec![listener_filter(
                HTTP_INSPECTOR_FILTER,
                pack(HTTP_INSPECTOR, &HttpInspector {}),
            )]
        } else {
            Vec::new()
        },
        // As on virtualInbound: Istio's default protocolDetectionTimeout of 0s.
        listener_filters_timeout: sniffs.then(Default::default),
        continue_on_listener_filters_timeout: sniffs,
        filter_chains,
        ..Default::default()
    }
}

fn is_single_address(r: &CidrRange) -> bool {
    let max = if r.address_prefix.contains(':') {
        128
    } else {
        32
    };
    r.prefix_len.as_ref().is_some_and(|l| l.value == max)
}

/// The destination addresses of one port already given to a service, so that no two chains or
/// listeners match the same one (Envoy rejects a listener whose chains overlap exactly).
#[derive(Default)]
struct Claimed<'a> {
    by: BTreeMap<(String, u32), &'a str>,
    warned: HashSet<String>,
}

impl<'a> Claimed<'a> {
    fn claim(&mut self, r: &CidrRange, svc: &'a Service, port: u32) -> bool {
        let len = r.prefix_len.as_ref().map_or(0, |l| l.value);
        let key = (r.address_prefix.clone(), len);
        match self.by.get(&key) {
            None => {
                self.by.insert(key, &svc.hostname);
                true
            }
            Some(first) => {
                if self.warned.insert(format!("{}/{len}", r.address_prefix)) {
                    ::tracing::warn!(
                        service = %svc.hostname,
                        port,
                        address = %format!("{}/{len}", r.address_prefix),
                        kept = %first,
                        "two services claim one address and port: sidecars send it to the first"
                    );
                }
                false
            }
        }
    }
}
