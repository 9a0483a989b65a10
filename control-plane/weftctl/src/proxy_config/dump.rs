//! Reads a proxy's `/config_dump` into rows, whichever proxy wrote it: Envoy's (a `configs`
//! list of typed dumps: listeners, routes, clusters, endpoints) or weft-proxy's (top-level
//! `listeners`, `route_configs` and `clusters` of its compiled config). The two shapes differ;
//! the rows do not, so one command inspects both.

use super::fields::{array, path_shorthand, str_of};
use super::listeners::{self, ListenerRow};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ProxyConfig {
    pub listeners: Vec<ListenerRow>,
    pub routes: Vec<RouteRow>,
    pub clusters: Vec<ClusterRow>,
    pub endpoints: Vec<EndpointRow>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct RouteRow {
    pub route_config: String,
    pub virtual_host: String,
    pub domains: Vec<String>,
    /// The path match in istioctl's shorthand: `/reviews*` (prefix), `/exact`, `~regex`.
    pub path: String,
    /// Extra conditions (headers, query parameters) that this table does not spell out.
    pub conditions: usize,
    pub destination: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ClusterRow {
    pub name: String,
    pub discovery: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct EndpointRow {
    pub address: String,
    pub healthy: bool,
    /// `None` where the dump does not say (Envoy's config dump has no outlier state).
    pub outlier_ejected: Option<bool>,
    pub cluster: String,
}

#[derive(Debug, thiserror::Error)]
#[error("not a config dump from Envoy or weft-proxy (expected `configs` or `listeners` at the top level)")]
pub struct UnknownDump;

pub fn read(dump: &Value) -> Result<ProxyConfig, UnknownDump> {
    if let Some(configs) = dump.get("configs").and_then(Value::as_array) {
        Ok(envoy(configs))
    } else if dump.get("listeners").is_some() {
        Ok(weft(dump))
    } else {
        Err(UnknownDump)
    }
}

// --- Envoy -------------------------------------------------------------------------------

fn envoy(configs: &[Value]) -> ProxyConfig {
    let mut out = ProxyConfig::default();
    let of_type = |suffix: &'static str| {
        configs
            .iter()
            .filter(move |c| str_of(c, &["@type"]).ends_with(suffix))
    };
    for dump in of_type("ListenersConfigDump") {
        let statics = array(dump, "static_listeners").map(|l| &l["listener"]);
        let dynamics = array(dump, "dynamic_listeners").map(|l| &l["active_state"]["listener"]);
        for l in statics.chain(dynamics).filter(|l| l.is_object()) {
            out.listeners.extend(listeners::envoy_rows(l));
        }
    }
    listeners::sort(&mut out.listeners);
    for dump in of_type("RoutesConfigDump") {
        let statics = array(dump, "static_route_configs");
        let dynamics = array(dump, "dynamic_route_configs");
        for rc in statics.chain(dynamics).map(|r| &r["route_config"]) {
            let rc_name = str_of(rc, &["name"]);
            for vh in array(rc, "virtual_hosts") {
                for r in array(vh, "routes") {
                    let m = &r["match"];
                    out.routes.push(RouteRow {
                        route_config: rc_name.clone(),
                        virtual_host: str_of(vh, &["name"]),
                        domains: array(vh, "domains")
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect(),
                        path: path_shorthand(m),
                        conditions: array(m, "headers").count()
                            + array(m, "query_parameters").count(),
                        destination: envoy_destination(r),
                    });
                }
            }
        }
    }
    for dump in of_type("ClustersConfigDump") {
        let statics = array(dump, "static_clusters");
        let dynamics = array(dump, "dynamic_active_clusters");
        for c in statics.chain(dynamics).map(|c| &c["cluster"]) {
            let discovery = str_of(c, &["type"]);
            out.clusters.push(ClusterRow {
                name: str_of(c, &["name"]),
                // proto3 JSON leaves out the default, STATIC; an EDS cluster says so.
                discovery: if discovery.is_empty() {
                    "STATIC".into()
                } else {
                    discovery
                },
            });
        }
    }
    for dump in of_type("EndpointsConfigDump") {
        let statics = array(dump, "static_endpoint_configs");
        let dynamics = array(dump, "dynamic_endpoint_configs");
        for cla in statics.chain(dynamics).map(|e| &e["endpoint_config"]) {
            let cluster = str_of(cla, &["cluster_name"]);
            for lb in array(cla, "endpoints").flat_map(|e| array(e, "lb_endpoints")) {
                let sa = &lb["endpoint"]["address"]["socket_address"];
                let health = str_of(lb, &["health_status"]);
                out.endpoints.push(EndpointRow {
                    address: format!(
                        "{}:{}",
                        str_of(sa, &["address"]),
                        str_of(sa, &["port_value"])
                    ),
                    healthy: matches!(health.as_str(), "" | "HEALTHY" | "UNKNOWN"),
                    outlier_ejected: None,
                    cluster: cluster.clone(),
                });
            }
        }
    }
    out
}

/// Envoy keeps the cluster choice under `route` (weighted clusters one level down), and a
/// redirect or direct response beside it.
fn envoy_destination(route: &Value) -> String {
    let action = &route["route"];
    destination(
        action.get("cluster"),
        &action["weighted_clusters"]["clusters"],
        route,
    )
}

// --- weft-proxy ----------------------------------------------------------------------------

fn weft(dump: &Value) -> ProxyConfig {
    let mut out = ProxyConfig::default();
    for l in array(dump, "listeners") {
        out.listeners.extend(listeners::weft_rows(l));
    }
    listeners::sort(&mut out.listeners);
    for rc in array(dump, "route_configs") {
        let rc_name = str_of(rc, &["name"]);
        for vh in array(&rc["route_config"], "virtual_hosts") {
            for r in array(vh, "routes") {
                let m = &r["match"];
                out.routes.push(RouteRow {
                    route_config: rc_name.clone(),
                    virtual_host: str_of(vh, &["name"]),
                    domains: array(vh, "domains")
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect(),
                    path: path_shorthand(m),
                    conditions: array(m, "headers").count() + array(m, "query_parameters").count(),
                    destination: weft_destination(&r["action"]),
                });
            }
        }
    }
    for c in array(dump, "clusters") {
        let name = str_of(c, &["name"]);
        out.clusters.push(ClusterRow {
            name: name.clone(),
            discovery: str_of(c, &["type"]).to_uppercase(),
        });
        for h in array(c, "hosts") {
            out.endpoints.push(EndpointRow {
                address: str_of(h, &["address"]),
                healthy: h["healthy"].as_bool().unwrap_or(false),
                outlier_ejected: h["outlier_ejected"].as_bool(),
                cluster: name.clone(),
            });
        }
    }
    out
}

/// weft-proxy describes every kind of action under `action`.
fn weft_destination(action: &Value) -> String {
    destination(action.get("cluster"), &action["weighted_clusters"], action)
}

// --- shared ----------------------------------------------------------------------------------

/// A route's destination column: its cluster, its weighted clusters, or what it answers itself
/// (`others` holds `redirect` / `direct_response`).
fn destination(cluster: Option<&Value>, weighted: &Value, others: &Value) -> String {
    if let Some(c) = cluster.and_then(Value::as_str) {
        return c.to_string();
    }
    if let Some(clusters) = weighted.as_array().filter(|c| !c.is_empty()) {
        return clusters
            .iter()
            .map(|c| format!("{} ({})", str_of(c, &["name"]), str_of(c, &["weight"])))
            .collect::<Vec<_>>()
            .join(", ");
    }
    if others.get("redirect").is_some() {
        return "redirect".into();
    }
    if let Some(d) = others.get("direct_response") {
        return format!("direct response {}", str_of(d, &["status"]));
    }
    String::new()
}

#[cfg(test)]
mod tests;
