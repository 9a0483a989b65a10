//! Every top-level connection manager field: the ones weft-proxy does not act on are NACKed by
//! name, the values that mean what weft-proxy does are accepted, and the ones it acts on come
//! out in the compiled `HeadPolicy`. Istio's sidecar connection manager must keep loading.

use prost::Message;
use xds_protos::pb::envoy::config::core::v3::{
    CidrRange, Http1ProtocolOptions, Http3ProtocolOptions, SchemeHeaderTransformation,
    TypedExtensionConfig,
};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{
        CodecType, ForwardClientCertDetails, HcmAccessLogOptions, InternalAddressConfig,
        PathNormalizationOptions, PathWithEscapedSlashesAction, ProxyStatusConfig,
        ServerHeaderTransformation, SetCurrentClientCertDetails, StripPortMode, UpgradeConfig,
    },
    ForwardProtoConfig, HttpConnectionManager, HttpFilter, LocalReplyConfig, RequestIdExtension,
    ResponseMapper,
};
use xds_protos::pb::envoy::extensions::request_id::uuid::v3::UuidRequestIdConfig;
use xds_protos::pb::envoy::r#type::v3::Percent;
use xds_protos::pb::google::protobuf::{Any, BoolValue, Duration as ProtoDuration, UInt32Value};
use xds_protos::pb::xds::r#type::matcher::v3::Matcher;

use super::listener::{chain, hcm_filter, listener, rds};
use crate::config::{
    compile_listener, Cidr, EscapedSlashes, Forwarding, HeadPolicy, PathNormalization,
    ServerHeader, StripPort,
};

const PATH: &str = "filter_chains[0].filters[0].typed_config";

fn compile(hcm: HttpConnectionManager) -> Result<HeadPolicy, String> {
    compile_listener(&listener(vec![chain(vec![hcm_filter(&hcm)])]))
        .map(|l| l.only_http().head.clone())
        .map_err(|e| e.to_string())
}

fn yes() -> Option<BoolValue> {
    Some(BoolValue { value: true })
}

fn no() -> Option<BoolValue> {
    Some(BoolValue { value: false })
}

fn secs(s: i64) -> Option<ProtoDuration> {
    Some(ProtoDuration {
        seconds: s,
        nanos: 0,
    })
}

fn extension(name: &str) -> TypedExtensionConfig {
    TypedExtensionConfig {
        name: name.into(),
        typed_config: Some(Any::default()),
    }
}

fn cidrs(ranges: &[(&str, u32)]) -> Vec<CidrRange> {
    ranges
        .iter()
        .map(|(a, len)| CidrRange {
            address_prefix: (*a).into(),
            prefix_len: Some(UInt32Value { value: *len }),
        })
        .collect()
}

fn uuid(pack_trace_reason: Option<BoolValue>) -> Option<RequestIdExtension> {
    let config = UuidRequestIdConfig {
        pack_trace_reason,
        use_request_id_for_trace_sampling: yes(),
    };
    Some(RequestIdExtension {
        typed_config: Some(Any {
            type_url: "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig"
                .into(),
            value: config.encode_to_vec(),
        }),
    })
}

/// The connection manager istiod writes for a sidecar's inbound HTTP port (the fields that
/// matter here, from the shape of a real config dump).
fn istio_sidecar() -> HttpConnectionManager {
    HttpConnectionManager {
        codec_type: CodecType::Auto as i32,
        use_remote_address: no(),
        forward_client_cert_details: ForwardClientCertDetails::AppendForward as i32,
        set_current_client_cert_details: Some(SetCurrentClientCertDetails {
            subject: yes(),
            dns: true,
            uri: true,
            ..Default::default()
        }),
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..Default::default()
        }],
        normalize_path: yes(),
        path_with_escaped_slashes_action: PathWithEscapedSlashesAction::KeepUnchanged as i32,
        request_id_extension: uuid(no()),
        stream_idle_timeout: secs(0),
        server_name: "istio-envoy".into(),
        ..rds("r")
    }
}

#[test]
fn istios_sidecar_connection_manager_is_accepted() {
    let head = compile(istio_sidecar()).unwrap();
    assert_eq!(
        head,
        HeadPolicy {
            path: PathNormalization {
                normalize: true,
                merge_slashes: false,
                escaped_slashes: EscapedSlashes::Keep,
            },
            strip_port: StripPort::Keep,
            forward_client_cert: false,
            server_header: ServerHeader::Overwrite("istio-envoy".parse().unwrap()),
            request_id_in_response: false,
            forwarding: Forwarding::default(),
        }
    );
}

#[test]
fn the_defaults_are_envoys() {
    let head = compile(rds("r")).unwrap();
    assert_eq!(head, HeadPolicy::default());
    assert_eq!(
        head.server_header,
        ServerHeader::Overwrite("envoy".parse().unwrap())
    );
    assert!(head.path.is_off());
    assert!(!head.forward_client_cert, "SANITIZE by default");
}

/// Each case sets one field to a value weft-proxy does not act on.
fn refused() -> Vec<(&'static str, HttpConnectionManager)> {
    let base = rds("r");
    #[allow(deprecated)]
    let cases = vec![
        (
            "codec_type",
            HttpConnectionManager {
                codec_type: CodecType::Http2 as i32,
                ..base.clone()
            },
        ),
        (
            "add_user_agent",
            HttpConnectionManager {
                add_user_agent: yes(),
                ..base.clone()
            },
        ),
        (
            "http3_protocol_options",
            HttpConnectionManager {
                http3_protocol_options: Some(Http3ProtocolOptions::default()),
                ..base.clone()
            },
        ),
        (
            "stream_flush_timeout",
            HttpConnectionManager {
                stream_flush_timeout: secs(10),
                ..base.clone()
            },
        ),
        (
            "drain_timeout",
            HttpConnectionManager {
                drain_timeout: secs(5),
                ..base.clone()
            },
        ),
        (
            "drain_timeout_jitter",
            HttpConnectionManager {
                drain_timeout_jitter: Some(Percent { value: 10.0 }),
                ..base.clone()
            },
        ),
        (
            "delayed_close_timeout",
            HttpConnectionManager {
                delayed_close_timeout: secs(1),
                ..base.clone()
            },
        ),
        (
            "access_log_flush_interval",
            HttpConnectionManager {
                access_log_flush_interval: secs(1),
                ..base.clone()
            },
        ),
        (
            "flush_access_log_on_new_request",
            HttpConnectionManager {
                flush_access_log_on_new_request: true,
                ..base.clone()
            },
        ),
        (
            "access_log_options",
            HttpConnectionManager {
                access_log_options: Some(HcmAccessLogOptions {
                    flush_access_log_on_new_request: true,
                    ..Default::default()
                }),
                ..base.clone()
            },
        ),
        (
            "xff_num_trusted_hops",
            HttpConnectionManager {
                xff_num_trusted_hops: 1,
                ..base.clone()
            },
        ),
        (
            "original_ip_detection_extensions",
            HttpConnectionManager {
                original_ip_detection_extensions: vec![extension("xff")],
                ..base.clone()
            },
        ),
        (
            "early_header_mutation_extensions",
            HttpConnectionManager {
                early_header_mutation_extensions: vec![extension("mutation")],
                ..base.clone()
            },
        ),
        (
            "internal_address_config.cidr_ranges[0]",
            HttpConnectionManager {
                internal_address_config: Some(InternalAddressConfig {
                    cidr_ranges: cidrs(&[("ten", 8)]),
                    ..Default::default()
                }),
                ..base.clone()
            },
        ),
        (
            "skip_xff_append",
            HttpConnectionManager {
                skip_xff_append: true,
                ..base.clone()
            },
        ),
        (
            "via",
            HttpConnectionManager {
                via: "weft".into(),
                ..base.clone()
            },
        ),
        (
            "generate_request_id",
            HttpConnectionManager {
                generate_request_id: no(),
                ..base.clone()
            },
        ),
        (
            "forward_client_cert_matcher",
            HttpConnectionManager {
                forward_client_cert_matcher: Some(Matcher::default()),
                ..base.clone()
            },
        ),
        (
            "proxy_100_continue",
            HttpConnectionManager {
                proxy_100_continue: true,
                ..base.clone()
            },
        ),
        (
            "represent_ipv4_remote_address_as_ipv4_mapped_ipv6",
            HttpConnectionManager {
                represent_ipv4_remote_address_as_ipv4_mapped_ipv6: true,
                ..base.clone()
            },
        ),
        (
            "upgrade_configs[0]",
            HttpConnectionManager {
                upgrade_configs: vec![UpgradeConfig {
                    upgrade_type: "CONNECT".into(),
                    ..Default::default()
                }],
                ..base.clone()
            },
        ),
        (
            "upgrade_configs[1]",
            HttpConnectionManager {
                upgrade_configs: vec![
                    UpgradeConfig {
                        upgrade_type: "websocket".into(),
                        ..Default::default()
                    },
                    UpgradeConfig {
                        upgrade_type: "websocket".into(),
                        filters: vec![HttpFilter::default()],
                        ..Default::default()
                    },
                ],
                ..base.clone()
            },
        ),
        (
            "path_with_escaped_slashes_action",
            HttpConnectionManager {
                path_with_escaped_slashes_action: PathWithEscapedSlashesAction::UnescapeAndRedirect
                    as i32,
                ..base.clone()
            },
        ),
        (
            "path_normalization_options",
            HttpConnectionManager {
                path_normalization_options: Some(PathNormalizationOptions::default()),
                ..base.clone()
            },
        ),
        (
            "request_id_extension.typed_config.pack_trace_reason",
            HttpConnectionManager {
                request_id_extension: uuid(None),
                ..base.clone()
            },
        ),
        (
            "request_id_extension.typed_config",
            HttpConnectionManager {
                request_id_extension: Some(RequestIdExtension {
                    typed_config: Some(Any {
                        type_url: "type.googleapis.com/some.other.RequestId".into(),
                        value: Vec::new(),
                    }),
                }),
                ..base.clone()
            },
        ),
        (
            "local_reply_config.mappers",
            HttpConnectionManager {
                local_reply_config: Some(LocalReplyConfig {
                    mappers: vec![ResponseMapper::default()],
                    ..Default::default()
                }),
                ..base.clone()
            },
        ),
        (
            "stream_error_on_invalid_http_message",
            HttpConnectionManager {
                stream_error_on_invalid_http_message: yes(),
                ..base.clone()
            },
        ),
        (
            "strip_trailing_host_dot",
            HttpConnectionManager {
                strip_trailing_host_dot: true,
                ..base.clone()
            },
        ),
        (
            "proxy_status_config",
            HttpConnectionManager {
                proxy_status_config: Some(ProxyStatusConfig::default()),
                ..base.clone()
            },
        ),
        (
            "typed_header_validation_config",
            HttpConnectionManager {
                typed_header_validation_config: Some(extension("validation")),
                ..base.clone()
            },
        ),
        (
            "append_x_forwarded_port",
            HttpConnectionManager {
                append_x_forwarded_port: true,
                ..base.clone()
            },
        ),
        (
            "append_local_overload",
            HttpConnectionManager {
                append_local_overload: true,
                ..base.clone()
            },
        ),
        (
            "forward_proto_config",
            HttpConnectionManager {
                forward_proto_config: Some(ForwardProtoConfig::default()),
                ..base.clone()
            },
        ),
        (
            "scheme_header_transformation",
            HttpConnectionManager {
                scheme_header_transformation: Some(SchemeHeaderTransformation {
                    match_upstream: true,
                    ..Default::default()
                }),
                ..base.clone()
            },
        ),
        (
            "http_protocol_options.enable_trailers",
            HttpConnectionManager {
                http_protocol_options: Some(Http1ProtocolOptions {
                    enable_trailers: true,
                    ..Default::default()
                }),
                ..base.clone()
            },
        ),
        (
            "http_protocol_options.allow_absolute_url",
            HttpConnectionManager {
                http_protocol_options: Some(Http1ProtocolOptions {
                    allow_absolute_url: no(),
                    ..Default::default()
                }),
                ..base.clone()
            },
        ),
        (
            "http_protocol_options.default_host_for_http_10",
            HttpConnectionManager {
                http_protocol_options: Some(Http1ProtocolOptions {
                    default_host_for_http_10: "example.com".into(),
                    ..Default::default()
                }),
                ..base.clone()
            },
        ),
        (
            "http_protocol_options.allow_custom_methods",
            HttpConnectionManager {
                http_protocol_options: Some(Http1ProtocolOptions {
                    allow_custom_methods: true,
                    ..Default::default()
                }),
                ..base
            },
        ),
    ];
    cases
}

#[test]
fn every_field_weft_does_not_act_on_is_refused_by_name() {
    for (field, hcm) in refused() {
        let err = compile(hcm).expect_err(field);
        assert!(err.contains(&format!("{PATH}.{field}: ")), "{field}: {err}");
    }
}

#[test]
fn values_that_mean_what_weft_does_are_accepted() {
    #[allow(deprecated)]
    let hcm = HttpConnectionManager {
        add_user_agent: no(),
        http1_safe_max_connection_duration: true,
        http_protocol_options: Some(Http1ProtocolOptions {
            allow_absolute_url: yes(),
            accept_http_10: true,
            use_balsa_parser: yes(),
            ..Default::default()
        }),
        scheme_header_transformation: Some(SchemeHeaderTransformation::default()),
        drain_timeout_jitter: Some(Percent { value: 0.0 }),
        delayed_close_timeout: secs(0),
        use_remote_address: no(),
        generate_request_id: yes(),
        forward_client_cert_details: ForwardClientCertDetails::SanitizeSet as i32,
        local_reply_config: Some(LocalReplyConfig::default()),
        stream_error_on_invalid_http_message: no(),
        // No range: no request is internal, as without the field.
        internal_address_config: Some(InternalAddressConfig {
            unix_sockets: true,
            cidr_ranges: vec![],
        }),
        // An upgrade configured off is what weft-proxy does with every upgrade.
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: "CONNECT".into(),
            enabled: no(),
            ..Default::default()
        }],
        add_proxy_protocol_connection_state: no(),
        path_with_escaped_slashes_action:
            PathWithEscapedSlashesAction::ImplementationSpecificDefault as i32,
        ..rds("r")
    };
    assert_eq!(compile(hcm).unwrap(), HeadPolicy::default());
}

#[test]
fn what_weft_acts_on_is_compiled() {
    let head = compile(HttpConnectionManager {
        normalize_path: yes(),
        merge_slashes: true,
        path_with_escaped_slashes_action: PathWithEscapedSlashesAction::UnescapeAndForward as i32,
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        forward_client_cert_details: ForwardClientCertDetails::AlwaysForwardOnly as i32,
        server_name: "weft".into(),
        server_header_transformation: ServerHeaderTransformation::AppendIfAbsent as i32,
        always_set_request_id_in_response: true,
        ..rds("r")
    })
    .unwrap();
    assert_eq!(
        head,
        HeadPolicy {
            path: PathNormalization {
                normalize: true,
                merge_slashes: true,
                escaped_slashes: EscapedSlashes::Unescape,
            },
            strip_port: StripPort::Any,
            forward_client_cert: true,
            server_header: ServerHeader::AppendIfAbsent("weft".parse().unwrap()),
            request_id_in_response: true,
            forwarding: Forwarding::default(),
        }
    );
    let head = compile(HttpConnectionManager {
        path_with_escaped_slashes_action: PathWithEscapedSlashesAction::RejectRequest as i32,
        strip_matching_host_port: true,
        server_header_transformation: ServerHeaderTransformation::PassThrough as i32,
        ..rds("r")
    })
    .unwrap();
    assert_eq!(head.path.escaped_slashes, EscapedSlashes::Reject);
    assert!(!head.path.is_off());
    assert_eq!(head.strip_port, StripPort::Matching);
    assert_eq!(head.server_header, ServerHeader::PassThrough);
}

#[test]
fn bad_values_are_named() {
    let err = compile(HttpConnectionManager {
        server_name: "bad\nname".into(),
        ..rds("r")
    })
    .unwrap_err();
    assert!(err.contains(&format!("{PATH}.server_name: ")), "{err}");
    let err = compile(HttpConnectionManager {
        codec_type: 9,
        ..rds("r")
    })
    .unwrap_err();
    assert!(err.contains("codec_type: 9 is not a codec type"), "{err}");
}

#[test]
fn websocket_upgrades_follow_upgrade_configs() {
    let websocket = |upgrades: Vec<UpgradeConfig>| {
        let hcm = HttpConnectionManager {
            upgrade_configs: upgrades,
            ..rds("r")
        };
        compile_listener(&listener(vec![chain(vec![hcm_filter(&hcm)])]))
            .map(|l| l.only_http().websocket)
            .map_err(|e| e.to_string())
    };
    let ws = |enabled| UpgradeConfig {
        upgrade_type: "WebSocket".into(),
        enabled,
        ..Default::default()
    };
    assert_eq!(websocket(vec![]), Ok(false));
    assert_eq!(websocket(vec![ws(None)]), Ok(true));
    assert_eq!(websocket(vec![ws(yes())]), Ok(true));
    assert_eq!(websocket(vec![ws(no())]), Ok(false));
    let filtered = UpgradeConfig {
        filters: vec![HttpFilter::default()],
        ..ws(None)
    };
    assert!(websocket(vec![filtered])
        .unwrap_err()
        .contains("upgrade_configs[0].filters: an upgrade's own filter chain is not supported"));
}

#[test]
fn forwarding_follows_use_remote_address_and_internal_address_config() {
    let head = compile(HttpConnectionManager {
        use_remote_address: yes(),
        preserve_external_request_id: true,
        internal_address_config: Some(InternalAddressConfig {
            cidr_ranges: cidrs(&[("10.0.0.0", 8), ("::1", 128)]),
            ..Default::default()
        }),
        ..rds("r")
    })
    .unwrap();
    assert_eq!(
        head.forwarding,
        Forwarding {
            use_remote_address: true,
            internal: vec![
                Cidr {
                    addr: "10.0.0.0".parse().unwrap(),
                    prefix: 8
                },
                Cidr {
                    addr: "::1".parse().unwrap(),
                    prefix: 128
                },
            ]
            .into(),
            preserve_external_request_id: true,
        }
    );
    let err = compile(HttpConnectionManager {
        internal_address_config: Some(InternalAddressConfig {
            cidr_ranges: cidrs(&[("10.0.0.0", 33)]),
            ..Default::default()
        }),
        ..rds("r")
    })
    .unwrap_err();
    assert!(
        err.contains("internal_address_config.cidr_ranges[0].prefix_len: 33 is longer"),
        "{err}"
    );
}
