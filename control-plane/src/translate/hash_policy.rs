//! Consistent hashing, route side: what a request is hashed on. A DestinationRule's
//! `loadBalancer.consistentHash` names the key (a header, a cookie, the source IP or a query
//! parameter); the cluster's ring hash or maglev load balancer (set on the cluster) hashes
//! whatever the route's `hash_policy` extracts, so the key is translated onto the route
//! action, as istiod does.

use super::clusters::pb_duration;
use super::MeshSnapshot;
use crate::model::{ConsistentHashLb, Destination, LoadBalancerSettings, PortTrafficPolicy};
use xds_protos::pb::envoy::config::route::v3::route_action::{hash_policy, HashPolicy};

/// The route hash policy for a DestinationRule's consistent hash settings: one policy for the
/// one key Istio allows, none if no key is set.
pub fn hash_policies(lb: &ConsistentHashLb) -> Vec<HashPolicy> {
    use hash_policy::PolicySpecifier;
    let specifier = if let Some(name) = &lb.http_header_name {
        PolicySpecifier::Header(hash_policy::Header {
            header_name: name.clone(),
            regex_rewrite: None,
        })
    } else if let Some(cookie) = &lb.http_cookie {
        PolicySpecifier::Cookie(hash_policy::Cookie {
            name: cookie.name.clone(),
            ttl: cookie.ttl.map(pb_duration),
            path: cookie.path.clone().unwrap_or_default(),
            ..Default::default()
        })
    } else if let Some(source_ip) = lb.use_source_ip {
        PolicySpecifier::ConnectionProperties(hash_policy::ConnectionProperties { source_ip })
    } else if let Some(name) = &lb.http_query_parameter_name {
        PolicySpecifier::QueryParameter(hash_policy::QueryParameter { name: name.clone() })
    } else {
        return Vec::new();
    };
    vec![HashPolicy {
        policy_specifier: Some(specifier),
        terminal: false,
    }]
}

/// The consistent hash settings traffic to a VirtualService destination uses: the most
/// specific of the subset's port-level settings, the subset's, the rule's port-level
/// settings and the rule's own. `port` is the service port the destination resolves to.
pub fn for_destination<'a>(
    mesh: &'a MeshSnapshot,
    dest: &Destination,
    port: u32,
) -> Option<&'a ConsistentHashLb> {
    let rules = mesh.destination_rules_for(&dest.host);
    let rule = &rules.first()?.spec;
    let policy = rule.traffic_policy.as_ref();
    let subset_policy = dest.subset.as_deref().and_then(|name| {
        rule.subsets
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.traffic_policy.as_ref())
    });
    let port_level = |levels: &'a [PortTrafficPolicy]| {
        levels
            .iter()
            .find(|l| l.port.is_some_and(|p| p.number == port))
            .and_then(|l| consistent_hash(l.load_balancer.as_ref()))
    };
    subset_policy
        .and_then(|p| port_level(&p.port_level_settings))
        .or_else(|| subset_policy.and_then(|p| consistent_hash(p.load_balancer.as_ref())))
        .or_else(|| policy.and_then(|p| port_level(&p.port_level_settings)))
        .or_else(|| policy.and_then(|p| consistent_hash(p.load_balancer.as_ref())))
}

/// The consistent hash settings of a service port without a VirtualService (the default
/// route goes to all endpoints, so subsets do not apply).
pub fn for_service<'a>(
    mesh: &'a MeshSnapshot,
    host: &str,
    port: u32,
) -> Option<&'a ConsistentHashLb> {
    let dest = Destination {
        host: host.to_string(),
        subset: None,
        port: None,
    };
    for_destination(mesh, &dest, port)
}

fn consistent_hash(lb: Option<&LoadBalancerSettings>) -> Option<&ConsistentHashLb> {
    lb.and_then(|lb| lb.consistent_hash.as_ref())
}
