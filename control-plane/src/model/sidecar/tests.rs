use super::*;
use crate::model::{ConfigSet, Resource};
use std::collections::BTreeMap;

fn host(text: &str) -> EgressHost {
    match EgressHost::parse(text) {
        Ok(h) => h,
        Err(e) => panic!("{text}: {e}"),
    }
}

#[test]
fn export_to_follows_istio() {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Empty is everywhere.
    assert!(exported_to(&[], "prod", "default"));
    assert!(exported_to(&v(&["*"]), "prod", "default"));
    assert!(exported_to(&v(&["."]), "prod", "prod"));
    assert!(!exported_to(&v(&["."]), "prod", "default"));
    assert!(!exported_to(&v(&["~"]), "prod", "prod"));
    assert!(exported_to(&v(&["default", "."]), "prod", "default"));
    assert!(exported_to(&v(&["default", "."]), "prod", "prod"));
    assert!(!exported_to(&v(&["default"]), "prod", "prod"));
}

#[test]
fn egress_hosts_parse_and_refuse() {
    assert_eq!(host("./*").namespace, EgressNamespace::Own);
    assert_eq!(host("*/*.example.com").namespace, EgressNamespace::Any);
    assert_eq!(host("~/*").namespace, EgressNamespace::None);
    assert_eq!(
        host("prod/reviews.prod.svc.cluster.local").namespace,
        EgressNamespace::Named("prod".into())
    );
    for bad in [
        "reviews.prod.svc.cluster.local",
        "Prod/*",
        "/*",
        "./",
        "./a*.example.com",
        "./*.*.example.com",
        "./bad_name.com",
    ] {
        assert!(EgressHost::parse(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn egress_host_namespace_semantics() {
    let reviews = "reviews.prod.svc.cluster.local";
    // `.` is the Sidecar's namespace, not the host's.
    assert!(host("./*").covers("prod", "prod", reviews));
    assert!(!host("./*").covers("default", "prod", reviews));
    assert!(host("*/*").covers("default", "prod", reviews));
    assert!(host("prod/*").covers("default", "prod", reviews));
    assert!(!host("test/*").covers("default", "prod", reviews));
    // `~` matches nothing, whatever the name.
    assert!(!host("~/*").covers("prod", "prod", reviews));
}

#[test]
fn egress_host_name_semantics() {
    assert!(host("*/reviews.prod.svc.cluster.local").covers(
        "default",
        "prod",
        "reviews.prod.svc.cluster.local"
    ));
    assert!(!host("*/reviews.prod.svc.cluster.local").covers(
        "default",
        "prod",
        "ratings.prod.svc.cluster.local"
    ));
    assert!(host("*/*.prod.svc.cluster.local").covers(
        "default",
        "prod",
        "ratings.prod.svc.cluster.local"
    ));
    assert!(!host("*/*.example.com").covers("default", "ext", "example.com"));
    // A wildcard VirtualService host is covered by a name it matches.
    assert!(host("*/api.example.com").covers("default", "ext", "*.example.com"));
    assert!(!host("*/api.example.org").covers("default", "ext", "*.example.com"));
}

#[test]
fn the_narrowest_sidecar_applies() {
    let sidecar = |ns: &str, name: &str, app: Option<&str>| {
        let spec = Sidecar {
            workload_selector: app.map(|a| WorkloadSelector {
                labels: [("app".to_string(), a.to_string())].into(),
            }),
            ..Default::default()
        };
        std::sync::Arc::new(Resource::new(ns, name, spec))
    };
    let config = ConfigSet {
        sidecars: vec![
            sidecar("default", "a-reviews", Some("reviews")),
            sidecar("default", "default", None),
            sidecar("istio-system", "default", None),
            sidecar("istio-system", "z", Some("reviews")),
        ],
        ..ConfigSet::default()
    };
    let labels = |app: &str| BTreeMap::from([("app".to_string(), app.to_string())]);
    let pick = |ns: &str, app: &str| {
        config
            .sidecar_for(ns, &labels(app), "istio-system")
            .map(|r| format!("{}/{}", r.meta.namespace, r.meta.name))
    };
    assert_eq!(
        pick("default", "reviews").as_deref(),
        Some("default/a-reviews")
    );
    assert_eq!(
        pick("default", "ratings").as_deref(),
        Some("default/default")
    );
    // Another namespace falls back to the mesh-wide default; a selector in the root namespace
    // selects nothing elsewhere.
    assert_eq!(
        pick("prod", "reviews").as_deref(),
        Some("istio-system/default")
    );
    let without_root = ConfigSet {
        sidecars: config.sidecars[..2].to_vec(),
        ..ConfigSet::default()
    };
    assert_eq!(
        without_root.sidecar_for("prod", &labels("x"), "istio-system"),
        None
    );
}
