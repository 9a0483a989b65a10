//! A cluster's upstream HTTP protocol options: what istiod and weftd send is accepted, the
//! HTTP/2 client settings weft-proxy applies are compiled in, and every other field is refused
//! by its path.

use std::time::Duration;

use xds_protos::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, ClusterProtocolSelection, DiscoveryType},
    Cluster,
};
use xds_protos::pb::envoy::config::core::v3::{
    http1_protocol_options::{header_key_format::HeaderFormat, HeaderKeyFormat},
    Http1ProtocolOptions, Http2ProtocolOptions, Http3ProtocolOptions,
    HttpProtocolOptions as CommonHttpOptions, KeepaliveSettings,
};
use xds_protos::pb::envoy::config::route::v3::RetryPolicy;
use xds_protos::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    explicit_http_config::ProtocolConfig, AutoHttpConfig, ExplicitHttpConfig,
    UpstreamProtocolOptions, UseDownstreamHttpConfig,
};
use xds_protos::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use xds_protos::pb::envoy::r#type::v3::Percent;
use xds_protos::pb::google::protobuf::{
    BoolValue, Duration as ProtoDuration, UInt32Value, UInt64Value,
};
use xds_protos::type_url;

use super::any;
use crate::config::{
    compile_cluster, ClusterConfig, Http2Keepalive, UpstreamHttp2, UpstreamProtocol,
    DEFAULT_IDLE_TIMEOUT,
};

const HPO_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

fn cluster() -> Cluster {
    Cluster {
        name: "outbound|50051||grpc.default.svc.cluster.local".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        ..Default::default()
    }
}

fn with_extension(mut c: Cluster, options: HttpProtocolOptions) -> Cluster {
    c.typed_extension_protocol_options.insert(
        HPO_KEY.into(),
        any(type_url::HTTP_PROTOCOL_OPTIONS, &options),
    );
    c
}

fn explicit(config: ProtocolConfig) -> Option<UpstreamProtocolOptions> {
    Some(UpstreamProtocolOptions::ExplicitHttpConfig(
        ExplicitHttpConfig {
            protocol_config: Some(config),
        },
    ))
}

/// A cluster whose extension asks for HTTP/2 with these options.
fn h2_cluster(h2: Http2ProtocolOptions) -> Cluster {
    with_extension(
        cluster(),
        HttpProtocolOptions {
            upstream_protocol_options: explicit(ProtocolConfig::Http2ProtocolOptions(h2)),
            ..Default::default()
        },
    )
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

fn compile(c: &Cluster) -> ClusterConfig {
    compile_cluster(c).expect("valid cluster")
}

/// The field path of the NACK.
fn nack(c: &Cluster) -> String {
    let err = compile_cluster(c).expect_err("refused");
    assert_eq!(err.type_url_short, "Cluster");
    err.field
}

fn in_extension(path: &str) -> String {
    format!("typed_extension_protocol_options[{HPO_KEY:?}].{path}")
}

#[test]
fn empty_options_as_weftd_and_istiod_send_them_keep_envoys_defaults() {
    let cfg = compile(&h2_cluster(Http2ProtocolOptions::default()));
    assert_eq!(cfg.protocol, UpstreamProtocol::Http2);
    assert_eq!(cfg.connection.http2, UpstreamHttp2::default());
    assert_eq!(cfg.connection.http2.max_concurrent_streams, 2_147_483_647);
    assert_eq!(cfg.connection.http2.hpack_table_size, 4096);

    // weftd's HTTP/1.1 cluster with a DestinationRule's connection pool settings.
    let c = with_extension(
        cluster(),
        HttpProtocolOptions {
            common_http_protocol_options: Some(CommonHttpOptions {
                idle_timeout: secs(30),
                max_requests_per_connection: n(10),
                ..Default::default()
            }),
            upstream_protocol_options: explicit(ProtocolConfig::HttpProtocolOptions(
                Http1ProtocolOptions::default(),
            )),
            ..Default::default()
        },
    );
    let cfg = compile(&c);
    assert_eq!(cfg.protocol, UpstreamProtocol::Http1);
    assert_eq!(cfg.connection.idle_timeout, Some(Duration::from_secs(30)));
    assert_eq!(cfg.connection.max_requests_per_connection, Some(10));

    // No extension at all: HTTP/1.1, Envoy's defaults.
    let cfg = compile(&cluster());
    assert_eq!(cfg.protocol, UpstreamProtocol::Http1);
    assert_eq!(cfg.connection.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
    assert_eq!(cfg.connection.http2, UpstreamHttp2::default());
}

#[test]
fn http2_client_settings_are_compiled_in() {
    // What istiod sends for a DestinationRule's `maxConcurrentStreams`, plus the rest.
    let cfg = compile(&h2_cluster(Http2ProtocolOptions {
        max_concurrent_streams: n(100),
        initial_stream_window_size: n(1 << 20),
        initial_connection_window_size: n(4 << 20),
        hpack_table_size: n(0),
        connection_keepalive: Some(KeepaliveSettings {
            interval: secs(30),
            timeout: secs(5),
            ..Default::default()
        }),
        ..Default::default()
    }));
    assert_eq!(
        cfg.connection.http2,
        UpstreamHttp2 {
            max_concurrent_streams: 100,
            initial_stream_window_size: Some(1 << 20),
            initial_connection_window_size: Some(4 << 20),
            hpack_table_size: 0,
            keepalive: Some(Http2Keepalive {
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(5),
            }),
        }
    );

    // A keepalive without an interval sends no PINGs, as in Envoy.
    let cfg = compile(&h2_cluster(Http2ProtocolOptions {
        connection_keepalive: Some(KeepaliveSettings {
            timeout: secs(5),
            ..Default::default()
        }),
        ..Default::default()
    }));
    assert_eq!(cfg.connection.http2.keepalive, None);
}

#[test]
#[allow(deprecated)]
fn the_deprecated_cluster_fields_are_read_the_same_way() {
    let c = Cluster {
        http2_protocol_options: Some(Http2ProtocolOptions {
            max_concurrent_streams: n(8),
            ..Default::default()
        }),
        http_protocol_options: Some(Http1ProtocolOptions::default()),
        ..cluster()
    };
    let cfg = compile(&c);
    assert_eq!(cfg.protocol, UpstreamProtocol::Http2);
    assert_eq!(cfg.connection.http2.max_concurrent_streams, 8);

    let c = Cluster {
        http2_protocol_options: Some(Http2ProtocolOptions {
            hpack_table_size: n(8192),
            max_outbound_frames: n(1000),
            ..Default::default()
        }),
        ..cluster()
    };
    assert_eq!(nack(&c), "http2_protocol_options.max_outbound_frames");

    let c = Cluster {
        http_protocol_options: Some(Http1ProtocolOptions {
            enable_trailers: true,
            ..Default::default()
        }),
        ..cluster()
    };
    assert_eq!(nack(&c), "http_protocol_options.enable_trailers");
}

#[test]
#[allow(deprecated)]
fn http2_fields_not_acted_on_are_refused_by_path() {
    let base = Http2ProtocolOptions::default;
    let cases: Vec<(&str, Http2ProtocolOptions)> = vec![
        (
            "allow_connect",
            Http2ProtocolOptions {
                allow_connect: true,
                ..base()
            },
        ),
        (
            "allow_metadata",
            Http2ProtocolOptions {
                allow_metadata: true,
                ..base()
            },
        ),
        (
            "max_outbound_control_frames",
            Http2ProtocolOptions {
                max_outbound_control_frames: n(10),
                ..base()
            },
        ),
        (
            "max_inbound_priority_frames_per_stream",
            Http2ProtocolOptions {
                max_inbound_priority_frames_per_stream: n(10),
                ..base()
            },
        ),
        (
            "stream_error_on_invalid_http_messaging",
            Http2ProtocolOptions {
                stream_error_on_invalid_http_messaging: true,
                ..base()
            },
        ),
        (
            "override_stream_error_on_invalid_http_message",
            Http2ProtocolOptions {
                override_stream_error_on_invalid_http_message: Some(BoolValue { value: true }),
                ..base()
            },
        ),
        (
            "max_header_field_size_kb",
            Http2ProtocolOptions {
                max_header_field_size_kb: n(64),
                ..base()
            },
        ),
        (
            "stream_reset_burst",
            Http2ProtocolOptions {
                stream_reset_burst: Some(UInt64Value { value: 5 }),
                ..base()
            },
        ),
        (
            "connection_keepalive.interval_jitter",
            Http2ProtocolOptions {
                connection_keepalive: Some(KeepaliveSettings {
                    interval: secs(10),
                    timeout: secs(1),
                    interval_jitter: Some(Percent { value: 15.0 }),
                    ..Default::default()
                }),
                ..base()
            },
        ),
        (
            "connection_keepalive.connection_idle_interval",
            Http2ProtocolOptions {
                connection_keepalive: Some(KeepaliveSettings {
                    timeout: secs(1),
                    connection_idle_interval: secs(60),
                    ..Default::default()
                }),
                ..base()
            },
        ),
    ];
    for (field, h2) in cases {
        assert_eq!(
            nack(&h2_cluster(h2)),
            in_extension(&format!(
                "explicit_http_config.http2_protocol_options.{field}"
            )),
        );
    }
}

#[test]
fn http2_values_out_of_range_are_refused_by_path() {
    let cases: Vec<(&str, Http2ProtocolOptions)> = vec![
        (
            "max_concurrent_streams",
            Http2ProtocolOptions {
                max_concurrent_streams: n(0),
                ..Default::default()
            },
        ),
        (
            "max_concurrent_streams",
            Http2ProtocolOptions {
                max_concurrent_streams: n(1 << 31),
                ..Default::default()
            },
        ),
        (
            "initial_stream_window_size",
            Http2ProtocolOptions {
                initial_stream_window_size: n(65_534),
                ..Default::default()
            },
        ),
        (
            "initial_connection_window_size",
            Http2ProtocolOptions {
                initial_connection_window_size: n(1 << 31),
                ..Default::default()
            },
        ),
        (
            "connection_keepalive.timeout",
            Http2ProtocolOptions {
                connection_keepalive: Some(KeepaliveSettings {
                    interval: secs(10),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
    ];
    for (field, h2) in cases {
        assert_eq!(
            nack(&h2_cluster(h2)),
            in_extension(&format!(
                "explicit_http_config.http2_protocol_options.{field}"
            )),
        );
    }
}

#[test]
fn http1_options_are_refused_by_path() {
    let c = with_extension(
        cluster(),
        HttpProtocolOptions {
            upstream_protocol_options: explicit(ProtocolConfig::HttpProtocolOptions(
                Http1ProtocolOptions {
                    header_key_format: Some(HeaderKeyFormat {
                        header_format: Some(HeaderFormat::ProperCaseWords(Default::default())),
                    }),
                    ..Default::default()
                },
            )),
            ..Default::default()
        },
    );
    assert_eq!(
        nack(&c),
        in_extension("explicit_http_config.http_protocol_options.header_key_format")
    );
}

#[test]
#[allow(deprecated)] // `protocol_selection` is deprecated and still refused by name.
fn protocol_choices_weft_proxy_does_not_make_are_refused_by_name() {
    let extension = |upstream_protocol_options| {
        with_extension(
            cluster(),
            HttpProtocolOptions {
                upstream_protocol_options,
                ..Default::default()
            },
        )
    };
    let c = extension(Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(
        UseDownstreamHttpConfig {
            http_protocol_options: Some(Http1ProtocolOptions::default()),
            http2_protocol_options: Some(Http2ProtocolOptions::default()),
            ..Default::default()
        },
    )));
    assert_eq!(nack(&c), in_extension("use_downstream_protocol_config"));

    let c = extension(Some(UpstreamProtocolOptions::AutoConfig(
        AutoHttpConfig::default(),
    )));
    assert_eq!(nack(&c), in_extension("auto_config"));

    let c = extension(explicit(ProtocolConfig::Http3ProtocolOptions(
        Http3ProtocolOptions::default(),
    )));
    assert_eq!(
        nack(&c),
        in_extension("explicit_http_config.http3_protocol_options")
    );

    let c = extension(Some(UpstreamProtocolOptions::ExplicitHttpConfig(
        ExplicitHttpConfig::default(),
    )));
    assert_eq!(nack(&c), in_extension("explicit_http_config"));

    let c = Cluster {
        protocol_selection: ClusterProtocolSelection::UseDownstreamProtocol as i32,
        ..cluster()
    };
    assert_eq!(nack(&c), "protocol_selection");
}

#[test]
#[allow(deprecated)]
fn the_extension_and_its_deprecated_fields_together_are_refused() {
    let mut c = h2_cluster(Http2ProtocolOptions::default());
    c.http2_protocol_options = Some(Http2ProtocolOptions::default());
    assert_eq!(nack(&c), "http2_protocol_options");
}

#[test]
fn extension_policies_not_acted_on_are_refused_by_name() {
    let c = with_extension(
        cluster(),
        HttpProtocolOptions {
            retry_policy: Some(RetryPolicy::default()),
            upstream_protocol_options: explicit(ProtocolConfig::Http2ProtocolOptions(
                Http2ProtocolOptions::default(),
            )),
            ..Default::default()
        },
    );
    assert_eq!(nack(&c), in_extension("retry_policy"));
}
