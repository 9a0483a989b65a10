//! Translation: a pure function from the mesh's configuration and one proxy's identity to the
//! Envoy v3 resources that proxy should run.
//!
//! Naming follows Istio so that dashboards and habits carry over: clusters
//! `outbound|<port>|<subset>|<host>`, the outbound listener `virtualOutbound`, and the route
//! configuration of the HTTP proxy listener `http_proxy`.

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
#[cfg(test)]
mod tests;
pub mod tracing;
#[cfg(test)]
mod traffic_tests;

use crate::model::ConfigSet;
use crate::registry::Registry;
use xds_protos::node::NodeIdentity;
use xds_protos::snapshot::Resources;

pub use scope::ScopeClass;
pub use shared::{RouteClass, TranslationCounts};

/// Choices that are the operator's, not the mesh config's.
#[derive(Debug, Clone)]
pub struct TranslateOptions {
    /// How the outbound listener logs each request to stdout; `None` logs nothing.
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
    pub options: TranslateOptions,
    cache: shared::TranslationCache,
    scopes: scope::ScopeCache,
}

impl MeshSnapshot {
    pub fn new(config: ConfigSet, options: TranslateOptions) -> Self {
        let registry = Registry::build(&config);
        MeshSnapshot {
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
        self.config
            .destination_rules_for(hostname)
            .into_iter()
            .take(1)
            .flat_map(|dr| dr.spec.subsets.iter())
    }
}

/// All resources for one proxy, translated afresh (the sessions use the shared translations
/// of [`MeshSnapshot::generate_shared`], which must equal this).
pub fn translate(mesh: &MeshSnapshot, node: &NodeIdentity) -> Resources {
    // Clusters, endpoints and routes come from what the proxy may reach (`scope`).
    let scope = scope::scope_of(mesh, node);
    let view = scope.view.as_ref().unwrap_or(mesh);
    let mut out = Resources::default();
    for cluster in clusters::clusters(view) {
        out.insert(
            xds_protos::type_url::CLUSTER,
            cluster.name.clone(),
            xds_protos::any::pack(xds_protos::type_url::CLUSTER, &cluster),
        );
    }
    for cla in endpoints::load_assignments(view) {
        out.insert(
            xds_protos::type_url::ENDPOINT,
            cla.cluster_name.clone(),
            xds_protos::any::pack(xds_protos::type_url::ENDPOINT, &cla),
        );
    }
    for listener in listeners::listeners(mesh, node) {
        out.insert(
            xds_protos::type_url::LISTENER,
            listener.name.clone(),
            xds_protos::any::pack(xds_protos::type_url::LISTENER, &listener),
        );
    }
    let rc = routes::http_proxy_routes(view, node);
    out.insert(
        xds_protos::type_url::ROUTE,
        rc.name.clone(),
        xds_protos::any::pack(xds_protos::type_url::ROUTE, &rc),
    );
    out
}
