//! Host names as Istio resolves them: short Kubernetes-style names are completed with the
//! resource's namespace and the cluster domain.

use super::destination_rule::DestinationRule;
use super::virtual_service::{Destination, VirtualService};
use std::net::IpAddr;

/// The DNS suffix of services in the (only) cluster.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The fully qualified name of `host` as written in a resource of `namespace`:
///
/// - `reviews` -> `reviews.<namespace>.svc.cluster.local`
/// - `reviews.prod` -> `reviews.prod.svc.cluster.local`
/// - `reviews.prod.svc` -> `reviews.prod.svc.cluster.local`
/// - anything else (`api.example.com`, `reviews.prod.svc.cluster.local`, `*.example.com`,
///   `*`, IP addresses, names ending with a dot) is returned unchanged.
///
/// A two-label name is always read as `name.namespace`, so `httpbin.org` becomes
/// `httpbin.org.svc.cluster.local`. The config set keeps hosts that a ServiceEntry declares
/// as written instead (see [`resolve_host`]).
pub fn fqdn(host: &str, namespace: &str) -> String {
    if host.is_empty()
        || host.contains('*')
        || host.ends_with('.')
        || host.parse::<IpAddr>().is_ok()
    {
        return host.to_string();
    }
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [_] => format!("{host}.{namespace}.svc.{CLUSTER_DOMAIN}"),
        [_, _] => format!("{host}.svc.{CLUSTER_DOMAIN}"),
        [_, _, "svc"] => format!("{host}.{CLUSTER_DOMAIN}"),
        _ => host.to_string(),
    }
}

/// Like [`fqdn`], except that a host some ServiceEntry declares (`is_declared`) is used as
/// written: `httpbin.org` names the external service, not a namespace `org`.
pub fn resolve_host(host: &str, namespace: &str, is_declared: &dyn Fn(&str) -> bool) -> String {
    if is_declared(host) {
        host.to_string()
    } else {
        fqdn(host, namespace)
    }
}

fn resolve_destination(d: &mut Destination, namespace: &str, is_declared: &dyn Fn(&str) -> bool) {
    d.host = resolve_host(&d.host, namespace, is_declared);
}

/// Resolves the VirtualService's hosts and every destination host in it.
pub fn resolve_virtual_service(
    vs: &mut VirtualService,
    namespace: &str,
    is_declared: &dyn Fn(&str) -> bool,
) {
    for host in &mut vs.hosts {
        *host = resolve_host(host, namespace, is_declared);
    }
    for route in &mut vs.http {
        for dest in &mut route.route {
            resolve_destination(&mut dest.destination, namespace, is_declared);
        }
        if let Some(mirror) = &mut route.mirror {
            resolve_destination(mirror, namespace, is_declared);
        }
        for mirror in &mut route.mirrors {
            resolve_destination(&mut mirror.destination, namespace, is_declared);
        }
    }
    for route in &mut vs.tcp {
        for dest in &mut route.route {
            resolve_destination(&mut dest.destination, namespace, is_declared);
        }
    }
    for route in &mut vs.tls {
        for dest in &mut route.route {
            resolve_destination(&mut dest.destination, namespace, is_declared);
        }
    }
}

pub fn resolve_destination_rule(
    dr: &mut DestinationRule,
    namespace: &str,
    is_declared: &dyn Fn(&str) -> bool,
) {
    dr.host = resolve_host(&dr.host, namespace, is_declared);
}

/// Whether `host` is matched by `pattern`, which may be a wildcard (`*`, `*.example.com`).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_namespace() {
        assert_eq!(
            fqdn("reviews", "default"),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(
            fqdn("reviews.prod", "default"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            fqdn("reviews.prod.svc", "default"),
            "reviews.prod.svc.cluster.local"
        );
    }

    #[test]
    fn other_names_stay_as_written() {
        for host in [
            "api.example.com",
            "reviews.prod.svc.cluster.local",
            "*.example.com",
            "*",
            "10.0.0.1",
            "::1",
            "example.com.",
            "",
        ] {
            assert_eq!(fqdn(host, "default"), host);
        }
    }

    #[test]
    fn declared_hosts_are_not_expanded() {
        let declared = |h: &str| h == "httpbin.org";
        assert_eq!(
            resolve_host("httpbin.org", "default", &declared),
            "httpbin.org"
        );
        assert_eq!(
            resolve_host("reviews", "default", &declared),
            "reviews.default.svc.cluster.local"
        );
    }

    #[test]
    fn wildcards_match_suffixes() {
        assert!(host_matches("*.example.com", "api.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("*", "anything"));
        assert!(host_matches("a.b", "a.b"));
        assert!(!host_matches("a.b", "a.c"));
    }
}
