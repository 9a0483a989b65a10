//! `proxy-config listeners`: one row per filter chain, as istioctl's listener table has it
//! (ADDRESSES, PORT, MATCH, DESTINATION), read from either proxy's dump.
//!
//! A sidecar's listeners only make sense chain by chain: `virtualInbound` on 15006 is one
//! listener whose chains each take one destination port, and `virtualOutbound`'s default
//! chain is where unclaimed traffic goes. So a listener gives one row per chain in its
//! `filter_chains` order, then its `default_filter_chain`; listeners are ordered by port,
//! then address, as istioctl orders them.
//!
//! Both dumps spell a chain's `filter_chain_match` in Envoy's field names; they differ in
//! small ways (Envoy nests CIDR ranges as `{address_prefix, prefix_len}`, weft-proxy writes
//! `addr/len`), which [`chain_match`] reads alike. The terminal filter differs more: Envoy
//! gives the typed `HttpConnectionManager` / `TcpProxy`, weft-proxy the compiled summary
//! (`http_connection_manager.route_config_name`, `tcp_proxy.clusters`).

use super::fields::{array, path_shorthand, str_of};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Serialize, PartialEq)]
pub struct ListenerRow {
    /// The listener's name (`virtualInbound`, `0.0.0.0_9080`, `http_proxy`).
    pub name: String,
    pub address: String,
    pub port: String,
    /// The RDS route config this chain's HTTP connection manager uses, if any.
    pub route_config: Option<String>,
    /// The chain's name; empty where the config leaves it unnamed.
    pub chain: String,
    /// The listener's `default_filter_chain`: it takes what no chain matches.
    pub default_chain: bool,
    pub filter_chain_match: ChainMatch,
    /// The MATCH cell: what `filter_chain_match` selects, in istioctl's words.
    #[serde(rename = "match")]
    pub match_text: String,
    /// The DESTINATION cell: where the chain sends what it takes, in istioctl's words.
    pub destination: String,
    pub target: ChainTarget,
}

/// A chain's `filter_chain_match`, with only what it sets.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ChainMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u64>,
    /// `addr/len` each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefix_ranges: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_protocol: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub application_protocols: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_prefix_ranges: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub direct_source_prefix_ranges: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ports: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
}

/// What a chain's terminal filter does.
#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainTarget {
    /// An HTTP connection manager whose route table arrives over RDS under this name.
    Rds { route_config: String },
    /// An HTTP connection manager with its route table inline.
    InlineRoutes,
    /// An HTTP connection manager that names no route table.
    Http,
    /// A TCP proxy to one cluster, or several by weight.
    TcpProxy { clusters: Vec<TcpCluster> },
    /// Neither: the chain's network filters by name.
    Other { filters: Vec<String> },
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TcpCluster {
    pub name: String,
    /// Set for weighted clusters where the dump tells the weight (weft-proxy's does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
}

/// The rows of one listener from Envoy's `ListenersConfigDump`.
pub fn envoy_rows(listener: &Value) -> Vec<ListenerRow> {
    let socket = &listener["address"]["socket_address"];
    // Envoy 1.26+ can bind one listener to more addresses; istioctl lists them all.
    let mut addresses = vec![str_of(socket, &["address"])];
    addresses.extend(
        array(listener, "additional_addresses")
            .map(|a| str_of(a, &["address", "socket_address", "address"]))
            .filter(|a| !a.is_empty()),
    );
    let head = Head {
        name: str_of(listener, &["name"]),
        address: addresses.join(","),
        port: str_of(socket, &["port_value"]),
    };
    chains_of(listener)
        .map(|(chain, is_default)| {
            let (target, destination) = envoy_target(chain);
            head.row(chain, is_default, target, destination)
        })
        .collect()
}

/// The rows of one listener from weft-proxy's dump.
pub fn weft_rows(listener: &Value) -> Vec<ListenerRow> {
    let addr = str_of(listener, &["address"]);
    let (address, port) = match addr.rsplit_once(':') {
        Some((a, p)) => (a.trim_matches(['[', ']']).to_string(), p.to_string()),
        None => (addr, String::new()),
    };
    let head = Head {
        name: str_of(listener, &["name"]),
        address,
        port,
    };
    let rows: Vec<ListenerRow> = chains_of(listener)
        .map(|(chain, is_default)| {
            let (target, destination) = weft_target(chain);
            head.row(chain, is_default, target, destination)
        })
        .collect();
    if !rows.is_empty() {
        return rows;
    }
    // A weft-proxy from before per-chain dumps: only the listener's first RDS name is known,
    // so the row says that and claims no match.
    let route = listener
        .get("route_config_name")
        .and_then(Value::as_str)
        .map(String::from);
    vec![ListenerRow {
        name: head.name,
        address: head.address,
        port: head.port,
        destination: route
            .as_deref()
            .map_or_else(|| "-".into(), |r| format!("Route: {r}")),
        target: match &route {
            Some(r) => ChainTarget::Rds {
                route_config: r.clone(),
            },
            None => ChainTarget::Other {
                filters: Vec::new(),
            },
        },
        route_config: route,
        chain: String::new(),
        default_chain: false,
        filter_chain_match: ChainMatch::default(),
        match_text: "-".into(),
    }]
}

/// Rows in istioctl's order: by port (as a number), then address; a listener's chains stay
/// in their order, default last.
pub fn sort(rows: &mut [ListenerRow]) {
    rows.sort_by(|a, b| {
        let port = |r: &ListenerRow| r.port.parse::<u32>().unwrap_or(u32::MAX);
        port(a)
            .cmp(&port(b))
            .then_with(|| a.address.cmp(&b.address))
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// The listeners table.
pub fn table(rows: &[ListenerRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.address.clone(),
                r.port.clone(),
                r.match_text.clone(),
                r.destination.clone(),
            ]
        })
        .collect();
    crate::table::render(&["ADDRESSES", "PORT", "MATCH", "DESTINATION"], &cells)
}

/// What every row of one listener shares.
struct Head {
    name: String,
    address: String,
    port: String,
}

impl Head {
    fn row(
        &self,
        chain: &Value,
        is_default: bool,
        target: ChainTarget,
        destination: String,
    ) -> ListenerRow {
        let m = chain_match(&chain["filter_chain_match"]);
        ListenerRow {
            name: self.name.clone(),
            address: self.address.clone(),
            port: self.port.clone(),
            route_config: match &target {
                ChainTarget::Rds { route_config } => Some(route_config.clone()),
                _ => None,
            },
            chain: str_of(chain, &["name"]),
            default_chain: is_default,
            match_text: match_text(&m),
            filter_chain_match: m,
            destination,
            target,
        }
    }
}

/// A listener's chains, then its default chain (flagged), in both dumps' field names.
fn chains_of(listener: &Value) -> impl Iterator<Item = (&Value, bool)> {
    let default = listener
        .get("default_filter_chain")
        .filter(|c| c.is_object());
    array(listener, "filter_chains")
        .map(|c| (c, false))
        .chain(default.map(|c| (c, true)))
}

// --- the match ------------------------------------------------------------------------------

/// Reads a `filter_chain_match` from either dump: a port as a number or a `{value}` wrapper,
/// CIDR ranges as `addr/len` strings or `{address_prefix, prefix_len}` objects.
pub fn chain_match(m: &Value) -> ChainMatch {
    let strings = |key: &str| -> Vec<String> {
        array(m, key)
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let ranges = |key: &str| -> Vec<String> {
        array(m, key)
            .map(|r| match r.as_str() {
                Some(text) => text.to_string(),
                // proto3 JSON leaves out a zero prefix_len.
                None => format!(
                    "{}/{}",
                    str_of(r, &["address_prefix"]),
                    number(&r["prefix_len"]).unwrap_or(0)
                ),
            })
            .collect()
    };
    let text = |key: &str| m.get(key).and_then(Value::as_str).map(String::from);
    ChainMatch {
        destination_port: number(&m["destination_port"]),
        prefix_ranges: ranges("prefix_ranges"),
        server_names: strings("server_names"),
        transport_protocol: text("transport_protocol").filter(|t| !t.is_empty()),
        application_protocols: strings("application_protocols"),
        source_prefix_ranges: ranges("source_prefix_ranges"),
        direct_source_prefix_ranges: ranges("direct_source_prefix_ranges"),
        source_ports: array(m, "source_ports").filter_map(number).collect(),
        // ANY is the default; Envoy may still print it.
        source_type: text("source_type").filter(|t| t != "ANY" && !t.is_empty()),
    }
}

/// A number, a number in a string (proto3 JSON writes 64-bit ones so), or a `{value}` wrapper.
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        Value::Object(o) => o.get("value").and_then(number),
        _ => None,
    }
}

/// istioctl's names for the ALPN lists Istio's chains match on; any other list is spelled out.
const NAMED_ALPN_SETS: [(&str, &[&str]); 4] = [
    ("HTTP", &["http/1.0", "http/1.1", "h2c"]),
    (
        "HTTP TLS",
        &[
            "http/1.0",
            "http/1.1",
            "h2c",
            "istio-http/1.0",
            "istio-http/1.1",
            "istio-h2",
        ],
    ),
    (
        "Istio HTTP Plain",
        &["istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"],
    ),
    ("TCP TLS", &["istio-peer-exchange", "istio"]),
];

/// The MATCH cell: `SNI: …; Trans: …; App: …; Addr: …` with what the match sets, `ALL` when
/// it sets nothing. Source conditions, which istioctl leaves out, follow as `Src: …` so two
/// chains that differ only there do not print the same.
pub fn match_text(m: &ChainMatch) -> String {
    let mut parts = Vec::new();
    if !m.server_names.is_empty() {
        parts.push(format!("SNI: {}", m.server_names.join(",")));
    }
    if let Some(t) = &m.transport_protocol {
        parts.push(format!("Trans: {t}"));
    }
    if !m.application_protocols.is_empty() {
        let named = NAMED_ALPN_SETS
            .iter()
            .find(|(_, set)| *set == m.application_protocols.as_slice());
        parts.push(match named {
            Some((name, _)) => format!("App: {name}"),
            None => format!("App: {}", m.application_protocols.join(",")),
        });
    }
    let port = m.destination_port.map(|p| format!(":{p}"));
    match (m.prefix_ranges.as_slice(), &port) {
        ([], None) => {}
        ([], Some(port)) => parts.push(format!("Addr: *{port}")),
        (ranges, port) => parts.push(format!(
            "Addr: {}{}",
            ranges.join(","),
            port.as_deref().unwrap_or_default()
        )),
    }
    let mut sources = m.source_prefix_ranges.clone();
    sources.extend(m.direct_source_prefix_ranges.iter().cloned());
    let source_ports = m
        .source_ports
        .iter()
        .map(|p| format!(":{p}"))
        .collect::<Vec<_>>()
        .join(",");
    if !sources.is_empty() || !source_ports.is_empty() {
        parts.push(format!("Src: {}{source_ports}", sources.join(",")));
    }
    if let Some(t) = &m.source_type {
        parts.push(format!("SrcType: {t}"));
    }
    if parts.is_empty() {
        "ALL".into()
    } else {
        parts.join("; ")
    }
}

// --- the destination ------------------------------------------------------------------------

/// Envoy's terminal filter, by its typed config's `@type` (or the filter's well-known name).
fn envoy_target(chain: &Value) -> (ChainTarget, String) {
    let is = |f: &Value, type_suffix: &str, name: &str| {
        str_of(f, &["typed_config", "@type"]).ends_with(type_suffix) || str_of(f, &["name"]) == name
    };
    for f in array(chain, "filters") {
        let config = &f["typed_config"];
        if is(
            f,
            ".HttpConnectionManager",
            "envoy.filters.network.http_connection_manager",
        ) {
            let rds = str_of(config, &["rds", "route_config_name"]);
            return if !rds.is_empty() {
                (
                    ChainTarget::Rds {
                        route_config: rds.clone(),
                    },
                    format!("Route: {rds}"),
                )
            } else if config["route_config"].is_object() {
                let text = inline_routes_text(&config["route_config"]);
                (ChainTarget::InlineRoutes, text)
            } else {
                (ChainTarget::Http, "HTTP".into())
            };
        }
        if is(f, ".TcpProxy", "envoy.filters.network.tcp_proxy") {
            let clusters = match config.get("cluster").and_then(Value::as_str) {
                Some(one) => vec![TcpCluster {
                    name: one.to_string(),
                    weight: None,
                }],
                None => array(&config["weighted_clusters"], "clusters")
                    .map(|c| TcpCluster {
                        name: str_of(c, &["name"]),
                        weight: number(&c["weight"]),
                    })
                    .collect(),
            };
            let text = tcp_text(&clusters);
            return (ChainTarget::TcpProxy { clusters }, text);
        }
    }
    other(chain)
}

/// weft-proxy's compiled chain: a connection manager (RDS, else inline) or a TCP proxy.
fn weft_target(chain: &Value) -> (ChainTarget, String) {
    if let Some(hcm) = chain.get("http_connection_manager") {
        return match hcm.get("route_config_name").and_then(Value::as_str) {
            Some(rds) => (
                ChainTarget::Rds {
                    route_config: rds.to_string(),
                },
                format!("Route: {rds}"),
            ),
            // weft-proxy's dump does not carry an inline table's routes.
            None => (ChainTarget::InlineRoutes, "Inline Route".into()),
        };
    }
    if let Some(tcp) = chain.get("tcp_proxy") {
        let clusters: Vec<TcpCluster> = array(tcp, "clusters")
            .filter_map(Value::as_str)
            .map(|name| TcpCluster {
                name: name.to_string(),
                weight: None,
            })
            .collect();
        let text = tcp_text(&clusters);
        return (ChainTarget::TcpProxy { clusters }, text);
    }
    other(chain)
}

fn other(chain: &Value) -> (ChainTarget, String) {
    let filters = array(chain, "filters")
        .map(|f| str_of(f, &["name"]))
        .collect();
    (ChainTarget::Other { filters }, "Non-HTTP/Non-TCP".into())
}

/// Istio's catch-all clusters, which istioctl prints bare rather than as `Cluster: …`.
const ISTIO_SPECIAL_CLUSTERS: [&str; 5] = [
    "PassthroughCluster",
    "BlackHoleCluster",
    "InboundPassthroughCluster",
    "InboundPassthroughClusterIpv4",
    "InboundPassthroughClusterIpv6",
];

fn tcp_text(clusters: &[TcpCluster]) -> String {
    match clusters {
        [] => "Cluster: -".into(),
        [one] if ISTIO_SPECIAL_CLUSTERS.contains(&one.name.as_str()) => one.name.clone(),
        [one] => format!("Cluster: {}", one.name),
        several => {
            let list: Vec<String> = several
                .iter()
                .map(|c| match c.weight {
                    Some(w) => format!("{} ({w})", c.name),
                    None => c.name.clone(),
                })
                .collect();
            format!("Cluster: {}", list.join(", "))
        }
    }
}

/// An inline route table in one cell: `Inline Route: ` and, per virtual host, its domains
/// (`a/b`, left out when the host takes every domain) and its routes' path matches.
fn inline_routes_text(route_config: &Value) -> String {
    let hosts: Vec<String> = array(route_config, "virtual_hosts")
        .map(|vh| {
            let domains: Vec<&str> = array(vh, "domains").filter_map(Value::as_str).collect();
            let routes: Vec<String> = array(vh, "routes")
                .map(|r| path_shorthand(&r["match"]))
                .collect();
            let routes = routes.join(", ");
            if domains == ["*"] || domains.is_empty() {
                routes
            } else {
                format!("{} {routes}", domains.join("/"))
            }
        })
        .collect();
    format!("Inline Route: {}", hosts.join("; "))
}

#[cfg(test)]
mod tests;
