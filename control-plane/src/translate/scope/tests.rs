//! Scoping: what a proxy is sent under a Sidecar and `exportTo`, and that the shared
//! translation stays shared.

use super::super::tests::{decode, mesh, node, BOOKINFO};
use super::super::translate;
use super::*;
use xds_protos::pb::envoy::config::route::v3::RouteConfiguration;
use xds_protos::snapshot::Resources;
use xds_protos::type_url::{CLUSTER, ENDPOINT, ROUTE};

fn names(r: &Resources, type_url: &str) -> Vec<String> {
    r.of_type(type_url)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn vhosts(r: &Resources) -> Vec<String> {
    let rc: RouteConfiguration = decode(r, ROUTE, "http_proxy");
    rc.virtual_hosts.into_iter().map(|v| v.name).collect()
}

fn labelled(namespace: &str, app: &str) -> NodeIdentity {
    let mut n = node(namespace);
    n.labels = [("app".to_string(), app.to_string())].into();
    n
}

/// Both translations, checked equal: what a session is sent is what a fresh one gives.
fn resources(m: &MeshSnapshot, n: &NodeIdentity) -> Resources {
    let shared = m.generate_shared(n);
    assert_eq!(shared, translate(m, n), "{n:?}");
    shared
}

const ONLY_OWN_NAMESPACE: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: ["./*"]
"#;

#[test]
fn without_sidecar_or_export_limits_a_proxy_gets_everything_shared() {
    let m = mesh(&[BOOKINFO]);
    let r = resources(&m, &node("default"));
    let other = resources(&m, &node("prod"));
    for t in [CLUSTER, ENDPOINT] {
        assert!(Arc::ptr_eq(
            r.shared_of_type(t).unwrap(),
            other.shared_of_type(t).unwrap()
        ));
    }
}

#[test]
fn a_namespace_sidecar_limits_clusters_endpoints_and_routes() {
    let m = mesh(&[BOOKINFO, ONLY_OWN_NAMESPACE]);
    let r = resources(&m, &node("default"));
    assert_eq!(
        names(&r, CLUSTER),
        [
            "outbound|443||api.example.com",
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v2|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        ]
    );
    assert_eq!(
        names(&r, ENDPOINT),
        [
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v2|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        ]
    );
    assert_eq!(
        vhosts(&r),
        [
            "api.example.com:443",
            "reviews.default.svc.cluster.local:9080"
        ]
    );
    // The resources are the shared ones, picked by name, not copies.
    let unscoped = resources(&m, &node("prod"));
    let clusters = unscoped.shared_of_type(CLUSTER).unwrap();
    for (name, res) in r.shared_of_type(CLUSTER).unwrap().iter() {
        assert!(Arc::ptr_eq(res, &clusters[name]), "{name} was copied");
    }
    // A proxy of another namespace has no Sidecar: everything.
    let prod = resources(&m, &node("prod"));
    assert!(names(&prod, CLUSTER).contains(&"outbound|80||greeter.prod.svc.cluster.local".into()));
}

#[test]
fn a_selected_sidecar_wins_and_the_class_key_holds_it() {
    let narrow = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings-only-greeter, namespace: default}
spec:
  workloadSelector: {labels: {app: ratings}}
  egress:
  - hosts: ["prod/greeter.prod.svc.cluster.local"]
"#;
    let m = mesh(&[BOOKINFO, ONLY_OWN_NAMESPACE, narrow]);
    let ratings = resources(&m, &labelled("default", "ratings"));
    assert_eq!(
        names(&ratings, CLUSTER),
        ["outbound|80||greeter.prod.svc.cluster.local"]
    );
    assert_eq!(vhosts(&ratings), ["greeter.prod.svc.cluster.local:80"]);
    let other = resources(&m, &labelled("default", "productpage"));
    assert_eq!(names(&other, CLUSTER).len(), 4);
    // Two proxies of one class share the maps; the classes differ by the Sidecar.
    let again = m.generate_shared(&labelled("default", "ratings"));
    assert!(Arc::ptr_eq(
        ratings.shared_of_type(CLUSTER).unwrap(),
        again.shared_of_type(CLUSTER).unwrap()
    ));
    assert_ne!(
        m.route_class(&labelled("default", "ratings")),
        m.route_class(&labelled("default", "productpage"))
    );
    assert_eq!(m.translation_counts().routes, 2);
}

#[test]
fn the_root_namespace_sidecar_is_the_mesh_default() {
    let mesh_wide = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress:
  - hosts: ["~/*"]
"#;
    let m = mesh(&[BOOKINFO, ONLY_OWN_NAMESPACE, mesh_wide]);
    // `~/*`: nothing at all for prod, which has no Sidecar of its own.
    let prod = resources(&m, &node("prod"));
    assert!(names(&prod, CLUSTER).is_empty());
    assert!(vhosts(&prod).is_empty());
    assert_eq!(names(&resources(&m, &node("default")), CLUSTER).len(), 4);
}

#[test]
fn export_to_hides_services_virtual_services_and_destination_rules() {
    let private = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc, namespace: prod}
spec:
  hosts: [greeter.prod.svc.cluster.local]
  ports: [{number: 80, name: grpc, protocol: GRPC, targetPort: 50051}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.9}]
  exportTo: ["."]
"#;
    let bookinfo = BOOKINFO.replace(
        "kind: DestinationRule\nmetadata: {name: reviews, namespace: default}\nspec:\n",
        "kind: DestinationRule\nmetadata: {name: reviews, namespace: default}\nspec:\n  exportTo: [\".\", test]\n",
    );
    let bookinfo = bookinfo.replace(
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: grpc, namespace: prod}",
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: unused, namespace: prod}",
    );
    let bookinfo = bookinfo.replace("greeter.prod", "unused.prod");
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  exportTo: ["."]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
"#;
    let m = mesh(&[&bookinfo, private, vs]);
    let greeter = "outbound|80||greeter.prod.svc.cluster.local".to_string();
    let subset = "outbound|9080|v1|reviews.default.svc.cluster.local".to_string();

    let default = resources(&m, &node("default"));
    assert!(!names(&default, CLUSTER).contains(&greeter));
    assert!(names(&default, CLUSTER).contains(&subset));
    let prod = resources(&m, &node("prod"));
    assert!(names(&prod, CLUSTER).contains(&greeter));
    // The DestinationRule is not exported to prod: no subset clusters there, and the
    // VirtualService (exported to default only) does not route prod's requests to v1.
    assert!(!names(&prod, CLUSTER).contains(&subset));
    let rc: RouteConfiguration = decode(&prod, ROUTE, "http_proxy");
    let reviews = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "reviews.default.svc.cluster.local:9080")
        .expect("reviews is exported everywhere");
    let text = format!("{reviews:?}");
    assert!(!text.contains("|v1|"), "{text}");
    let rc: RouteConfiguration = decode(&default, ROUTE, "http_proxy");
    assert!(format!("{rc:?}").contains("|v1|"));
    // `test` sees the rule: its own translation of the clusters, with the subsets.
    assert!(names(&resources(&m, &node("test")), CLUSTER).contains(&subset));
}

#[test]
fn a_selected_virtual_service_brings_its_destinations() {
    let sidecar = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: ["./api.example.com"]
"#;
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  http:
  - match: [{uri: {prefix: /greet}}]
    route: [{destination: {host: greeter.prod.svc.cluster.local}}]
  - route: [{destination: {host: api.example.com}}]
"#;
    let m = mesh(&[BOOKINFO, sidecar, vs]);
    let r = resources(&m, &node("default"));
    assert_eq!(
        names(&r, CLUSTER),
        [
            "outbound|443||api.example.com",
            "outbound|80||greeter.prod.svc.cluster.local",
        ]
    );
}

#[test]
fn cluster_names_map_to_their_service() {
    assert_eq!(
        service_of("outbound|9080|v1|reviews.default.svc.cluster.local"),
        Some("reviews.default.svc.cluster.local")
    );
    assert_eq!(service_of("outbound|80||a.b"), Some("a.b"));
    assert_eq!(service_of("opentelemetry|4317||collector"), None);
}

#[test]
fn a_sidecars_port_listeners_are_those_of_the_hosts_its_scope_reaches() {
    use xds_protos::node::ProxyMode;
    use xds_protos::type_url::LISTENER;
    let m = mesh(&[BOOKINFO, ONLY_OWN_NAMESPACE]);
    let sidecar = |namespace: &str| NodeIdentity {
        mode: ProxyMode::Sidecar,
        ip: Some("10.99.0.1".into()),
        ..node(namespace)
    };
    let scoped = resources(&m, &sidecar("default"));
    let everything = resources(&m, &sidecar("prod"));
    let listeners = |r: &Resources| names(r, LISTENER);
    // greeter (prod, port 80) is outside default's Sidecar: no port listener for it, as
    // istiod builds none; prod's sidecar, without a Sidecar, has one.
    assert!(
        !listeners(&scoped).contains(&"0.0.0.0_80".to_string()),
        "{:?}",
        listeners(&scoped)
    );
    assert!(
        listeners(&everything).contains(&"0.0.0.0_80".to_string()),
        "{:?}",
        listeners(&everything)
    );
    // What the scope reaches keeps its listener.
    assert!(listeners(&scoped).contains(&"0.0.0.0_9080".to_string()));
    // Every listener's cluster is one the proxy has.
    let clusters = names(&scoped, CLUSTER);
    let listener_map = scoped.shared_of_type(LISTENER).unwrap();
    for (name, l) in listener_map.iter() {
        let text = String::from_utf8_lossy(&l.encoded).into_owned();
        for c in text
            .split(|ch: char| !(ch.is_ascii_graphic()))
            .filter(|w| w.starts_with("outbound|"))
        {
            assert!(
                clusters.iter().any(|k| c.starts_with(k.as_str())),
                "{name} names {c}, which the proxy lacks"
            );
        }
    }
}
