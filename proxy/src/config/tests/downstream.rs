//! The connection manager's downstream limits: Envoy's defaults, explicit values, and the
//! fields weft-proxy does not enforce refused by name.

use std::time::Duration;

use xds_protos::pb::envoy::config::core::v3::{
    Http2ProtocolOptions, HttpProtocolOptions, KeepaliveSettings,
};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use xds_protos::pb::envoy::r#type::v3::Percent;
use xds_protos::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};

use super::listener::{chain, hcm_filter, listener, rds};
use crate::config::{compile_listener, DownstreamLimits, Http2Keepalive};

fn with(hcm: HttpConnectionManager) -> Result<DownstreamLimits, String> {
    compile_listener(&listener(vec![chain(vec![hcm_filter(&hcm)])]))
        .map(|l| (*l.only_http().downstream).clone())
        .map_err(|e| e.to_string())
}

fn secs(s: i64) -> Option<ProtoDuration> {
    Some(ProtoDuration {
        seconds: s,
        nanos: 0,
    })
}

fn u32v(v: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value: v })
}

#[test]
fn envoys_defaults_apply_when_nothing_is_set() {
    let d = &with(rds("r")).unwrap();
    assert_eq!(d, &DownstreamLimits::default());
    assert_eq!(d.max_request_header_bytes, 60 * 1024);
    assert_eq!(d.max_headers_count, 100);
    assert_eq!(d.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(d.request_headers_timeout, None);
    assert_eq!(d.http2.max_concurrent_streams, 2_147_483_647);
    assert_eq!(d.http2.keepalive, None);
}

#[test]
fn explicit_limits_are_taken() {
    let hcm = HttpConnectionManager {
        max_request_headers_kb: u32v(96),
        request_headers_timeout: secs(10),
        common_http_protocol_options: Some(HttpProtocolOptions {
            idle_timeout: secs(30),
            max_headers_count: u32v(200),
            ..Default::default()
        }),
        http2_protocol_options: Some(Http2ProtocolOptions {
            max_concurrent_streams: u32v(100),
            initial_stream_window_size: u32v(65_535),
            connection_keepalive: Some(KeepaliveSettings {
                interval: secs(20),
                timeout: secs(5),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..rds("r")
    };
    let d = with(hcm).unwrap();
    assert_eq!(d.max_request_header_bytes, 96 * 1024);
    assert_eq!(d.max_headers_count, 200);
    assert_eq!(d.idle_timeout, Some(Duration::from_secs(30)));
    assert_eq!(d.request_headers_timeout, Some(Duration::from_secs(10)));
    assert_eq!(d.http2.max_concurrent_streams, 100);
    assert_eq!(d.http2.initial_stream_window_size, Some(65_535));
    assert_eq!(d.http2.initial_connection_window_size, None);
    assert_eq!(
        d.http2.keepalive,
        Some(Http2Keepalive {
            interval: Duration::from_secs(20),
            timeout: Duration::from_secs(5),
        })
    );
}

#[test]
fn zero_disables_the_timeouts() {
    let hcm = HttpConnectionManager {
        request_headers_timeout: secs(0),
        common_http_protocol_options: Some(HttpProtocolOptions {
            idle_timeout: secs(0),
            ..Default::default()
        }),
        http2_protocol_options: Some(Http2ProtocolOptions {
            connection_keepalive: Some(KeepaliveSettings {
                interval: secs(0),
                timeout: secs(5),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..rds("r")
    };
    let d = with(hcm).unwrap();
    assert_eq!(d.idle_timeout, None);
    assert_eq!(d.request_headers_timeout, None);
    assert_eq!(d.http2.keepalive, None, "no interval, no pings");
}

#[test]
fn out_of_range_values_are_refused_with_their_path() {
    let path = "filter_chains[0].filters[0].typed_config";
    let err = with(HttpConnectionManager {
        max_request_headers_kb: u32v(0),
        ..rds("r")
    })
    .unwrap_err();
    assert!(
        err.contains(&format!("{path}.max_request_headers_kb: 0 is out of range")),
        "{err}"
    );
    let err = with(HttpConnectionManager {
        max_request_headers_kb: u32v(8193),
        ..rds("r")
    })
    .unwrap_err();
    assert!(
        err.contains("max_request_headers_kb: 8193 is out of range"),
        "{err}"
    );
    let err = with(HttpConnectionManager {
        common_http_protocol_options: Some(HttpProtocolOptions {
            max_headers_count: u32v(0),
            ..Default::default()
        }),
        ..rds("r")
    })
    .unwrap_err();
    assert!(
        err.contains("common_http_protocol_options.max_headers_count: must be at least 1"),
        "{err}"
    );
    let err = with(HttpConnectionManager {
        http2_protocol_options: Some(Http2ProtocolOptions {
            initial_connection_window_size: u32v(1000),
            ..Default::default()
        }),
        ..rds("r")
    })
    .unwrap_err();
    assert!(
        err.contains("http2_protocol_options.initial_connection_window_size: 1000 is out of range"),
        "{err}"
    );
    let err = with(HttpConnectionManager {
        http2_protocol_options: Some(Http2ProtocolOptions {
            connection_keepalive: Some(KeepaliveSettings {
                interval: secs(1),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..rds("r")
    })
    .unwrap_err();
    assert!(
        err.contains("http2_protocol_options.connection_keepalive.timeout: is required"),
        "{err}"
    );
}

#[test]
fn fields_not_enforced_downstream_are_refused_by_name() {
    let err = with(HttpConnectionManager {
        common_http_protocol_options: Some(HttpProtocolOptions {
            max_connection_duration: secs(60),
            ..Default::default()
        }),
        ..rds("r")
    })
    .unwrap_err();
    assert!(
        err.contains("common_http_protocol_options.max_connection_duration: not supported"),
        "{err}"
    );
    let err = with(HttpConnectionManager {
        common_http_protocol_options: Some(HttpProtocolOptions {
            headers_with_underscores_action: 2,
            ..Default::default()
        }),
        ..rds("r")
    })
    .unwrap_err();
    assert!(
        err.contains("headers_with_underscores_action: not supported"),
        "{err}"
    );
    let err = with(HttpConnectionManager {
        http2_protocol_options: Some(Http2ProtocolOptions {
            allow_connect: true,
            ..Default::default()
        }),
        ..rds("r")
    })
    .unwrap_err();
    assert!(
        err.contains("http2_protocol_options.allow_connect: not supported"),
        "{err}"
    );
    let err = with(HttpConnectionManager {
        http2_protocol_options: Some(Http2ProtocolOptions {
            connection_keepalive: Some(KeepaliveSettings {
                interval: secs(1),
                timeout: secs(1),
                interval_jitter: Some(Percent { value: 15.0 }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..rds("r")
    })
    .unwrap_err();
    assert!(
        err.contains("connection_keepalive.interval_jitter: not supported"),
        "{err}"
    );
    // Envoy's reset-flood limit: weft-proxy does not enforce it, so it is refused.
    let err = with(HttpConnectionManager {
        http2_protocol_options: Some(Http2ProtocolOptions {
            stream_reset_burst: Some(xds_protos::pb::google::protobuf::UInt64Value { value: 100 }),
            ..Default::default()
        }),
        ..rds("r")
    })
    .unwrap_err();
    assert!(
        err.contains("http2_protocol_options.stream_reset_burst: not supported"),
        "{err}"
    );
}

#[test]
fn ignore_global_conn_limit_is_read_from_the_listener() {
    let mut l = listener(vec![chain(vec![hcm_filter(&rds("r"))])]);
    l.ignore_global_conn_limit = true;
    assert!(compile_listener(&l).unwrap().ignore_global_conn_limit);
}

#[test]
fn a_request_timeout_is_refused_unless_off() {
    let hcm = HttpConnectionManager {
        request_timeout: secs(30),
        ..rds("r")
    };
    let err = with(hcm).unwrap_err();
    assert!(err.contains("request_timeout: not supported"), "{err}");
    let off = HttpConnectionManager {
        request_timeout: secs(0),
        ..rds("r")
    };
    assert!(with(off).is_ok());
}
