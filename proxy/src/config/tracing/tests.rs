use super::*;
use xds_protos::any::pack;
use xds_protos::pb::envoy::config::core::v3::TypedExtensionConfig;
use xds_protos::pb::envoy::config::trace::v3::tracing::Http;
use xds_protos::pb::google::protobuf::{BoolValue, UInt32Value};

fn otel_cluster(cluster: &str) -> OpenTelemetryConfig {
    OpenTelemetryConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: cluster.into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        service_name: "productpage.default".into(),
        ..Default::default()
    }
}

fn tracing_with(otel: &OpenTelemetryConfig) -> Tracing {
    Tracing {
        provider: Some(Http {
            name: "envoy.tracers.opentelemetry".into(),
            config_type: Some(ConfigType::TypedConfig(pack(OPEN_TELEMETRY_CONFIG, otel))),
        }),
        ..Default::default()
    }
}

fn err(t: &Tracing) -> String {
    let e = tracing_config(Some(t), 0).unwrap_err();
    format!("{}: {}", e.field, e.reason)
}

#[test]
fn envoys_defaults_apply() {
    let c = tracing_config(Some(&tracing_with(&otel_cluster("outbound|4317||otel"))), 0)
        .unwrap()
        .unwrap();
    assert_eq!(
        c.collector,
        Collector::Cluster {
            name: "outbound|4317||otel".into(),
            authority: None
        }
    );
    assert_eq!(c.service_name, "productpage.default");
    assert_eq!(
        (c.random_sampling, c.client_sampling, c.overall_sampling),
        (100.0, 100.0, 100.0)
    );
    assert_eq!(c.max_path_tag_length, 256);
    assert_eq!(c.max_queued_spans, 1024);
    assert!(!c.inbound);
    let inbound = tracing_config(Some(&tracing_with(&otel_cluster("c"))), 1)
        .unwrap()
        .unwrap();
    assert!(inbound.inbound);
}

#[test]
fn no_block_or_no_provider_traces_nothing() {
    assert_eq!(tracing_config(None, 0).unwrap(), None);
    assert_eq!(tracing_config(Some(&Tracing::default()), 0).unwrap(), None);
}

#[test]
fn custom_tags_of_each_kind() {
    let mut t = tracing_with(&otel_cluster("c"));
    let tag = |name: &str, ty| CustomTag {
        tag: name.into(),
        r#type: Some(ty),
    };
    t.custom_tags = vec![
        tag(
            "lit",
            custom_tag::Type::Literal(custom_tag::Literal { value: "v".into() }),
        ),
        tag(
            "env",
            custom_tag::Type::Environment(custom_tag::Environment {
                name: "WEFT_TEST_SURELY_UNSET_VARIABLE".into(),
                default_value: "fallback".into(),
            }),
        ),
        tag(
            "gone",
            custom_tag::Type::Environment(custom_tag::Environment {
                name: "WEFT_TEST_SURELY_UNSET_VARIABLE".into(),
                default_value: String::new(),
            }),
        ),
        tag(
            "hdr",
            custom_tag::Type::RequestHeader(custom_tag::Header {
                name: "x-user".into(),
                default_value: String::new(),
            }),
        ),
    ];
    let c = tracing_config(Some(&t), 0).unwrap().unwrap();
    assert_eq!(
        c.custom_tags.as_ref(),
        [
            Tag {
                name: "lit".into(),
                value: TagValue::Fixed("v".into())
            },
            Tag {
                name: "env".into(),
                value: TagValue::Fixed("fallback".into())
            },
            Tag {
                name: "hdr".into(),
                value: TagValue::RequestHeader {
                    name: HeaderName::from_static("x-user"),
                    default: None
                }
            },
        ]
    );
    t.custom_tags = vec![tag("m", custom_tag::Type::Metadata(Default::default()))];
    assert_eq!(err(&t), "custom_tags[0].metadata: not supported");
}

#[test]
fn what_is_not_acted_on_is_refused_by_name() {
    let base = otel_cluster("c");
    let mut t = tracing_with(&base);
    t.verbose = true;
    assert_eq!(err(&t), "verbose: not supported");
    let mut t = tracing_with(&base);
    t.spawn_upstream_span = Some(BoolValue { value: true });
    assert_eq!(err(&t), "spawn_upstream_span: not supported");
    let mut t = tracing_with(&base);
    t.random_sampling = Some(Percent { value: 101.0 });
    assert_eq!(
        err(&t),
        "random_sampling.value: 101 is not a percentage in [0, 100]"
    );

    let mut o = base.clone();
    o.sampler = Some(TypedExtensionConfig::default());
    assert_eq!(
        err(&tracing_with(&o)),
        "provider.typed_config.sampler: not supported"
    );
    let mut o = base.clone();
    o.http_service = Some(Default::default());
    assert_eq!(
        err(&tracing_with(&o)),
        "provider.typed_config.http_service: not supported"
    );
    let mut o = base.clone();
    o.max_cache_size = Some(UInt32Value { value: 0 });
    assert_eq!(
        err(&tracing_with(&o)),
        "provider.typed_config.max_cache_size: must be greater than 0"
    );
    let mut o = base.clone();
    if let Some(g) = &mut o.grpc_service {
        g.initial_metadata = vec![Default::default()];
    }
    assert_eq!(
        err(&tracing_with(&o)),
        "provider.typed_config.grpc_service.initial_metadata: not supported"
    );

    let mut zipkin = tracing_with(&base);
    if let Some(p) = &mut zipkin.provider {
        p.name = "envoy.tracers.zipkin".into();
        p.config_type = Some(ConfigType::TypedConfig(
            xds_protos::pb::google::protobuf::Any {
                type_url: "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig".into(),
                value: vec![],
            },
        ));
    }
    assert!(err(&zipkin).starts_with("provider.typed_config: tracer envoy.tracers.zipkin"));
}

#[test]
fn the_envoy_grpc_authority_is_kept_and_checked() {
    let mut o = otel_cluster("outbound|4317||otel");
    let set = |o: &mut OpenTelemetryConfig, a: &str| {
        if let Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(e)),
            ..
        }) = &mut o.grpc_service
        {
            e.authority = a.into();
        }
    };
    set(&mut o, "otel.istio-system.svc.cluster.local");
    let c = tracing_config(Some(&tracing_with(&o)), 0).unwrap().unwrap();
    assert_eq!(
        c.collector,
        Collector::Cluster {
            name: "outbound|4317||otel".into(),
            authority: Some("otel.istio-system.svc.cluster.local".into())
        }
    );
    set(&mut o, "a b");
    assert_eq!(
        err(&tracing_with(&o)),
        "provider.typed_config.grpc_service.envoy_grpc.authority: \"a b\" is not an authority"
    );
}

#[test]
fn a_google_grpc_target_is_a_uri() {
    let o = OpenTelemetryConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::GoogleGrpc(
                grpc_service::GoogleGrpc {
                    target_uri: "127.0.0.1:4317".into(),
                    stat_prefix: "otel".into(),
                    ..Default::default()
                },
            )),
            timeout: Some(xds_protos::pb::google::protobuf::Duration {
                seconds: 2,
                nanos: 0,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let c = tracing_config(Some(&tracing_with(&o)), 0).unwrap().unwrap();
    assert_eq!(
        c.collector,
        Collector::Target("http://127.0.0.1:4317".into())
    );
    assert_eq!(c.export_timeout, Duration::from_secs(2));
}
