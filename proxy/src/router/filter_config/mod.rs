//! Per-route configuration for the HTTP filters (`typed_per_filter_config`), compiled.
//!
//! It lives with the routes because a route carries it; the filters themselves run in
//! `crate::http::filter`. A route usually has none, so the lookup is a scan of an empty list.

pub mod cors;
pub mod fault;

use std::sync::Arc;

pub use cors::CorsPolicy;
pub use fault::{AbortKind, FaultAbort, FaultConfig, FaultDecision, FaultDelay};

#[derive(Debug, Clone)]
pub enum PerFilter {
    Fault(Arc<FaultConfig>),
    Cors(Arc<CorsPolicy>),
    /// `FilterConfig { disabled: true }`: the filter does not run on this route.
    Disabled,
    /// `FilterConfig { disabled: false }` with no config of its own: a filter disabled in the
    /// chain runs on this route with its chain-level config.
    Enabled,
}

/// A route's per-filter configs, keyed by the filter's name in the connection manager.
#[derive(Debug, Clone, Default)]
pub struct FilterConfigs(Vec<(Box<str>, PerFilter)>);

impl FilterConfigs {
    pub fn new(configs: Vec<(Box<str>, PerFilter)>) -> Self {
        FilterConfigs(configs)
    }

    pub fn get(&self, filter_name: &str) -> Option<&PerFilter> {
        self.0
            .iter()
            .find(|(name, _)| &**name == filter_name)
            .map(|(_, c)| c)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a less specific level's entries for filters this level does not configure.
    pub fn then(&mut self, less_specific: &FilterConfigs) {
        for (name, config) in &less_specific.0 {
            if self.get(name).is_none() {
                self.0.push((name.clone(), config.clone()));
            }
        }
    }
}

/// The HTTP filters a listener's connection manager runs, in order; the router is last.
#[derive(Debug, Clone, Default)]
pub struct HttpFilterChain {
    pub filters: Vec<HttpFilterSpec>,
    pub router: RouterConfig,
}

#[derive(Debug, Clone)]
pub struct HttpFilterSpec {
    /// The name routes key their per-filter configs by.
    pub name: Box<str>,
    pub kind: HttpFilterKind,
    /// Runs only on routes whose per-filter config enables it.
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub enum HttpFilterKind {
    /// The listener-level fault config: what routes without their own get.
    Fault(Arc<FaultConfig>),
    /// CORS acts only on routes with a policy.
    Cors,
}

/// `envoy.extensions.filters.http.router.v3.Router`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterConfig {
    /// Send no `x-envoy-*` headers upstream or downstream.
    pub suppress_envoy_headers: bool,
}

impl HttpFilterSpec {
    /// The config this filter runs with on a route, or `None` when it does not run there.
    pub fn on_route<'a>(&'a self, route: &'a FilterConfigs) -> Option<FilterOnRoute<'a>> {
        let per_route = route.get(&self.name);
        match (per_route, self.disabled) {
            (Some(PerFilter::Disabled), _) => None,
            (None, true) => None,
            (per_route, _) => Some(FilterOnRoute {
                spec: self,
                per_route,
            }),
        }
    }
}

/// A filter as it applies to one route: its chain-level spec and the route's own config.
pub struct FilterOnRoute<'a> {
    pub spec: &'a HttpFilterSpec,
    pub per_route: Option<&'a PerFilter>,
}
