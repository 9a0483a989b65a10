use super::labels::fixed_labels;
use super::*;

fn identity() -> SourceIdentity {
    SourceIdentity {
        workload: "productpage-v1".into(),
        namespace: "bookinfo".into(),
        app: Some("productpage".into()),
        version: None,
    }
}

fn sample(status: u16) -> RequestSample {
    RequestSample {
        status,
        flags: 0,
        flags_label: |bits| {
            if bits == 0 {
                "-".into()
            } else {
                format!("F{bits}")
            }
        },
        grpc: false,
        grpc_status: None,
        duration_ms: 3.0,
        request_bytes: 0,
        response_bytes: 120,
    }
}

/// The fixed labels of outbound traffic to `cluster` answered by `workload`.
fn destination_labels(cluster: Option<&str>, workload: Option<&WorkloadMetadata>) -> Vec<Label> {
    fixed_labels(Reporter::Source, &identity(), cluster, workload)
}

fn source_labels(own: &SourceIdentity) -> Vec<Label> {
    fixed_labels(Reporter::Source, own, None, None)
}

fn label(labels: &[Label], key: &str) -> String {
    labels
        .iter()
        .find(|l| l.key() == key)
        .map(|l| l.value().to_string())
        .unwrap_or_else(|| panic!("no label {key}"))
}

/// The sample lines (no comments) of one metric name, exactly.
fn lines<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .collect()
}

#[test]
fn outbound_kubernetes_service_names_service_namespace_and_host() {
    let l = destination_labels(
        Some("outbound|9080|v1|reviews.bookinfo.svc.cluster.local"),
        None,
    );
    assert_eq!(
        label(&l, "destination_service"),
        "reviews.bookinfo.svc.cluster.local"
    );
    assert_eq!(label(&l, "destination_service_name"), "reviews");
    assert_eq!(label(&l, "destination_service_namespace"), "bookinfo");
    assert_eq!(label(&l, "destination_workload"), "unknown");
    assert_eq!(label(&l, "destination_version"), "unknown");
}

#[test]
fn other_hosts_and_clusters_name_what_they_can() {
    let l = destination_labels(Some("outbound|443||api.example.com"), None);
    assert_eq!(label(&l, "destination_service"), "api.example.com");
    assert_eq!(label(&l, "destination_service_name"), "api.example.com");
    assert_eq!(label(&l, "destination_service_namespace"), "unknown");
    let l = destination_labels(Some("PassthroughCluster"), None);
    assert_eq!(label(&l, "destination_service"), "unknown");
    assert_eq!(label(&l, "destination_service_name"), "PassthroughCluster");
    let l = destination_labels(None, None);
    assert_eq!(label(&l, "destination_service_name"), "unknown");
}

#[test]
fn source_labels_come_from_the_identity_and_unknown_fills_gaps() {
    let l = source_labels(&identity());
    assert_eq!(label(&l, "reporter"), "source");
    assert_eq!(label(&l, "source_workload"), "productpage-v1");
    assert_eq!(label(&l, "source_workload_namespace"), "bookinfo");
    assert_eq!(label(&l, "source_app"), "productpage");
    assert_eq!(label(&l, "source_version"), "unknown");
    assert_eq!(label(&l, "source_principal"), "unknown");
}

#[test]
fn series_carry_istios_labels_in_order() {
    let m = IstioMetrics::new(&identity());
    let d = m.destination("outbound|9080||reviews.bookinfo.svc.cluster.local", None);
    let keys: Vec<String> = d
        .series_labels(&sample(200))
        .iter()
        .map(|l| l.key().to_string())
        .collect();
    let istio = [
        "reporter",
        "source_workload",
        "source_canonical_service",
        "source_canonical_revision",
        "source_workload_namespace",
        "source_principal",
        "source_app",
        "source_version",
        "source_cluster",
        "destination_workload",
        "destination_workload_namespace",
        "destination_principal",
        "destination_app",
        "destination_version",
        "destination_service",
        "destination_canonical_service",
        "destination_canonical_revision",
        "destination_service_name",
        "destination_service_namespace",
        "destination_cluster",
        "request_protocol",
        "response_code",
        "grpc_response_status",
        "response_flags",
        "connection_security_policy",
    ];
    assert_eq!(keys, istio);
}

#[test]
fn counts_are_exact_per_label_set_and_render_as_prometheus() {
    let m = IstioMetrics::new(&identity());
    let d = m.destination("outbound|9080||reviews.bookinfo.svc.cluster.local", None);
    for _ in 0..7 {
        d.record(&m, &sample(200));
    }
    let mut failed = sample(503);
    failed.flags = 4;
    for _ in 0..3 {
        d.record(&m, &failed);
    }
    let mut grpc = sample(200);
    grpc.grpc = true;
    grpc.grpc_status = Some(14);
    d.record(&m, &grpc);
    m.unrouted().record(&m, &sample(404));

    let text = m.render();
    assert!(
        text.contains("# TYPE istio_requests_total counter"),
        "{text}"
    );
    let totals = lines(&text, REQUESTS_TOTAL);
    assert_eq!(totals.len(), 4, "{text}");
    let find = |needles: &[&str]| -> String {
        let hits: Vec<_> = totals
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .collect();
        assert_eq!(hits.len(), 1, "{needles:?} in {text}");
        hits[0].rsplit(' ').next().unwrap_or_default().to_string()
    };
    let ok = [
        "response_code=\"200\"",
        "response_flags=\"-\"",
        "request_protocol=\"http\"",
    ];
    assert_eq!(find(&ok), "7");
    assert_eq!(
        find(&["response_code=\"503\"", "response_flags=\"F4\""]),
        "3"
    );
    assert_eq!(
        find(&["request_protocol=\"grpc\"", "grpc_response_status=\"14\""]),
        "1"
    );
    assert_eq!(
        find(&["response_code=\"404\"", "destination_service=\"unknown\""]),
        "1"
    );
}

#[test]
fn histograms_use_istios_buckets_and_are_cumulative() {
    let m = IstioMetrics::new(&identity());
    let d = m.destination("outbound|9080||reviews.bookinfo.svc.cluster.local", None);
    for ms in [0.2, 3.0, 3.0, 700.0] {
        let mut s = sample(200);
        s.duration_ms = ms;
        d.record(&m, &s);
    }
    let text = m.render();
    assert!(
        text.contains("# TYPE istio_request_duration_milliseconds histogram"),
        "{text}"
    );
    let buckets = lines(&text, "istio_request_duration_milliseconds_bucket");
    assert_eq!(buckets.len(), BUCKETS.len() + 1, "{text}");
    let count_at = |le: &str| -> String {
        let needle = format!("le=\"{le}\"");
        let line = buckets
            .iter()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("no bucket {le} in {text}"));
        line.rsplit(' ').next().unwrap_or_default().to_string()
    };
    assert_eq!(count_at("0.5"), "1");
    assert_eq!(count_at("1"), "1");
    assert_eq!(count_at("5"), "3");
    assert_eq!(count_at("500"), "3");
    assert_eq!(count_at("1000"), "4");
    assert_eq!(count_at("3600000"), "4");
    assert_eq!(count_at("+Inf"), "4");
    let count = lines(&text, "istio_request_duration_milliseconds_count");
    assert_eq!(count.len(), 1);
    assert!(count[0].ends_with(" 4"), "{text}");
    let sum = lines(&text, "istio_request_duration_milliseconds_sum");
    assert!(sum[0].ends_with(" 706.2"), "{text}");
    for name in [REQUEST_BYTES, RESPONSE_BYTES] {
        assert!(text.contains(&format!("# TYPE {name} histogram")), "{text}");
    }
}

#[test]
fn the_label_key_tells_every_label_set_apart() {
    let base = sample(200);
    let mut keys = std::collections::HashSet::new();
    for status in [200, 503] {
        for flags in [0, 1, 0x8000] {
            for grpc in [false, true] {
                for grpc_status in [None, Some(0), Some(16)] {
                    let s = RequestSample {
                        status,
                        flags,
                        grpc,
                        grpc_status,
                        ..base
                    };
                    assert!(keys.insert(s.key()));
                }
            }
        }
    }
}

#[test]
fn the_answering_workload_names_the_destination_and_unknown_fills_the_gaps() {
    let workload = WorkloadMetadata {
        workload: "reviews-v2".into(),
        namespace: "bookinfo".into(),
        canonical_service: "reviews".into(),
        canonical_revision: "v2".into(),
        cluster: String::new(),
        app: "reviews".into(),
        version: "v2".into(),
    };
    let l = destination_labels(
        Some("outbound|9080||reviews.bookinfo.svc.cluster.local"),
        Some(&workload),
    );
    for (key, value) in [
        ("destination_workload", "reviews-v2"),
        ("destination_workload_namespace", "bookinfo"),
        ("destination_app", "reviews"),
        ("destination_version", "v2"),
        ("destination_canonical_service", "reviews"),
        ("destination_canonical_revision", "v2"),
        ("destination_cluster", "unknown"),
        ("destination_service_name", "reviews"),
    ] {
        assert_eq!(label(&l, key), value, "{key}");
    }
    let l = destination_labels(
        Some("outbound|9080||reviews.bookinfo.svc.cluster.local"),
        None,
    );
    assert_eq!(label(&l, "destination_canonical_service"), "unknown");
    // Istio's canonical revision of a workload it knows nothing of.
    assert_eq!(label(&l, "destination_canonical_revision"), "latest");
}

#[test]
fn source_canonical_labels_default_as_istios_do() {
    let l = source_labels(&identity());
    assert_eq!(label(&l, "source_canonical_service"), "productpage");
    assert_eq!(label(&l, "source_canonical_revision"), "latest");
    let bare = SourceIdentity {
        workload: "batch".into(),
        namespace: "jobs".into(),
        app: None,
        version: Some("v3".into()),
    };
    let l = source_labels(&bare);
    assert_eq!(label(&l, "source_canonical_service"), "batch");
    assert_eq!(label(&l, "source_canonical_revision"), "v3");
}

#[test]
fn inbound_requests_report_the_proxy_as_destination() {
    let m = IstioMetrics::new(&identity());
    let d = m.inbound("inbound|9080||productpage.bookinfo.svc.cluster.local");
    let l = d.series_labels(&sample(200));
    for (key, value) in [
        ("reporter", "destination"),
        ("source_workload", "unknown"),
        ("source_workload_namespace", "unknown"),
        ("source_app", "unknown"),
        ("source_canonical_service", "unknown"),
        ("source_canonical_revision", "latest"),
        ("destination_workload", "productpage-v1"),
        ("destination_workload_namespace", "bookinfo"),
        ("destination_app", "productpage"),
        ("destination_version", "unknown"),
        ("destination_canonical_service", "productpage"),
        ("destination_canonical_revision", "latest"),
        (
            "destination_service",
            "productpage.bookinfo.svc.cluster.local",
        ),
        ("destination_service_name", "productpage"),
        ("destination_service_namespace", "bookinfo"),
        // No mTLS: Istio's destination reports `none`, its source `unknown`.
        ("connection_security_policy", "none"),
    ] {
        assert_eq!(label(&l, key), value, "{key}");
    }
    let outbound = m.destination("outbound|9080||reviews.bookinfo.svc.cluster.local", None);
    assert_eq!(
        label(
            &outbound.series_labels(&sample(200)),
            "connection_security_policy"
        ),
        "unknown"
    );
}

#[test]
fn inbound_and_outbound_requests_count_in_separate_series() {
    let m = IstioMetrics::new(&identity());
    let inbound = m.inbound("inbound|9080||");
    inbound.record(&m, &sample(200));
    inbound.record(&m, &sample(200));
    m.inbound_unrouted().record(&m, &sample(404));
    m.destination("outbound|9080||reviews.bookinfo.svc.cluster.local", None)
        .record(&m, &sample(200));
    let text = m.render();
    let totals = lines(&text, REQUESTS_TOTAL);
    assert_eq!(totals.len(), 3, "{text}");
    let count = |needles: &[&str]| -> Vec<&str> {
        totals
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(|l| l.rsplit(' ').next().unwrap_or_default())
            .collect()
    };
    assert_eq!(
        count(&["reporter=\"destination\"", "response_code=\"200\""]),
        ["2"]
    );
    assert_eq!(
        count(&["reporter=\"destination\"", "response_code=\"404\""]),
        ["1"]
    );
    assert_eq!(count(&["reporter=\"source\""]), ["1"]);
    // An inbound cluster without a host, or no cluster: the service is our workload's
    // canonical service, in our namespace; the workload is ours.
    assert_eq!(
        count(&[
            "reporter=\"destination\"",
            "destination_service=\"productpage\"",
            "destination_service_name=\"productpage\"",
            "destination_service_namespace=\"bookinfo\"",
            "destination_workload=\"productpage-v1\"",
        ])
        .len(),
        2
    );
}

/// Istio's inbound stats filter: istiod turns its `Host` header fallback off on inbound
/// listeners, so the service comes from the inbound cluster, and without one the workload's
/// canonical service stands in; the namespace is always the workload's. A passthrough cluster
/// names itself, as on the source side.
#[test]
fn the_destination_names_the_inbound_clusters_service_or_its_own_canonical_service() {
    let service = |own: &SourceIdentity, cluster: Option<&str>| {
        let l = fixed_labels(Reporter::Destination, own, cluster, None);
        [
            label(&l, "destination_service"),
            label(&l, "destination_service_name"),
            label(&l, "destination_service_namespace"),
        ]
    };
    let own = identity();
    assert_eq!(
        service(&own, Some("inbound|9080||")),
        ["productpage", "productpage", "bookinfo"]
    );
    assert_eq!(
        service(&own, None),
        ["productpage", "productpage", "bookinfo"]
    );
    // The cluster's service wins; its namespace does not (Istio reports the workload's).
    assert_eq!(
        service(&own, Some("inbound|9080||details.other.svc.cluster.local")),
        ["details.other.svc.cluster.local", "details", "bookinfo"]
    );
    assert_eq!(
        service(&own, Some("InboundPassthroughClusterIpv4")),
        ["productpage", "InboundPassthroughClusterIpv4", "bookinfo"]
    );
    // No `app` label: the canonical service is the workload's name.
    let bare = SourceIdentity {
        workload: "batch".into(),
        namespace: "jobs".into(),
        app: None,
        version: None,
    };
    assert_eq!(
        service(&bare, Some("inbound|8080||")),
        ["batch", "batch", "jobs"]
    );
    // The source side is unchanged: a cluster without a service names none.
    let l = fixed_labels(Reporter::Source, &own, Some("inbound|9080||"), None);
    assert_eq!(label(&l, "destination_service"), "unknown");
}
