//! DestinationRule connection pools and outlier detection in the clusters, as istiod builds
//! them.

use crate::translate::MeshSnapshot;
use prost::Message;
use xds_protos::pb::envoy::config::cluster::v3::Cluster;
use xds_protos::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use xds_protos::pb::google::protobuf::{Duration, UInt32Value};

fn mesh_with_rule(rule_spec: &str) -> MeshSnapshot {
    super::super::test_support::mesh_with_rule("httpbin", (8000, 9000), rule_spec)
}

/// The cluster of `port` and `subset` ("" for all endpoints).
fn cluster(mesh: &MeshSnapshot, port: u32, subset: &str) -> Cluster {
    super::super::test_support::cluster_of(mesh, "httpbin", port, subset)
}

fn n(v: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value: v })
}

fn secs(s: i64) -> Option<Duration> {
    Some(Duration {
        seconds: s,
        nanos: 0,
    })
}

fn common(c: &Cluster) -> Option<xds_protos::pb::envoy::config::core::v3::HttpProtocolOptions> {
    let any = c
        .typed_extension_protocol_options
        .get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")?;
    HttpProtocolOptions::decode(any.value.as_slice())
        .expect("decodes")
        .common_http_protocol_options
}

#[test]
fn every_cluster_has_istios_unlimited_default_breakers() {
    let c = cluster(&mesh_with_rule(""), 8000, "");
    let t = &c.circuit_breakers.as_ref().expect("breakers").thresholds[0];
    assert_eq!(t.max_connections, n(u32::MAX));
    assert_eq!(t.max_pending_requests, n(u32::MAX));
    assert_eq!(t.max_requests, n(u32::MAX));
    assert_eq!(t.max_retries, n(u32::MAX));
    assert!(t.track_remaining);
    assert!(c.outlier_detection.is_none());
    assert!(common(&c).is_none());
}

/// The DestinationRule of Istio's circuit-breaking task.
const TASK: &str = "  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1, connectTimeout: 2s, tcpKeepalive: {time: 60s, interval: 10s, probes: 3}, maxConnectionDuration: 10m}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1, idleTimeout: 30s, http2MaxRequests: 50, maxRetries: 4}
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 3m
      maxEjectionPercent: 100
";

#[test]
fn the_circuit_breaking_task_rule_becomes_istiods_cluster_settings() {
    let c = cluster(&mesh_with_rule(TASK), 8000, "");
    let t = &c.circuit_breakers.as_ref().expect("breakers").thresholds[0];
    assert_eq!(t.max_connections, n(1));
    assert_eq!(t.max_pending_requests, n(1));
    assert_eq!(t.max_requests, n(50));
    assert_eq!(t.max_retries, n(4));
    assert_eq!(c.connect_timeout, secs(2));
    let common = common(&c).expect("common options");
    assert_eq!(common.max_requests_per_connection, n(1));
    assert_eq!(common.idle_timeout, secs(30));
    assert_eq!(common.max_connection_duration, secs(600));
    let k = c
        .upstream_connection_options
        .as_ref()
        .and_then(|u| u.tcp_keepalive)
        .expect("keepalive");
    assert_eq!(
        (k.keepalive_time, k.keepalive_interval, k.keepalive_probes),
        (n(60), n(10), n(3))
    );
    let o = c.outlier_detection.as_ref().expect("outlier detection");
    assert_eq!(o.consecutive_5xx, n(1));
    assert_eq!(o.enforcing_consecutive_5xx, n(100));
    assert_eq!(o.enforcing_success_rate, n(0));
    assert_eq!(o.interval, secs(1));
    assert_eq!(o.base_ejection_time, secs(180));
    assert_eq!(o.max_ejection_percent, n(100));
    assert_eq!(o.consecutive_gateway_failure, None);
    // minHealthPercent unset: istiod turns the panic threshold off.
    let panic = c
        .common_lb_config
        .as_ref()
        .and_then(|l| l.healthy_panic_threshold)
        .expect("panic threshold");
    assert_eq!(panic.value, 0.0);
}

#[test]
fn gateway_local_origin_and_deprecated_errors_as_istiod() {
    let c = cluster(
        &mesh_with_rule(
            "  trafficPolicy:\n    outlierDetection: {consecutiveGatewayErrors: 3, consecutive5xxErrors: 0, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2, minHealthPercent: 30}\n",
        ),
        8000,
        "",
    );
    let o = c.outlier_detection.as_ref().expect("outlier detection");
    assert_eq!(o.consecutive_gateway_failure, n(3));
    assert_eq!(o.enforcing_consecutive_gateway_failure, n(100));
    assert_eq!(o.consecutive_5xx, n(0));
    assert_eq!(o.enforcing_consecutive_5xx, n(0));
    assert!(o.split_external_local_origin_errors);
    assert_eq!(o.consecutive_local_origin_failure, n(2));
    assert_eq!(o.enforcing_consecutive_local_origin_failure, n(100));
    assert_eq!(o.enforcing_local_origin_success_rate, n(0));
    assert_eq!(
        c.common_lb_config
            .and_then(|l| l.healthy_panic_threshold)
            .map(|p| p.value),
        Some(30.0)
    );

    let c = cluster(
        &mesh_with_rule("  trafficPolicy:\n    outlierDetection: {consecutiveErrors: 4}\n"),
        8000,
        "",
    );
    let o = c.outlier_detection.as_ref().expect("outlier detection");
    assert_eq!(o.consecutive_gateway_failure, n(4));
    assert_eq!(o.enforcing_consecutive_gateway_failure, n(100));
    assert_eq!(o.enforcing_consecutive_5xx, n(0));
}

#[test]
fn subsets_and_port_level_settings_merge_as_istiod() {
    let rule = "  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutive5xxErrors: 7}
    portLevelSettings:
    - port: {number: 9000}
      connectionPool: {tcp: {maxConnections: 20}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {tcp: {maxConnections: 30}}
  - name: v2
    labels: {version: v2}
";
    let mesh = mesh_with_rule(rule);
    let max_cx = |c: &Cluster| c.circuit_breakers.as_ref().unwrap().thresholds[0].max_connections;
    // The port-level entry replaces the policy whole: no outlier detection on 9000.
    let c = cluster(&mesh, 9000, "");
    assert_eq!(max_cx(&c), n(20));
    assert!(c.outlier_detection.is_none());
    let c = cluster(&mesh, 8000, "");
    assert_eq!(max_cx(&c), n(10));
    assert_eq!(c.outlier_detection.unwrap().consecutive_5xx, n(7));
    // v1's pool overrides the rule's; its outlier detection is the rule's.
    let c = cluster(&mesh, 8000, "v1");
    assert_eq!(max_cx(&c), n(30));
    assert_eq!(c.outlier_detection.unwrap().consecutive_5xx, n(7));
    let c = cluster(&mesh, 8000, "v2");
    assert_eq!(max_cx(&c), n(10));
}
