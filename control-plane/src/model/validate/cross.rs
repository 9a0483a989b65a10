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
use std::borrow::Borrow;
use std::collections::HashMap;

/// Errors for every destination in `vs` naming a subset that no DestinationRule for its
/// host defines. A DestinationRule for exactly the host is preferred; without one, the most
/// specific wildcard DestinationRule that matches the host applies, as in Istio.
pub fn check_subsets(
    vs: &VirtualService,
    destination_rules: &[&Resource<DestinationRule>],
    by_host: &RulesByHost,
) -> Vec<Finding> {
    let destination_rules = Rules {
        all: destination_rules,
        by_host,
    };
    let mut f = Findings::default();
    let spec = FieldPath::spec();
    for (i, route) in vs.http.iter().enumerate() {
        let p = spec.key("http").index(i);
        for (j, d) in route.route.iter().enumerate() {
            check(
                &mut f,
                &p.key("route").index(j).key("destination"),
                &d.destination,
                &destination_rules,
            );
        }
        if let Some(mirror) = &route.mirror {
            check(&mut f, &p.key("mirror"), mirror, &destination_rules);
        }
        for (k, m) in route.mirrors.iter().enumerate() {
            check(
                &mut f,
                &p.key("mirrors").index(k).key("destination"),
                &m.destination,
                &destination_rules,
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
                check(&mut f, &p, &d.destination, &destination_rules);
            }
        }
    }
    f.0
}

struct Rules<'a> {
    all: &'a [&'a Resource<DestinationRule>],
    by_host: &'a RulesByHost,
}

fn check(f: &mut Findings, path: &FieldPath, d: &Destination, destination_rules: &Rules) {
    let Some(subset) = d.subset.as_deref().filter(|s| !s.is_empty()) else {
        return;
    };
    let rules = destination_rules
        .by_host
        .for_host(destination_rules.all, &d.host);
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

/// DestinationRules by host: finds the ones that apply to a host without looking at every
/// rule (translation asks once per service and per destination: with 10,000 services, a
/// scan each time was 100 million comparisons per change). Positions in the slice it was
/// built from, which every lookup must pass again.
#[derive(Debug, Default)]
pub struct RulesByHost {
    exact: HashMap<String, Vec<usize>>,
    wildcards: Vec<usize>,
}

impl RulesByHost {
    pub fn new<R: Borrow<Resource<DestinationRule>>>(rules: &[R]) -> Self {
        let mut index = RulesByHost::default();
        for (i, rule) in rules.iter().enumerate() {
            let host = &rule.borrow().spec.host;
            if host.starts_with('*') {
                index.wildcards.push(i);
            }
            index.exact.entry(host.clone()).or_default().push(i);
        }
        index
    }

    /// The rules of `rules` (the slice the index was built from) that apply to `host`: those
    /// for exactly it, else those for the longest wildcard matching it; in slice order.
    pub fn for_host<'a, R: Borrow<Resource<DestinationRule>>>(
        &self,
        rules: &'a [R],
        host: &str,
    ) -> Vec<&'a Resource<DestinationRule>> {
        let at = |i: &usize| rules[*i].borrow();
        if let Some(exact) = self.exact.get(host) {
            return exact.iter().map(at).collect();
        }
        let wildcards: Vec<_> = self
            .wildcards
            .iter()
            .map(at)
            .filter(|dr| host_matches(&dr.spec.host, host))
            .collect();
        let longest = wildcards.iter().map(|dr| dr.spec.host.len()).max();
        wildcards
            .into_iter()
            .filter(|dr| Some(dr.spec.host.len()) == longest)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::meta::ObjectMeta;

    fn rule(name: &str, host: &str) -> Resource<DestinationRule> {
        Resource {
            meta: ObjectMeta {
                name: name.into(),
                ..Default::default()
            },
            spec: DestinationRule {
                host: host.into(),
                ..Default::default()
            },
            file: Default::default(),
        }
    }

    #[test]
    fn the_rules_for_a_host_are_the_exact_ones_else_the_longest_matching_wildcard() {
        let rules = [
            rule("any", "*"),
            rule("wide", "*.example.com"),
            rule("narrow", "*.api.example.com"),
            rule("exact", "a.api.example.com"),
            rule("exact-too", "a.api.example.com"),
        ];
        let by_host = RulesByHost::new(&rules);
        let names = |host: &str| -> Vec<String> {
            let found = by_host.for_host(&rules, host);
            found.iter().map(|r| r.meta.name.clone()).collect()
        };
        assert_eq!(names("a.api.example.com"), ["exact", "exact-too"]);
        assert_eq!(names("b.api.example.com"), ["narrow"]);
        assert_eq!(names("b.example.com"), ["wide"]);
        assert_eq!(names("example.org"), ["any"]);
        assert_eq!(
            names("*.example.com"),
            ["wide"],
            "a wildcard host finds its own rule"
        );
    }
}
