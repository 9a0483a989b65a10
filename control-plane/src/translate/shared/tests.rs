//! The shared translations: equal to a fresh translation, and made once per class.

use super::super::tests::{mesh, node, BOOKINFO};
use super::super::translate;
use super::*;

const CANARY_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: canary-client}}, {sourceNamespace: prod}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#;

fn sidecar(i: usize, namespace: &str, labels: &[(&str, &str)]) -> NodeIdentity {
    let mut n = node(namespace);
    n.id = format!("sidecar-{i}");
    n.workload = format!("w{i}");
    n.admin_addr = Some(format!("127.0.0.1:{}", 20000 + i));
    n.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    n
}

#[test]
fn shared_translation_equals_a_fresh_one_for_every_kind_of_proxy() {
    let m = mesh(&[BOOKINFO, CANARY_VS]);
    let nodes = [
        sidecar(1, "default", &[("app", "canary-client")]),
        sidecar(2, "default", &[("app", "productpage"), ("version", "v1")]),
        sidecar(3, "prod", &[]),
        NodeIdentity::default(),
    ];
    for n in &nodes {
        assert_eq!(m.generate_shared(n), translate(&m, n), "{n:?}");
    }
}

/// The regression test of issue 9: the translation count does not grow with the number of
/// proxies of one class.
#[test]
fn translation_count_does_not_grow_with_proxies_of_one_class() {
    let counts_for = |proxies: usize| {
        let m = mesh(&[BOOKINFO, CANARY_VS]);
        for i in 0..proxies {
            // Different ids, workloads, admin ports and an unrelated label: one class.
            let n = sidecar(
                i,
                "default",
                &[("app", "productpage"), ("pod", &i.to_string())],
            );
            m.generate_shared(&n);
        }
        m.translation_counts()
    };
    let one = counts_for(1);
    assert_eq!(
        one,
        TranslationCounts {
            node_independent: 1,
            listeners: 1,
            routes: 1,
            inbound: 0,
        }
    );
    assert_eq!(counts_for(50), one);
}

#[test]
fn each_class_is_translated_once_and_resources_are_shared() {
    let m = mesh(&[BOOKINFO, CANARY_VS]);
    let a = m.generate_shared(&sidecar(1, "default", &[("app", "canary-client")]));
    let b = m.generate_shared(&sidecar(2, "default", &[("app", "productpage")]));
    let c = m.generate_shared(&sidecar(3, "prod", &[("app", "productpage")]));
    let d = m.generate_shared(&sidecar(4, "default", &[("app", "canary-client")]));
    assert_eq!(
        m.translation_counts().routes,
        3,
        "two label classes, two namespaces"
    );
    assert_eq!(m.translation_counts().node_independent, 1);
    for t in [CLUSTER, ENDPOINT, LISTENER] {
        let (x, y) = (a.shared_of_type(t).unwrap(), c.shared_of_type(t).unwrap());
        assert!(Arc::ptr_eq(x, y), "{t} is one map for every proxy");
    }
    assert!(Arc::ptr_eq(
        a.shared_of_type(ROUTE).unwrap(),
        d.shared_of_type(ROUTE).unwrap()
    ));
    assert!(!Arc::ptr_eq(
        a.shared_of_type(ROUTE).unwrap(),
        b.shared_of_type(ROUTE).unwrap()
    ));
    assert_ne!(
        a.of_type(ROUTE),
        b.of_type(ROUTE),
        "the canary block is a's only"
    );
}

#[test]
fn labels_no_source_labels_match_names_do_not_split_classes() {
    let m = mesh(&[BOOKINFO, CANARY_VS]);
    let x = m.route_class(&sidecar(1, "default", &[("app", "a"), ("pod", "1")]));
    let y = m.route_class(&sidecar(2, "default", &[("app", "a"), ("pod", "2")]));
    assert_eq!(x, y);
    assert_eq!(x.labels.len(), 1);
}

#[test]
fn proxies_with_their_own_listener_address_share_routes() {
    let m = mesh(&[BOOKINFO]);
    let mut a = sidecar(1, "default", &[]);
    let mut b = sidecar(2, "default", &[]);
    a.outbound_addr = Some("127.0.0.1:15001".into());
    b.outbound_addr = Some("127.0.0.1:15002".into());
    let (ra, rb) = (m.generate_shared(&a), m.generate_shared(&b));
    assert_ne!(ra.of_type(LISTENER), rb.of_type(LISTENER));
    assert!(Arc::ptr_eq(
        ra.shared_of_type(ROUTE).unwrap(),
        rb.shared_of_type(ROUTE).unwrap()
    ));
    assert_eq!(m.translation_counts().listeners, 2);
    assert_eq!(m.translation_counts().routes, 1);
}

/// A sidecar of `workload` at `ip` in the bookinfo mesh.
fn pod(i: usize, ip: &str) -> NodeIdentity {
    let mut n = sidecar(i, "default", &[("app", "reviews"), ("pod", &i.to_string())]);
    n.mode = xds_protos::node::ProxyMode::Sidecar;
    n.ip = Some(ip.to_string());
    n.outbound_addr = None;
    n
}

#[test]
fn shared_translation_equals_a_fresh_one_for_sidecars() {
    let m = mesh(&[BOOKINFO, CANARY_VS]);
    for n in [pod(1, "127.0.0.1"), pod(2, "127.0.0.2"), pod(3, "10.1.1.1")] {
        assert_eq!(m.generate_shared(&n), translate(&m, &n), "{n:?}");
    }
}

/// Sidecars whose IP-independent inputs are equal share the outbound translation, whatever
/// their IPs; those serving the same ports share the inbound one too.
#[test]
fn sidecars_share_the_outbound_translation_whatever_their_ip() {
    let counts_for = |proxies: usize| {
        let m = mesh(&[BOOKINFO, CANARY_VS]);
        for i in 0..proxies {
            // Every pod at its own IP that no endpoint has: the same (empty) inbound ports.
            m.generate_shared(&pod(i, &format!("10.2.{}.{}", i / 250, i % 250 + 1)));
        }
        m.translation_counts()
    };
    let one = counts_for(1);
    assert_eq!(
        one,
        TranslationCounts {
            node_independent: 1,
            listeners: 1,
            routes: 1,
            inbound: 1,
        }
    );
    assert_eq!(counts_for(50), one);

    // reviews-v1 (127.0.0.1:19082) and reviews-v2 (127.0.0.2:19083) serve different ports:
    // two inbound translations, one outbound.
    let m = mesh(&[BOOKINFO, CANARY_VS]);
    let a = m.generate_shared(&pod(1, "127.0.0.1"));
    let b = m.generate_shared(&pod(2, "127.0.0.2"));
    let counts = m.translation_counts();
    assert_eq!((counts.listeners, counts.inbound, counts.routes), (1, 2, 1));
    assert_ne!(a.of_type(LISTENER), b.of_type(LISTENER));
    assert!(Arc::ptr_eq(
        a.shared_of_type(ROUTE).unwrap(),
        b.shared_of_type(ROUTE).unwrap()
    ));
    assert!(Arc::ptr_eq(
        a.shared_of_type(ENDPOINT).unwrap(),
        b.shared_of_type(ENDPOINT).unwrap()
    ));
    // The same pod again shares every map with its first translation.
    let again = m.generate_shared(&pod(7, "127.0.0.1"));
    for t in [CLUSTER, ENDPOINT, LISTENER, ROUTE] {
        assert!(
            Arc::ptr_eq(
                a.shared_of_type(t).unwrap(),
                again.shared_of_type(t).unwrap()
            ),
            "{t}"
        );
    }
}

#[test]
fn sidecars_and_local_proxies_are_different_classes() {
    let m = mesh(&[BOOKINFO]);
    let local = m.generate_shared(&sidecar(1, "default", &[]));
    let side = m.generate_shared(&pod(2, "10.9.9.9"));
    assert_ne!(local.of_type(ROUTE), side.of_type(ROUTE));
    assert_ne!(local.of_type(LISTENER), side.of_type(LISTENER));
    assert_eq!(m.translation_counts().routes, 2);
    assert_eq!(m.translation_counts().listeners, 2);
}

#[test]
fn with_tracing_sidecars_of_other_workloads_share_clusters_not_the_inbound_listener() {
    let mesh_config = crate::model::parse_mesh_config(
        std::path::Path::new("mesh.yaml"),
        "extensionProviders:\n- name: otel\n  opentelemetry: {service: 127.0.0.1, port: 4317}\n\
         defaultProviders: {tracing: [otel]}\n",
    )
    .expect("mesh config")
    .config;
    let base = mesh(&[BOOKINFO]);
    let m = MeshSnapshot::new(
        base.config,
        super::super::TranslateOptions {
            mesh_config: Arc::new(mesh_config),
            ..Default::default()
        },
    );
    let mut a = pod(1, "127.0.0.1");
    let mut b = pod(2, "127.0.0.1");
    a.labels.insert("app".into(), "reviews".into());
    b.labels.insert("app".into(), "ratings".into());
    let (ra, rb) = (m.generate_shared(&a), m.generate_shared(&b));
    assert_eq!(ra, translate(&m, &a));
    assert_eq!(rb, translate(&m, &b));
    assert!(Arc::ptr_eq(
        ra.shared_of_type(CLUSTER).unwrap(),
        rb.shared_of_type(CLUSTER).unwrap()
    ));
    assert_ne!(
        ra.get(LISTENER, "virtualInbound"),
        rb.get(LISTENER, "virtualInbound"),
        "each reports spans as its own service"
    );
    assert_eq!(m.translation_counts().inbound, 2);
}
