//! Translation: a pure function from the mesh's configuration and one proxy's identity to the
//! Envoy v3 resources that proxy should run.
//!
//! Naming follows Istio so that dashboards and habits carry over: clusters
//! `outbound|<port>|<subset>|<host>`, the outbound listener `virtualOutbound`, and the route
//! configuration of the HTTP proxy listener `http_proxy`. A proxy in sidecar mode gets istiod's
//! sidecar layout instead (see [`sidecar`]).

pub mod access_log;
mod clusters;
mod endpoints;
pub mod hash_policy;
mod listeners;
pub mod names;
mod route_action;
mod route_match;
mod route_policy;
mod routes;
pub mod scope;
mod shared;
pub mod sidecar;
#[cfg(test)]
mod tests;
pub mod tracing;
#[cfg(test)]
mod traffic_tests;

use crate::model::validate::cross::RulesByHost;
use crate::model::{ConfigSet, DestinationRule, Resource};
use crate::registry::Registry;
use xds_protos::node::NodeIdentity;
use xds_protos::snapshot::Resources;

pub use scope::ScopeClass;
pub use shared::{RouteClass, TranslationCounts};

/// Choices that are the operator's, not the mesh config's.
#[derive(Debug, Clone)]
pub struct TranslateOptions {
    /// weftd's `--access-log-format` (`None`: `--no-access-log`): the mesh-wide access log
    /// when the mesh config sets no `accessLogFile`, and the format of the built-in `envoy`
    /// provider when it sets no encoding or format (see [`access_log`]).
    pub access_log: Option<AccessLogFormat>,
    /// `weftd --mesh-config`: tracing providers and defaults.
    pub mesh_config: std::sync::Arc<crate::model::MeshConfig>,
}

/// The access log formats proxies are told to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessLogFormat {
    /// Istio's default text line: Envoy's plus the response code details, the upstream
    /// transport failure reason and the addresses that explain a 503.
    Istio,
    /// Envoy's default text line.
    Envoy,
    /// One JSON object per line.
    Json,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            access_log: Some(AccessLogFormat::Istio),
            mesh_config: Default::default(),
        }
    }
}

/// One consistent view of the mesh: what every proxy's resources are generated from, and the
/// translations already made from it (see [`shared`]).
pub struct MeshSnapshot {
    pub config: ConfigSet,
    pub registry: Registry,
    /// `config.destination_rules` by host.
    rules_by_host: RulesByHost,
    pub options: TranslateOptions,
    cache: shared::TranslationCache,
    scopes: scope::ScopeCache,
}

impl MeshSnapshot {
    pub fn new(config: ConfigSet, options: TranslateOptions) -> Self {
        let registry = Registry::build(&config);
        MeshSnapshot {
            rules_by_host: RulesByHost::new(&config.destination_rules),
            cache: shared::TranslationCache::new(&config),
            scopes: Default::default(),
            config,
            registry,
            options,
        }
    }
}

impl MeshSnapshot {
    /// The subsets of a host: those of the most specific DestinationRule for it, as Istio uses
    /// one rule per host.
    pub fn subsets_of<'a>(
        &'a self,
        hostname: &str,
    ) -> impl Iterator<Item = &'a crate::model::Subset> {
        self.destination_rules_for(hostname)
            .into_iter()
            .take(1)
            .flat_map(|dr| dr.spec.subsets.iter())
    }

    /// The DestinationRules that apply to `host` (a resolved host name): those for exactly
    /// it, else those of the most specific wildcard matching it.
    pub fn destination_rules_for(&self, host: &str) -> Vec<&Resource<DestinationRule>> {
        self.rules_by_host
            .for_host(&self.config.destination_rules, host)
    }
}

/// All resources for one proxy, translated afresh (the sessions use the shared translations
/// of [`MeshSnapshot::generate_shared`], which must equal this).
pub fn translate(mesh: &MeshSnapshot, node: &NodeIdentity) -> Resources {
    use xds_protos::node::ProxyMode;
    use xds_protos::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
    // Clusters, endpoints, routes and a sidecar's outbound listeners come from what the proxy
    // may reach (`scope`); its inbound side, and local mode's listener, from the whole mesh.
    let scope = scope::scope_of(mesh, node);
    let view = scope.view.as_ref().unwrap_or(mesh);
    let mut out = Resources::default();
    let sidecar = node.mode == ProxyMode::Sidecar;
    let mut clusters = clusters::clusters(view);
    if sidecar {
        clusters.extend(sidecar::clusters(mesh, node));
    }
    for cluster in clusters {
        let any = xds_protos::any::pack(CLUSTER, &cluster);
        out.insert(CLUSTER, cluster.name, any);
    }
    for cla in endpoints::load_assignments(view) {
        let any = xds_protos::any::pack(ENDPOINT, &cla);
        out.insert(ENDPOINT, cla.cluster_name, any);
    }
    let listeners = if sidecar {
        sidecar::listeners(view, mesh, node)
    } else {
        listeners::listeners(mesh, node)
    };
    for listener in listeners {
        let any = xds_protos::any::pack(LISTENER, &listener);
        out.insert(LISTENER, listener.name, any);
    }
    let routes = if sidecar {
        sidecar::routes::route_configs(view, node)
    } else {
        vec![routes::http_proxy_routes(view, node)]
    };
    for rc in routes {
        let any = xds_protos::any::pack(ROUTE, &rc);
        out.insert(ROUTE, rc.name, any);
    }
    out
}
