//! Checks that need other resources: a VirtualService may only route to subsets that a
//! DestinationRule for the destination host defines.
//!
//! Hosts must already be resolved (`model::host`) on both sides.

use super::{Finding, Findings};
use crate::model::destination_rule::DestinationRule;
use crate::model::host::host_matches;
use crate::model::meta::Resource;
use crate::model::path::FieldPath;
use crate::model::virtual_service::{Destination, VirtualService};

/// Errors for every destination in `vs` naming a subset that no DestinationRule for its
/// host defines. A DestinationRule for exactly the host is preferred; without one, the most
/// specific wildcard DestinationRule that matches the host applies, as in Istio.
pub fn check_subsets(
    vs: &VirtualService,
    destination_rules: &[&Resource<DestinationRule>],
) -> Vec<Finding> {
    let mut f = Findings::default();
    let spec = FieldPath::spec();
    for (i, route) in vs.http.iter().enumerate() {
        let p = spec.key("http").index(i);
        for (j, d) in route.route.iter().enumerate() {
            check(
                &mut f,
                &p.key("route").index(j).key("destination"),
                &d.destination,
                destination_rules,
            );
        }
        if let Some(mirror) = &route.mirror {
            check(&mut f, &p.key("mirror"), mirror, destination_rules);
        }
        for (k, m) in route.mirrors.iter().enumerate() {
            check(
                &mut f,
                &p.key("mirrors").index(k).key("destination"),
                &m.destination,
                destination_rules,
            );
        }
    }
    for (section, routes) in [
        ("tcp", vs.tcp.iter().map(|r| &r.route).collect::<Vec<_>>()),
        ("tls", vs.tls.iter().map(|r| &r.route).collect()),
    ] {
        for (i, route) in routes.into_iter().enumerate() {
            for (j, d) in route.iter().enumerate() {
                let p = spec
                    .key(section)
                    .index(i)
                    .key("route")
                    .index(j)
                    .key("destination");
                check(&mut f, &p, &d.destination, destination_rules);
            }
        }
    }
    f.0
}

fn check(
    f: &mut Findings,
    path: &FieldPath,
    d: &Destination,
    destination_rules: &[&Resource<DestinationRule>],
) {
    let Some(subset) = d.subset.as_deref().filter(|s| !s.is_empty()) else {
        return;
    };
    let rules = rules_for_host(&d.host, destination_rules);
    if rules.is_empty() {
        f.error(
            &path.key("subset"),
            format!(
                "subset {subset:?} is not defined: there is no DestinationRule for host {}",
                d.host
            ),
        );
    } else if !rules
        .iter()
        .any(|dr| dr.spec.subsets.iter().any(|s| s.name == subset))
    {
        let names: Vec<String> = rules.iter().map(|dr| dr.key().to_string()).collect();
        f.error(
            &path.key("subset"),
            format!(
                "subset {subset:?} is not defined by the DestinationRule for host {} ({})",
                d.host,
                names.join(", ")
            ),
        );
    }
}

/// The DestinationRules that apply to `host`: those for exactly it, else those for the
/// longest wildcard matching it.
pub fn rules_for_host<'a>(
    host: &str,
    destination_rules: &[&'a Resource<DestinationRule>],
) -> Vec<&'a Resource<DestinationRule>> {
    let exact: Vec<_> = destination_rules
        .iter()
        .copied()
        .filter(|dr| dr.spec.host == host)
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    let wildcards: Vec<_> = destination_rules
        .iter()
        .copied()
        .filter(|dr| dr.spec.host.starts_with('*') && host_matches(&dr.spec.host, host))
        .collect();
    let longest = wildcards.iter().map(|dr| dr.spec.host.len()).max();
    wildcards
        .into_iter()
        .filter(|dr| Some(dr.spec.host.len()) == longest)
        .collect()
}
