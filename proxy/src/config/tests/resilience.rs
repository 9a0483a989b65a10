//! Circuit breakers and connection options: Envoy's defaults, what istiod sends, and what is
//! refused by name.

use std::time::Duration;

use xds_protos::pb::envoy::config::cluster::v3::{
    circuit_breakers::{thresholds::RetryBudget, Thresholds},
    cluster::{ClusterDiscoveryType, DiscoveryType},
    CircuitBreakers, Cluster, OutlierDetection as ProtoOutlier, UpstreamConnectionOptions,
};
use xds_protos::pb::envoy::config::core::v3::{
    HttpProtocolOptions as CommonHttpOptions, RoutingPriority, TcpKeepalive as ProtoKeepalive,
};
use xds_protos::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use xds_protos::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};
use xds_protos::type_url;

use super::any;
use crate::config::{
    compile_cluster, CircuitBreakers as Breakers, ConnectionOptions, OutlierDetection,
    TcpKeepalive, DEFAULT_IDLE_TIMEOUT,
};

const HPO_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

fn cluster() -> Cluster {
    Cluster {
        name: "outbound|9080||reviews.default.svc.cluster.local".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        ..Default::default()
    }
}

fn n(v: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value: v })
}

fn secs(s: i64) -> Option<ProtoDuration> {
    Some(ProtoDuration {
        seconds: s,
        nanos: 0,
    })
}

fn nack(c: &Cluster) -> String {
    compile_cluster(c).expect_err("refused").field
}

#[test]
fn envoy_defaults_apply_without_circuit_breakers() {
    let cfg = compile_cluster(&cluster()).unwrap();
    assert_eq!(
        cfg.circuit_breakers,
        Breakers {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    );
    assert_eq!(cfg.connection.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
    assert_eq!(cfg.connection, ConnectionOptions::default());
}

#[test]
fn istio_connection_pool_settings_are_read() {
    let mut c = cluster();
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![
            Thresholds {
                max_connections: n(1),
                max_pending_requests: n(1),
                max_requests: n(u32::MAX),
                max_retries: n(u32::MAX),
                track_remaining: true,
                ..Default::default()
            },
            // HIGH priority: weft-proxy sends nothing at that priority.
            Thresholds {
                priority: RoutingPriority::High as i32,
                max_connections: n(7),
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    let options = HttpProtocolOptions {
        common_http_protocol_options: Some(CommonHttpOptions {
            idle_timeout: secs(30),
            max_connection_duration: secs(600),
            max_requests_per_connection: n(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    c.typed_extension_protocol_options.insert(
        HPO_KEY.into(),
        any(type_url::HTTP_PROTOCOL_OPTIONS, &options),
    );
    c.upstream_connection_options = Some(UpstreamConnectionOptions {
        tcp_keepalive: Some(ProtoKeepalive {
            keepalive_probes: n(3),
            keepalive_time: n(60),
            keepalive_interval: n(10),
        }),
        ..Default::default()
    });
    let cfg = compile_cluster(&c).unwrap();
    assert_eq!(cfg.circuit_breakers.max_connections, 1);
    assert_eq!(cfg.circuit_breakers.max_pending_requests, 1);
    assert_eq!(cfg.circuit_breakers.max_requests, u64::from(u32::MAX));
    assert_eq!(
        cfg.connection,
        ConnectionOptions {
            idle_timeout: Some(Duration::from_secs(30)),
            max_connection_duration: Some(Duration::from_secs(600)),
            max_requests_per_connection: Some(1),
            tcp_keepalive: Some(TcpKeepalive {
                probes: Some(3),
                time: Some(Duration::from_secs(60)),
                interval: Some(Duration::from_secs(10)),
            }),
            source_address: None,
            http2: Default::default(),
        }
    );
}

#[test]
fn a_zero_idle_timeout_disables_it() {
    #[allow(deprecated)] // The cluster's own (deprecated) place for the common options.
    let c = Cluster {
        common_http_protocol_options: Some(CommonHttpOptions {
            idle_timeout: secs(0),
            ..Default::default()
        }),
        ..cluster()
    };
    assert_eq!(compile_cluster(&c).unwrap().connection.idle_timeout, None);
}

#[test]
fn settings_not_acted_on_are_refused_by_name() {
    let mut c = cluster();
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            retry_budget: Some(RetryBudget::default()),
            ..Default::default()
        }],
        ..Default::default()
    });
    assert_eq!(nack(&c), "circuit_breakers.thresholds[0].retry_budget");

    let mut c = cluster();
    c.circuit_breakers = Some(CircuitBreakers {
        per_host_thresholds: vec![Thresholds::default()],
        ..Default::default()
    });
    assert_eq!(nack(&c), "circuit_breakers.per_host_thresholds");

    let mut c = cluster();
    let options = HttpProtocolOptions {
        common_http_protocol_options: Some(CommonHttpOptions {
            max_stream_duration: secs(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    c.typed_extension_protocol_options.insert(
        HPO_KEY.into(),
        any(type_url::HTTP_PROTOCOL_OPTIONS, &options),
    );
    assert_eq!(
        nack(&c),
        format!(
            "typed_extension_protocol_options[{HPO_KEY:?}].common_http_protocol_options.max_stream_duration"
        )
    );

    let mut c = cluster();
    c.upstream_connection_options = Some(UpstreamConnectionOptions {
        set_local_interface_name_on_upstream_connections: true,
        ..Default::default()
    });
    assert_eq!(
        nack(&c),
        "upstream_connection_options.set_local_interface_name_on_upstream_connections"
    );
}

#[test]
fn outlier_detection_as_istiod_sends_it() {
    let mut c = cluster();
    c.outlier_detection = Some(ProtoOutlier {
        consecutive_5xx: n(0),
        enforcing_consecutive_5xx: n(0),
        consecutive_gateway_failure: n(3),
        enforcing_consecutive_gateway_failure: n(100),
        interval: secs(1),
        base_ejection_time: secs(60),
        max_ejection_percent: n(100),
        enforcing_success_rate: n(0),
        ..Default::default()
    });
    let od = compile_cluster(&c).unwrap().outlier_detection.unwrap();
    assert_eq!(
        od,
        OutlierDetection {
            consecutive_5xx: 0,
            enforcing_consecutive_5xx: 0,
            consecutive_gateway_failure: 3,
            enforcing_consecutive_gateway_failure: 100,
            split_external_local_origin_errors: false,
            consecutive_local_origin_failure: 5,
            enforcing_consecutive_local_origin_failure: 100,
            interval: Duration::from_secs(1),
            base_ejection_time: Duration::from_secs(60),
            // Envoy raises the maximum to the base when the base is larger; here it is not.
            max_ejection_time: Duration::from_secs(300),
            max_ejection_time_jitter: Duration::ZERO,
            max_ejection_percent: 100,
        }
    );
}

#[test]
fn outlier_detection_not_acted_on_is_refused_by_name() {
    // Envoy's defaults turn on success-rate ejection, which weft-proxy does not do.
    let mut c = cluster();
    c.outlier_detection = Some(ProtoOutlier::default());
    assert_eq!(nack(&c), "outlier_detection.enforcing_success_rate");
    c.outlier_detection = Some(ProtoOutlier {
        enforcing_success_rate: n(0),
        split_external_local_origin_errors: true,
        ..Default::default()
    });
    assert_eq!(
        nack(&c),
        "outlier_detection.enforcing_local_origin_success_rate"
    );
    c.outlier_detection = Some(ProtoOutlier {
        enforcing_success_rate: n(0),
        enforcing_failure_percentage: n(10),
        ..Default::default()
    });
    assert_eq!(nack(&c), "outlier_detection.enforcing_failure_percentage");
    c.outlier_detection = Some(ProtoOutlier {
        enforcing_success_rate: n(0),
        enforcing_consecutive_5xx: n(101),
        ..Default::default()
    });
    assert_eq!(nack(&c), "outlier_detection.enforcing_consecutive_5xx");
}
