use super::super::{IstioMetrics, Reporter, SourceIdentity};
use super::*;
use crate::config::WorkloadMetadata;

fn identity() -> SourceIdentity {
    SourceIdentity {
        workload: "productpage-v1".into(),
        namespace: "bookinfo".into(),
        app: Some("productpage".into()),
        version: Some("v1".into()),
    }
}

fn ratings() -> WorkloadMetadata {
    WorkloadMetadata {
        workload: "ratings-v1".into(),
        namespace: "bookinfo".into(),
        canonical_service: "ratings".into(),
        canonical_revision: "v1".into(),
        cluster: String::new(),
        app: "ratings".into(),
        version: "v1".into(),
    }
}

fn flags_label(bits: u16) -> String {
    match bits {
        0 => "-".into(),
        8 => "UF".into(),
        other => format!("F{other}"),
    }
}

/// The sample lines (no comments) of one metric name, exactly.
fn lines<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .collect()
}

const SOURCE_LABELS: &str = "reporter=\"source\",source_workload=\"productpage-v1\",\
source_canonical_service=\"productpage\",source_canonical_revision=\"v1\",\
source_workload_namespace=\"bookinfo\",source_principal=\"unknown\",source_app=\"productpage\",\
source_version=\"v1\",source_cluster=\"unknown\",destination_workload=\"ratings-v1\",\
destination_workload_namespace=\"bookinfo\",destination_principal=\"unknown\",\
destination_app=\"ratings\",destination_version=\"v1\",\
destination_service=\"ratings.bookinfo.svc.cluster.local\",\
destination_canonical_service=\"ratings\",destination_canonical_revision=\"v1\",\
destination_service_name=\"ratings\",destination_service_namespace=\"bookinfo\",\
destination_cluster=\"unknown\",request_protocol=\"tcp\"";

#[test]
fn outbound_connections_render_as_istios_source_report() {
    let m = IstioMetrics::new(&identity());
    let tcp = m.tcp(
        "outbound|9080||ratings.bookinfo.svc.cluster.local",
        Some(&ratings()),
        Reporter::Source,
    );
    for _ in 0..3 {
        tcp.opened();
    }
    tcp.bytes(100, 40);
    tcp.bytes(20, 0);
    tcp.closed(0, flags_label);
    tcp.closed(0, flags_label);
    tcp.closed(8, flags_label);

    let text = m.render();
    let ok = format!("{SOURCE_LABELS},response_flags=\"-\",connection_security_policy=\"unknown\"");
    assert_eq!(
        lines(&text, CONNECTIONS_OPENED),
        [format!("{CONNECTIONS_OPENED}{{{ok}}} 3")],
        "{text}"
    );
    assert_eq!(
        lines(&text, SENT_BYTES),
        [format!("{SENT_BYTES}{{{ok}}} 120")],
        "{text}"
    );
    assert_eq!(
        lines(&text, RECEIVED_BYTES),
        [format!("{RECEIVED_BYTES}{{{ok}}} 40")],
        "{text}"
    );
    let mut closed = lines(&text, CONNECTIONS_CLOSED);
    closed.sort_unstable();
    let uf =
        format!("{SOURCE_LABELS},response_flags=\"UF\",connection_security_policy=\"unknown\"");
    let mut want = [
        format!("{CONNECTIONS_CLOSED}{{{ok}}} 2"),
        format!("{CONNECTIONS_CLOSED}{{{uf}}} 1"),
    ];
    want.sort_unstable();
    assert_eq!(closed, want, "{text}");
    for name in [
        CONNECTIONS_OPENED,
        CONNECTIONS_CLOSED,
        SENT_BYTES,
        RECEIVED_BYTES,
    ] {
        assert!(text.contains(&format!("# TYPE {name} counter")), "{text}");
    }
}

#[test]
fn inbound_connections_report_the_proxy_as_destination_and_the_caller_as_unknown() {
    let m = IstioMetrics::new(&identity());
    let tcp = m.tcp(
        "inbound|9080||productpage.bookinfo.svc.cluster.local",
        None,
        Reporter::Destination,
    );
    tcp.opened();
    tcp.bytes(7, 5);
    tcp.closed(0, flags_label);
    let text = m.render();
    let want = "reporter=\"destination\",source_workload=\"unknown\",\
source_canonical_service=\"unknown\",source_canonical_revision=\"latest\",\
source_workload_namespace=\"unknown\",source_principal=\"unknown\",source_app=\"unknown\",\
source_version=\"unknown\",source_cluster=\"unknown\",destination_workload=\"productpage-v1\",\
destination_workload_namespace=\"bookinfo\",destination_principal=\"unknown\",\
destination_app=\"productpage\",destination_version=\"v1\",\
destination_service=\"productpage.bookinfo.svc.cluster.local\",\
destination_canonical_service=\"productpage\",destination_canonical_revision=\"v1\",\
destination_service_name=\"productpage\",destination_service_namespace=\"bookinfo\",\
destination_cluster=\"unknown\",request_protocol=\"tcp\",response_flags=\"-\",\
connection_security_policy=\"none\"";
    for (name, value) in [
        (CONNECTIONS_OPENED, 1),
        (CONNECTIONS_CLOSED, 1),
        (SENT_BYTES, 7),
        (RECEIVED_BYTES, 5),
    ] {
        assert_eq!(
            lines(&text, name),
            [format!("{name}{{{want}}} {value}")],
            "{text}"
        );
    }
}

/// As Istio's inbound stats do without service metadata on the inbound cluster: the
/// workload's canonical service names the service, in the workload's namespace.
#[test]
fn an_inbound_cluster_without_a_host_names_the_workloads_canonical_service() {
    let m = IstioMetrics::new(&identity());
    let tcp = m.tcp("inbound|9080||", None, Reporter::Destination);
    tcp.opened();
    let text = m.render();
    let line = lines(&text, CONNECTIONS_OPENED);
    assert_eq!(line.len(), 1, "{text}");
    for want in [
        "destination_service=\"productpage\"",
        "destination_service_name=\"productpage\"",
        "destination_service_namespace=\"bookinfo\"",
        "destination_workload=\"productpage-v1\"",
    ] {
        assert!(line[0].contains(want), "{want} in {}", line[0]);
    }
}

#[test]
fn empty_byte_reports_leave_the_counters_as_they_were() {
    let m = IstioMetrics::new(&identity());
    let tcp = m.tcp("outbound|9080||ratings", None, Reporter::Source);
    tcp.bytes(0, 0);
    let text = m.render();
    assert!(lines(&text, SENT_BYTES)[0].ends_with(" 0"), "{text}");
    assert!(lines(&text, CONNECTIONS_CLOSED).is_empty(), "{text}");
}
