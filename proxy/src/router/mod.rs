//! Route selection as a pure function over precompiled data: pick the virtual host by the
//! request's authority, then take the first route whose matcher passes (Envoy's order; routes
//! are never reordered by specificity).
//!
//! Large virtual hosts get an index over their routes' path rules (see `index`), built with the
//! table; it narrows the routes to evaluate without changing which one is chosen.
//!
//! Everything here is built once per configuration push (see `crate::config`, which turns xDS
//! protos into these types and reports what is wrong with them). The request path only borrows:
//! [`RequestView`] points into the request, and matching allocates only when a header that a
//! matcher reads appears several times (Envoy joins the values with `,`).

mod action;
mod describe;
mod domain;
pub mod filter_config;
mod fraction;
mod hash_policy;
mod header;
mod header_mutation;
mod index;
mod matcher;
mod query;
pub mod retry;
mod rewrite;
mod string_match;
mod target;
mod weighted;

#[cfg(test)]
mod tests;

use http::{HeaderMap, Method, Uri};
use std::sync::Arc;

pub use action::{
    Decorator, MaxStreamDuration, MirrorPolicy, Redirect, RedirectPath, RouteAction, RoutePolicy,
    DEFAULT_ROUTE_TIMEOUT,
};
pub use domain::DuplicateDomain;
pub use fraction::{Fraction, MILLION};
pub use hash_policy::{
    request_hash, CookiePolicy, CookiePolicyError, HashKind, HashPolicy, RegexRewrite, RequestHash,
};
pub use header::{HeaderMatch, HeaderMatcher, HeaderSource};
pub use header_mutation::{AppendAction, HeaderAdd, HeaderMutations, HeaderPolicy};
pub use matcher::{PathMatcher, RouteMatcher};
pub use query::{first_value as query_first_value, QueryMatch, QueryMatcher};
pub use retry::{RetryOn, RetryPolicy, TryFailure};
pub use rewrite::{rewrite_path, substitution_from_envoy, swap_prefix, PathRewrite, Rewrite};
pub use string_match::StringMatcher;
pub use target::ClusterTarget;
pub use weighted::{WeightError, WeightedCluster, WeightedClusterSpec, WeightedClusters};

use domain::DomainIndex;
use index::RouteIndex;
use matcher::PathTarget;

/// What the router needs from a request, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// `:authority`, or the HTTP/1 `Host` header, port included as sent.
    pub authority: &'a str,
    /// `:path`, query string included.
    pub path_and_query: &'a str,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
}

impl<'a> RequestView<'a> {
    /// Reads the authority from the URI (HTTP/2, absolute-form HTTP/1) or else from `Host`. A
    /// request without either has the empty authority, which only a `*` domain matches.
    pub fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        let authority = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .unwrap_or("");
        RequestView {
            authority,
            path_and_query: uri.path_and_query().map_or("/", |pq| pq.as_str()),
            method,
            headers,
        }
    }
}

/// A compiled `RouteConfiguration`.
#[derive(Debug, Clone)]
pub struct RouteTable {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    /// `ignore_port_in_host_matching`: compare the authority without its port.
    pub ignore_port_in_host_matching: bool,
    domains: DomainIndex,
    /// `route_indexes[i]` indexes `virtual_hosts[i].routes`; `None` for small hosts, which are
    /// scanned in order.
    route_indexes: Vec<Option<RouteIndex>>,
}

#[derive(Debug, Clone)]
pub struct VirtualHost {
    pub name: String,
    /// As configured; lookups go through the table's index.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Shared, so a request's record can keep it past the snapshot it ran on.
    pub name: Arc<str>,
    pub matcher: RouteMatcher,
    pub action: RouteAction,
    pub policy: RoutePolicy,
}

impl RouteTable {
    /// Fails when a domain appears twice across the virtual hosts. Also builds the route index
    /// of every large virtual host, so that the request path only reads.
    pub fn new(
        name: String,
        virtual_hosts: Vec<VirtualHost>,
        ignore_port_in_host_matching: bool,
    ) -> Result<Self, DuplicateDomain> {
        let domains = DomainIndex::build(virtual_hosts.iter().map(|vh| vh.domains.as_slice()))?;
        let route_indexes = virtual_hosts
            .iter()
            .map(|vh| RouteIndex::build(&vh.routes))
            .collect();
        Ok(RouteTable {
            name,
            virtual_hosts,
            ignore_port_in_host_matching,
            domains,
            route_indexes,
        })
    }

    /// The route for `req`, or `None` (Envoy answers 404 with response flag NR).
    pub fn find(&self, req: &RequestView<'_>) -> Option<&Route> {
        self.find_with_host(req).map(|(_, route)| route)
    }

    /// Like [`find`](Self::find), also returning the virtual host (its name goes into stats).
    pub fn find_with_host(&self, req: &RequestView<'_>) -> Option<(&VirtualHost, &Route)> {
        let i = self.virtual_host_index(req.authority)?;
        let vh = self.virtual_hosts.get(i)?;
        let target = PathTarget::new(req.path_and_query);
        let route = match self.route_indexes.get(i) {
            Some(Some(index)) if index.covers(&vh.routes) => index.find(&vh.routes, req, &target),
            _ => first_match(&vh.routes, req, &target),
        };
        route.map(|r| (vh, r))
    }

    /// The same answer as [`find`](Self::find), by evaluating every route of the virtual host
    /// in order without the index: the reference the index is tested and benchmarked against.
    pub fn find_linear(&self, req: &RequestView<'_>) -> Option<&Route> {
        let vh = self.virtual_host(req.authority)?;
        first_match(&vh.routes, req, &PathTarget::new(req.path_and_query))
    }

    pub fn virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        self.virtual_host_index(authority)
            .and_then(|i| self.virtual_hosts.get(i))
    }

    fn virtual_host_index(&self, authority: &str) -> Option<usize> {
        let host = if self.ignore_port_in_host_matching {
            domain::strip_port(authority)
        } else {
            authority
        };
        self.domains.find(host)
    }
}

/// Envoy's rule: the first route, in configuration order, whose matcher passes.
fn first_match<'r>(
    routes: &'r [Route],
    req: &RequestView<'_>,
    target: &PathTarget<'_>,
) -> Option<&'r Route> {
    routes
        .iter()
        .find(|r| r.matcher.matches_target(req, target))
}
