//! JSON and text views of the snapshot for `/config_dump` and `/clusters`.

use crate::config::filter_chain_match::{ChainMatch, IpPrefix};
use crate::config::{ChainAction, FilterChainConfig, RouteSource};
use crate::snapshot::Snapshot;
use serde_json::{json, Value};
use std::fmt::Write as _;

pub fn config_dump(snap: &Snapshot) -> Value {
    let listeners: Vec<Value> = snap
        .listeners
        .values()
        .map(|l| {
            let chains: Vec<Value> = l
                .chains
                .chains
                .iter()
                .zip(&l.chains.matches)
                .map(|(c, m)| {
                    let mut chain = chain_json(c);
                    chain["filter_chain_match"] = match_json(m);
                    chain
                })
                .collect();
            json!({
                "name": l.name,
                "address": l.address.map(|a| a.to_string()),
                "bind_to_port": l.bind_to_port,
                "use_original_dst": l.use_original_dst,
                "listener_filters": format!("{:?}", l.listener_filters),
                // The first RDS name of its connection managers, for one-line views.
                "route_config_name": l.http_connection_managers().find_map(|h| match &h.route_source {
                    RouteSource::Rds(n) => Some(n.as_str()),
                    RouteSource::Inline(_) => None,
                }),
                "filter_chains": chains,
                "default_filter_chain": l.chains.default.as_deref().map(chain_json),
            })
        })
        .collect();
    let mut routes: Vec<Value> = snap
        .routes
        .iter()
        .map(|(name, table)| json!({ "name": name, "route_config": table.describe() }))
        .collect();
    routes.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({
        "versions": snap.versions,
        "complete": snap.complete,
        "listeners": listeners,
        "route_configs": routes,
        "clusters": clusters_json(snap)["clusters"].clone(),
    })
}

/// A chain's match in Envoy's JSON field names, with only what it sets.
fn match_json(m: &ChainMatch) -> Value {
    let prefixes = |ranges: &[IpPrefix]| -> Vec<String> {
        ranges
            .iter()
            .map(|r| format!("{}/{}", r.addr, r.len))
            .collect()
    };
    let mut out = serde_json::Map::new();
    if let Some(p) = m.destination_port {
        out.insert("destination_port".into(), json!(p));
    }
    for (key, list) in [
        ("prefix_ranges", prefixes(&m.prefix_ranges)),
        ("server_names", m.server_names.clone()),
        ("application_protocols", m.application_protocols.clone()),
        ("source_prefix_ranges", prefixes(&m.source_prefix_ranges)),
        (
            "direct_source_prefix_ranges",
            prefixes(&m.direct_source_prefix_ranges),
        ),
    ] {
        if !list.is_empty() {
            out.insert(key.into(), json!(list));
        }
    }
    if let Some(t) = &m.transport_protocol {
        out.insert("transport_protocol".into(), json!(t));
    }
    if !m.source_ports.is_empty() {
        out.insert("source_ports".into(), json!(m.source_ports));
    }
    Value::Object(out)
}

fn chain_json(chain: &FilterChainConfig) -> Value {
    let mut out = terminal_json(chain);
    if let (false, Value::Object(o)) = (chain.connection_limits.is_empty(), &mut out) {
        let limits: Vec<Value> = chain
            .connection_limits
            .iter()
            .map(|l| {
                json!({
                    "stat_prefix": l.stat_prefix,
                    "max_connections": l.max_connections,
                    "delay": l.delay.map(|d| format!("{}s", d.as_secs_f64())),
                })
            })
            .collect();
        o.insert("connection_limits".into(), json!(limits));
    }
    out
}

fn terminal_json(chain: &FilterChainConfig) -> Value {
    match &chain.action {
        ChainAction::Http(h) => json!({
            "name": chain.name,
            "http_connection_manager": {
                "stat_prefix": h.stat_prefix,
                "route_config_name": match &h.route_source {
                    RouteSource::Rds(n) => Some(n.as_str()),
                    RouteSource::Inline(_) => None,
                },
                "access_log": h.access_log.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>(),
            },
        }),
        ChainAction::Tcp(t) => json!({
            "name": chain.name,
            "tcp_proxy": {
                "stat_prefix": t.stat_prefix,
                "clusters": t.target.clusters().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            },
        }),
    }
}

pub fn clusters_json(snap: &Snapshot) -> Value {
    let mut clusters: Vec<_> = snap.clusters.values().collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    let list: Vec<Value> = clusters
        .iter()
        .map(|c| {
            json!({
                "name": &*c.name,
                "type": format!("{:?}", c.config.discovery),
                "lb_policy": format!("{:?}", c.config.lb_policy),
                "protocol": format!("{:?}", c.config.protocol),
                "hosts": c.hosts.iter().map(|h| json!({
                    "address": h.address().to_string(),
                    "weight": h.weight,
                    "healthy": h.healthy(),
                    "outlier_ejected": h.is_ejected(),
                    "times_ejected": h.outlier.ejection().times,
                    "ejection_reason": h.outlier.ejection().reason.map(|r| r.as_str()),
                    "rq_active": h.active_requests(),
                    "cx_active": h.pool().open_connections(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "clusters": list })
}

/// Envoy's `/clusters` text form: `cluster::host::field::value`, one per line.
pub fn clusters_text(snap: &Snapshot) -> String {
    let mut clusters: Vec<_> = snap.clusters.values().collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for c in clusters {
        // Envoy prints the DEFAULT-priority circuit breakers first.
        let t = c.runtime.limits.thresholds();
        for (name, v) in [
            ("max_connections", t.max_connections),
            ("max_pending_requests", t.max_pending_requests),
            ("max_requests", t.max_requests),
            ("max_retries", t.max_retries),
        ] {
            let _ = writeln!(out, "{}::default_priority::{name}::{v}", c.name);
        }
        for h in &c.hosts {
            let addr = h.address();
            // Envoy's flags: several can apply at once.
            let health = match (h.healthy(), h.is_ejected()) {
                (true, false) => "healthy",
                (false, false) => "/failed_eds_health",
                (true, true) => "/failed_outlier_check",
                (false, true) => "/failed_eds_health/failed_outlier_check",
            };
            let _ = writeln!(out, "{}::{addr}::health_flags::{health}", c.name);
            let _ = writeln!(out, "{}::{addr}::weight::{}", c.name, h.weight);
            let _ = writeln!(
                out,
                "{}::{addr}::rq_active::{}",
                c.name,
                h.active_requests()
            );
            let _ = writeln!(
                out,
                "{}::{addr}::cx_active::{}",
                c.name,
                h.pool().open_connections()
            );
            let _ = writeln!(
                out,
                "{}::{addr}::outlier::times_ejected::{}",
                c.name,
                h.outlier.ejection().times
            );
        }
    }
    out
}
