//! The cache without sockets: every way a response can be bad leaves the cache as it was.

use super::*;
use crate::xds::test_protos::{
    any, eds_cluster, endpoints, listener, rds_listener, route_config, static_cluster, undecodable,
};
use std::net::SocketAddr;
use xds_protos::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn listeners(cache: &XdsCache) -> Vec<&str> {
    cache.listeners.keys().map(String::as_str).collect()
}

fn clusters(cache: &XdsCache) -> Vec<&str> {
    cache.clusters.keys().map(String::as_str).collect()
}

/// A cache holding listeners `a` and `b` at version 1.
fn with_two_listeners() -> XdsCache {
    let mut cache = XdsCache::default();
    let applied = cache.apply(
        LISTENER,
        "1",
        &[
            any(LISTENER, &listener("a", None, "svc")),
            any(LISTENER, &listener("b", None, "svc")),
        ],
    );
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    cache
}

#[test]
fn a_good_whole_set_replaces_the_set() {
    let mut cache = with_two_listeners();
    let applied = cache.apply(LISTENER, "2", &[any(LISTENER, &listener("c", None, "svc"))]);
    assert!(applied.error_detail().is_none());
    assert_eq!(listeners(&cache), ["c"]);
    assert_eq!(cache.versions[LISTENER], "2");
}

#[test]
fn one_undecodable_listener_removes_nothing_and_the_readable_ones_apply() {
    let mut cache = with_two_listeners();
    // A wildcard response with "a" changed and one resource that does not decode: "b" is
    // absent, but the unreadable one may have been "b", so nothing is removed.
    let applied = cache.apply(
        LISTENER,
        "2",
        &[
            any(LISTENER, &listener("a", Some(addr(1)), "svc")),
            undecodable(LISTENER),
        ],
    );
    let detail = applied.error_detail().expect("a NACK");
    assert!(detail.contains("resources[1]: cannot decode"), "{detail}");
    assert!(applied.changed);
    assert_eq!(listeners(&cache), ["a", "b"]);
    assert_eq!(cache.listeners["a"].compiled.address, Some(addr(1)));
    assert_eq!(
        cache.versions[LISTENER], "1",
        "the NACK reports the version held whole"
    );
}

#[test]
fn a_listener_that_cannot_be_served_is_refused_and_the_rest_apply() {
    let mut cache = with_two_listeners();
    let a = cache.listeners["a"].compiled.clone();
    let mut bad_a = listener("a", Some(addr(2)), "svc");
    bad_a.listener_filters = vec![Default::default()];
    // "a" is refused (it keeps its last good version), "c" is new, "b" is gone.
    let applied = cache.apply(
        LISTENER,
        "2",
        &[
            any(LISTENER, &bad_a),
            any(LISTENER, &listener("c", None, "svc")),
        ],
    );
    let detail = applied.error_detail().expect("a NACK");
    assert!(
        detail.contains("Listener a: listener_filters[0]"),
        "{detail}"
    );
    assert_eq!(listeners(&cache), ["a", "c"]);
    assert!(Arc::ptr_eq(&cache.listeners["a"].compiled, &a));
    assert_eq!(cache.versions[LISTENER], "1");
}

#[test]
fn a_resource_of_another_type_is_refused_and_nothing_changes() {
    let mut cache = with_two_listeners();
    let applied = cache.apply(
        LISTENER,
        "2",
        &[any(CLUSTER, &static_cluster("a", &[addr(1)]))],
    );
    let detail = applied.error_detail().expect("a NACK");
    assert!(
        detail.contains("resources[0]: type_url: expected") && detail.contains("Cluster"),
        "{detail}"
    );
    assert_eq!(listeners(&cache), ["a", "b"]);
    assert_eq!(cache.versions[LISTENER], "1");
}

#[test]
fn a_name_twice_in_one_response_is_refused_naming_both() {
    let mut cache = with_two_listeners();
    let applied = cache.apply(
        LISTENER,
        "2",
        &[
            any(LISTENER, &listener("c", None, "svc")),
            any(LISTENER, &listener("d", None, "svc")),
            any(LISTENER, &listener("c", None, "other")),
        ],
    );
    let detail = applied.error_detail().expect("a NACK");
    assert!(
        detail.contains(r#"resources[2]: name: "c" repeats resources[0]"#),
        "{detail}"
    );
    // Which "c" was meant is unknown: neither is taken. "d" is; "a" and "b" are gone.
    assert_eq!(listeners(&cache), ["d"]);
}

#[test]
fn a_resource_without_a_name_is_refused() {
    let mut cache = XdsCache::default();
    let applied = cache.apply(CLUSTER, "1", &[any(CLUSTER, &static_cluster("", &[]))]);
    let detail = applied.error_detail().expect("a NACK");
    assert!(
        detail.contains("resources[0]: name: must not be empty"),
        "{detail}"
    );
}

#[test]
fn one_invalid_cluster_is_refused_the_others_apply_and_every_reason_is_reported() {
    let mut cache = XdsCache::default();
    let applied = cache.apply(
        CLUSTER,
        "1",
        &[any(CLUSTER, &static_cluster("old", &[addr(1)]))],
    );
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    let mut bad = static_cluster("bad", &[addr(2)]);
    bad.lb_policy = 9999;
    let applied = cache.apply(
        CLUSTER,
        "2",
        &[
            any(CLUSTER, &static_cluster("new", &[addr(3)])),
            any(CLUSTER, &bad),
            undecodable(CLUSTER),
        ],
    );
    assert_eq!(applied.rejected.len(), 2, "{:?}", applied.rejected);
    let detail = applied.error_detail().unwrap_or_default();
    assert!(
        detail.contains("Cluster bad") && detail.contains("resources[2]"),
        "{detail}"
    );
    // "new" applies; with an unreadable resource in the response, "old" is not removed.
    assert_eq!(clusters(&cache), ["new", "old"]);
    assert_eq!(cache.versions[CLUSTER], "1");
}

#[test]
fn routes_and_endpoints_add_to_what_is_held() {
    let mut cache = XdsCache::default();
    for (name, cluster) in [("r1", "x"), ("r2", "y")] {
        let applied = cache.apply(ROUTE, name, &[any(ROUTE, &route_config(name, cluster))]);
        assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    }
    assert_eq!(cache.routes.len(), 2);
    let applied = cache.apply(
        ENDPOINT,
        "1",
        &[any(ENDPOINT, &endpoints("e1", &[addr(1)]))],
    );
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    // A bad assignment in an EDS response leaves the good one beside it to apply.
    let applied = cache.apply(
        ENDPOINT,
        "2",
        &[
            any(ENDPOINT, &endpoints("e1", &[addr(2)])),
            undecodable(ENDPOINT),
        ],
    );
    assert!(applied.error_detail().is_some());
    assert_eq!(
        cache.endpoints["e1"].encoded,
        endpoints("e1", &[addr(2)]).encode_to_vec()
    );
}

#[test]
fn an_unchanged_resource_keeps_its_compiled_form() {
    let mut cache = with_two_listeners();
    let a = cache.listeners["a"].compiled.clone();
    let applied = cache.apply(
        LISTENER,
        "2",
        &[
            any(LISTENER, &listener("a", None, "svc")),
            any(LISTENER, &listener("b", None, "changed")),
        ],
    );
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    assert!(Arc::ptr_eq(&cache.listeners["a"].compiled, &a));
}

#[test]
fn a_refused_first_response_does_not_count_as_received() {
    let mut cache = XdsCache::default();
    assert!(cache
        .apply(LISTENER, "1", &[undecodable(LISTENER)])
        .error_detail()
        .is_some());
    assert!(cache.apply(CLUSTER, "1", &[]).error_detail().is_none());
    assert!(!cache.is_complete());
    assert!(cache.apply(LISTENER, "2", &[]).error_detail().is_none());
    assert!(cache.is_complete());
}

#[test]
fn completeness_waits_for_what_listeners_and_clusters_refer_to() {
    let mut cache = XdsCache::default();
    let applied = cache.apply(LISTENER, "1", &[any(LISTENER, &rds_listener("l", "r"))]);
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    let applied = cache.apply(CLUSTER, "1", &[any(CLUSTER, &eds_cluster("c"))]);
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    assert_eq!(cache.wanted_routes(), BTreeSet::from(["r".to_string()]));
    assert_eq!(cache.wanted_endpoints(), BTreeSet::from(["c".to_string()]));
    assert!(!cache.is_complete());
    assert!(cache
        .apply(ROUTE, "1", &[any(ROUTE, &route_config("r", "c"))])
        .rejected
        .is_empty());
    assert!(!cache.is_complete());
    assert!(cache
        .apply(ENDPOINT, "1", &[any(ENDPOINT, &endpoints("c", &[addr(1)]))])
        .rejected
        .is_empty());
    assert!(cache.is_complete());
    // Routes and endpoints nobody wants any more are pruned.
    assert!(cache.apply(LISTENER, "2", &[]).rejected.is_empty());
    cache.prune();
    assert!(cache.routes.is_empty());
    assert_eq!(cache.endpoints.len(), 1);
}

#[test]
fn an_unsupported_type_is_refused() {
    let mut cache = XdsCache::default();
    let applied = cache.apply("type.googleapis.com/x.Secret", "1", &[]);
    assert_eq!(
        applied.error_detail().as_deref(),
        Some("unsupported type type.googleapis.com/x.Secret")
    );
}

fn delta_resource(name: &str, version: &str, body: Option<Any>) -> Resource {
    Resource {
        name: name.into(),
        version: version.into(),
        resource: body,
        ..Default::default()
    }
}

#[test]
fn a_delta_response_changes_and_removes_only_what_it_names() {
    let mut cache = with_two_listeners();
    let c = delta_resource("c", "c1", Some(any(LISTENER, &listener("c", None, "svc"))));
    let applied = cache.apply_delta_typed::<Listeners>("2", &[c], &["a".to_string()]);
    assert!(applied.error_detail().is_none() && applied.changed);
    assert_eq!(listeners(&cache), ["b", "c"]);
    assert_eq!(cache.versions[LISTENER], "2");
    let held = cache.held_versions(LISTENER);
    assert_eq!(
        (held["b"].as_str(), held["c"].as_str()),
        ("1", "c1"),
        "each resource keeps the version it came in"
    );
    // The same bytes again under the same name: kept as compiled, at the new version.
    let compiled = cache.listeners["c"].compiled.clone();
    let again = delta_resource("c", "c2", Some(any(LISTENER, &listener("c", None, "svc"))));
    let applied = cache.apply_delta_typed::<Listeners>("3", &[again], &[]);
    assert!(applied.error_detail().is_none());
    assert!(Arc::ptr_eq(&cache.listeners["c"].compiled, &compiled));
    assert_eq!(cache.held_versions(LISTENER)["c"], "c2");
}

#[test]
fn a_delta_resource_is_refused_by_name_and_the_rest_apply() {
    let mut cache = with_two_listeners();
    let b = cache.listeners["b"].compiled.clone();
    let mut expiring = delta_resource("a", "a2", Some(any(LISTENER, &listener("a", None, "x"))));
    expiring.ttl = Some(Default::default());
    let resources = [
        expiring,
        // A heartbeat: weft-proxy keeps resources until removed, so it cannot honour a TTL.
        delta_resource("b", "b2", None),
        // The wrapper names another resource than the one inside.
        delta_resource("d", "d2", Some(any(LISTENER, &listener("e", None, "svc")))),
        delta_resource("c", "c2", Some(any(LISTENER, &listener("c", None, "svc")))),
    ];
    let applied = cache.apply_delta_typed::<Listeners>("2", &resources, &[]);
    let detail = applied.error_detail().expect("a NACK");
    for expected in [
        "resources[0]: ttl: not supported",
        "resources[1]: resource: missing",
        "resources[2]: name: \"d\" holds a resource named \"e\"",
    ] {
        assert!(detail.contains(expected), "{expected} in {detail}");
    }
    assert_eq!(listeners(&cache), ["a", "b", "c"]);
    assert!(Arc::ptr_eq(&cache.listeners["b"].compiled, &b));
    assert_eq!(cache.versions[LISTENER], "1");
}

#[test]
fn ordered_walks_keep_and_find_exactly_the_wanted_names() {
    let mut entries: BTreeMap<String, u8> = ["a", "b", "c", "e", "g"]
        .into_iter()
        .map(|n| (n.to_string(), 0))
        .collect();
    retain_sorted(&mut entries, &BTreeSet::from(["0", "b", "d", "e", "z"]));
    assert_eq!(entries.keys().collect::<Vec<_>>(), ["b", "e"]);
    let held: Vec<String> = ["b", "d", "e"].map(String::from).to_vec();
    assert!(sorted_subset(["b", "e"], held.iter()));
    assert!(sorted_subset([], held.iter()));
    assert!(!sorted_subset(["b", "c"], held.iter()));
    assert!(!sorted_subset(["f"], held.iter()));
}
