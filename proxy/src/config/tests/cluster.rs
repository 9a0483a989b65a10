use std::time::Duration;

use xds_protos::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy as ProtoLbPolicy},
    Cluster,
};
use xds_protos::pb::envoy::config::core::v3::{Http1ProtocolOptions, Http2ProtocolOptions};
use xds_protos::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};
use xds_protos::pb::google::protobuf::{Any, Duration as ProtoDuration};
use xds_protos::type_url;

use super::any;
use super::endpoint::{cla, lb};
use crate::config::{
    compile_cluster, ClusterConfig, Discovery, EndpointAddress, Finite, LbPolicy, LeastRequest,
    UpstreamProtocol,
};

fn finite(v: f64) -> Finite {
    Finite::new(v).expect("finite")
}

const HPO_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

fn cluster(name: &str, kind: DiscoveryType) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
        ..Default::default()
    }
}

fn with_protocol(mut c: Cluster, config: ProtocolConfig) -> Cluster {
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(config),
            },
        )),
        ..Default::default()
    };
    c.typed_extension_protocol_options.insert(
        HPO_KEY.into(),
        any(type_url::HTTP_PROTOCOL_OPTIONS, &options),
    );
    c
}

fn compile(c: &Cluster) -> ClusterConfig {
    compile_cluster(c).expect("valid cluster")
}

#[test]
fn eds_cluster_with_envoy_defaults() {
    let c = Cluster {
        eds_cluster_config: Some(EdsClusterConfig {
            service_name: "outbound|9080|v1|reviews.default.svc.cluster.local".into(),
            ..Default::default()
        }),
        ..cluster(
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            DiscoveryType::Eds,
        )
    };
    let cfg = compile(&c);
    assert_eq!(cfg.discovery, Discovery::Eds);
    assert_eq!(cfg.lb_policy, LbPolicy::RoundRobin { slow_start: None });
    assert_eq!(cfg.healthy_panic_threshold.get(), 50.0);
    assert_eq!(cfg.protocol, UpstreamProtocol::Http1);
    assert_eq!(cfg.connect_timeout, Duration::from_secs(5));
    assert_eq!(cfg.eds_service_name, c.name);
    assert!(cfg.static_endpoints.is_empty());

    // Without a service name, EDS is asked for the cluster name.
    let cfg = compile(&cluster("reviews", DiscoveryType::Eds));
    assert_eq!(cfg.eds_service_name, "reviews");
}

#[test]
fn settings_are_read() {
    let c = Cluster {
        lb_policy: ProtoLbPolicy::LeastRequest as i32,
        connect_timeout: Some(ProtoDuration {
            seconds: 1,
            nanos: 500_000_000,
        }),
        ..cluster("c", DiscoveryType::Eds)
    };
    let cfg = compile(&c);
    assert_eq!(
        cfg.lb_policy,
        LbPolicy::LeastRequest(LeastRequest {
            choice_count: 2,
            active_request_bias: finite(1.0),
            slow_start: None,
        })
    );
    assert_eq!(cfg.connect_timeout, Duration::from_millis(1500));

    let c = Cluster {
        lb_policy: ProtoLbPolicy::Random as i32,
        ..cluster("c", DiscoveryType::Eds)
    };
    assert_eq!(compile(&c).lb_policy, LbPolicy::Random);
}

#[test]
fn http2_from_protocol_options() {
    let c = with_protocol(
        cluster("grpc", DiscoveryType::Eds),
        ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default()),
    );
    assert_eq!(compile(&c).protocol, UpstreamProtocol::Http2);

    let c = with_protocol(
        cluster("web", DiscoveryType::Eds),
        ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default()),
    );
    assert_eq!(compile(&c).protocol, UpstreamProtocol::Http1);
}

#[test]
#[allow(deprecated)]
fn http2_from_the_deprecated_cluster_field() {
    let c = Cluster {
        http2_protocol_options: Some(Http2ProtocolOptions::default()),
        ..cluster("c", DiscoveryType::Eds)
    };
    assert_eq!(compile(&c).protocol, UpstreamProtocol::Http2);
}

#[test]
fn undecodable_protocol_options_are_rejected() {
    let mut c = cluster("c", DiscoveryType::Eds);
    c.typed_extension_protocol_options.insert(
        HPO_KEY.into(),
        Any {
            type_url: type_url::HTTP_PROTOCOL_OPTIONS.into(),
            value: vec![0xff, 0xff, 0xff],
        },
    );
    let err = compile_cluster(&c).unwrap_err();
    assert_eq!(err.type_url_short, "Cluster");
    assert_eq!(
        err.field,
        format!("typed_extension_protocol_options[{HPO_KEY:?}]")
    );
    assert!(err.reason.starts_with("cannot decode"), "{}", err.reason);
}

#[test]
fn unsupported_lb_policy_names_the_field() {
    let c = Cluster {
        lb_policy: ProtoLbPolicy::LoadBalancingPolicyConfig as i32,
        ..cluster("c", DiscoveryType::Eds)
    };
    let err = compile_cluster(&c).unwrap_err();
    assert_eq!(err.field, "lb_policy");
    assert!(
        err.reason.contains("LOAD_BALANCING_POLICY_CONFIG"),
        "{}",
        err.reason
    );
    assert_eq!(
        err.to_string(),
        format!("Cluster c: lb_policy: {}", err.reason)
    );
}

#[test]
fn original_dst_takes_cluster_provided() {
    let c = Cluster {
        lb_policy: ProtoLbPolicy::ClusterProvided as i32,
        ..cluster("PassthroughCluster", DiscoveryType::OriginalDst)
    };
    assert_eq!(compile(&c).discovery, Discovery::OriginalDst);

    let c = Cluster {
        lb_policy: ProtoLbPolicy::ClusterProvided as i32,
        ..cluster("c", DiscoveryType::Eds)
    };
    assert_eq!(compile_cluster(&c).unwrap_err().field, "lb_policy");
}

#[test]
fn static_and_dns_clusters_carry_their_endpoints() {
    let c = Cluster {
        load_assignment: Some(cla("c", vec![vec![lb("127.0.0.1", 8080)]])),
        ..cluster("c", DiscoveryType::Static)
    };
    let cfg = compile(&c);
    assert_eq!(cfg.discovery, Discovery::Static);
    assert_eq!(
        cfg.static_endpoints[0].address,
        EndpointAddress::Socket("127.0.0.1:8080".parse().expect("addr"))
    );

    let c = Cluster {
        load_assignment: Some(cla("c", vec![vec![lb("example.com", 443)]])),
        ..cluster("c", DiscoveryType::StrictDns)
    };
    assert_eq!(
        compile(&c).static_endpoints[0].address,
        EndpointAddress::Dns {
            host: "example.com".into(),
            port: 443
        }
    );

    // A STATIC cluster must list IPs.
    let c = Cluster {
        load_assignment: Some(cla("c", vec![vec![lb("example.com", 443)]])),
        ..cluster("c", DiscoveryType::Static)
    };
    let err = compile_cluster(&c).unwrap_err();
    assert_eq!(
        err.field,
        "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address"
    );

    // EDS clusters ignore an inline assignment: endpoints come over EDS.
    let c = Cluster {
        load_assignment: Some(cla("c", vec![vec![lb("10.0.0.1", 80)]])),
        ..cluster("c", DiscoveryType::Eds)
    };
    assert!(compile(&c).static_endpoints.is_empty());
}

#[test]
fn logical_dns_needs_one_endpoint() {
    let c = Cluster {
        load_assignment: Some(cla("c", vec![vec![lb("a.com", 80), lb("b.com", 80)]])),
        ..cluster("c", DiscoveryType::LogicalDns)
    };
    assert_eq!(compile_cluster(&c).unwrap_err().field, "load_assignment");
}

#[test]
fn rejects_bad_clusters() {
    let c = Cluster {
        connect_timeout: Some(ProtoDuration {
            seconds: -1,
            nanos: 0,
        }),
        ..cluster("c", DiscoveryType::Eds)
    };
    assert_eq!(compile_cluster(&c).unwrap_err().field, "connect_timeout");

    let c = Cluster {
        connect_timeout: Some(ProtoDuration::default()),
        ..cluster("c", DiscoveryType::Eds)
    };
    assert_eq!(compile_cluster(&c).unwrap_err().field, "connect_timeout");

    assert_eq!(
        compile_cluster(&cluster("", DiscoveryType::Eds))
            .unwrap_err()
            .field,
        "name"
    );

    let c = Cluster {
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(42)),
        ..cluster("c", DiscoveryType::Eds)
    };
    assert_eq!(compile_cluster(&c).unwrap_err().field, "type");
}

// Load balancing: policies, their configs and common_lb_config.

use xds_protos::pb::envoy::config::cluster::v3::cluster::{
    common_lb_config::{
        ConsistentHashingLbConfig, LocalityConfigSpecifier, LocalityWeightedLbConfig,
    },
    ring_hash_lb_config::HashFunction,
    CommonLbConfig, LbConfig, LbSubsetConfig, LeastRequestLbConfig, MaglevLbConfig,
    OriginalDstLbConfig, RingHashLbConfig, RoundRobinLbConfig, SlowStartConfig,
};
use xds_protos::pb::envoy::config::cluster::v3::LoadBalancingPolicy;
use xds_protos::pb::envoy::config::core::v3::RuntimeDouble;
use xds_protos::pb::envoy::r#type::v3::Percent;
use xds_protos::pb::google::protobuf::{UInt32Value, UInt64Value};

use crate::config::{RingHash, RingHashFunction, SlowStart};

fn with_lb(policy: ProtoLbPolicy, config: Option<LbConfig>) -> Cluster {
    Cluster {
        lb_policy: policy as i32,
        lb_config: config,
        ..cluster("c", DiscoveryType::Eds)
    }
}

fn lb_error(c: &Cluster) -> (String, String) {
    let err = compile_cluster(c).expect_err("must be refused");
    (err.field, err.reason)
}

fn secs(s: i64) -> ProtoDuration {
    ProtoDuration {
        seconds: s,
        nanos: 0,
    }
}

#[test]
fn ring_hash_with_envoy_defaults_and_settings() {
    let cfg = compile(&with_lb(ProtoLbPolicy::RingHash, None));
    assert_eq!(
        cfg.lb_policy,
        LbPolicy::RingHash(RingHash {
            minimum_ring_size: 1024,
            maximum_ring_size: 8 * 1024 * 1024,
            hash_function: RingHashFunction::XxHash,
        })
    );
    let c = with_lb(
        ProtoLbPolicy::RingHash,
        Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
            minimum_ring_size: Some(UInt64Value { value: 4096 }),
            maximum_ring_size: Some(UInt64Value { value: 65536 }),
            hash_function: HashFunction::XxHash as i32,
        })),
    );
    assert_eq!(
        compile(&c).lb_policy,
        LbPolicy::RingHash(RingHash {
            minimum_ring_size: 4096,
            maximum_ring_size: 65536,
            hash_function: RingHashFunction::XxHash,
        })
    );
}

#[test]
fn ring_hash_configs_are_checked_by_field() {
    let ring = |min: Option<u64>, max: Option<u64>, f: HashFunction| {
        with_lb(
            ProtoLbPolicy::RingHash,
            Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                minimum_ring_size: min.map(|value| UInt64Value { value }),
                maximum_ring_size: max.map(|value| UInt64Value { value }),
                hash_function: f as i32,
            })),
        )
    };
    assert_eq!(
        compile(&ring(None, None, HashFunction::MurmurHash2)).lb_policy,
        LbPolicy::RingHash(RingHash {
            minimum_ring_size: 1024,
            maximum_ring_size: 8 * 1024 * 1024,
            hash_function: RingHashFunction::MurmurHash2,
        })
    );
    let mut unknown = ring(None, None, HashFunction::XxHash);
    if let Some(LbConfig::RingHashLbConfig(r)) = &mut unknown.lb_config {
        r.hash_function = 7;
    }
    assert_eq!(lb_error(&unknown).0, "ring_hash_lb_config.hash_function");
    assert_eq!(
        lb_error(&ring(Some(2048), Some(1024), HashFunction::XxHash)).0,
        "ring_hash_lb_config.minimum_ring_size"
    );
    assert_eq!(
        lb_error(&ring(Some(0), None, HashFunction::XxHash)).0,
        "ring_hash_lb_config.minimum_ring_size"
    );
    assert_eq!(
        lb_error(&ring(None, Some(8 * 1024 * 1024 + 1), HashFunction::XxHash)).0,
        "ring_hash_lb_config.maximum_ring_size"
    );
}

#[test]
fn maglev_table_size_defaults_and_must_be_prime() {
    let cfg = compile(&with_lb(ProtoLbPolicy::Maglev, None));
    assert_eq!(cfg.lb_policy, LbPolicy::Maglev { table_size: 65537 });
    let maglev = |size: u64| {
        with_lb(
            ProtoLbPolicy::Maglev,
            Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                table_size: Some(UInt64Value { value: size }),
            })),
        )
    };
    assert_eq!(
        compile(&maglev(251)).lb_policy,
        LbPolicy::Maglev { table_size: 251 }
    );
    for bad in [0, 1, 65536, 5_000_012, 5_000_101] {
        assert_eq!(
            lb_error(&maglev(bad)).0,
            "maglev_lb_config.table_size",
            "{bad}"
        );
    }
}

#[test]
fn least_request_config_is_read() {
    let c = with_lb(
        ProtoLbPolicy::LeastRequest,
        Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
            choice_count: Some(UInt32Value { value: 5 }),
            active_request_bias: Some(RuntimeDouble {
                default_value: 0.5,
                runtime_key: "upstream.lr_bias".into(),
            }),
            slow_start_config: Some(SlowStartConfig {
                slow_start_window: Some(secs(30)),
                aggression: None,
                min_weight_percent: None,
            }),
        })),
    );
    assert_eq!(
        compile(&c).lb_policy,
        LbPolicy::LeastRequest(LeastRequest {
            choice_count: 5,
            active_request_bias: finite(0.5),
            slow_start: Some(SlowStart {
                window: Duration::from_secs(30),
                aggression: finite(1.0),
                min_weight: finite(0.1),
            }),
        })
    );

    let lr = |config: LeastRequestLbConfig| {
        with_lb(
            ProtoLbPolicy::LeastRequest,
            Some(LbConfig::LeastRequestLbConfig(config)),
        )
    };
    let c = lr(LeastRequestLbConfig {
        choice_count: Some(UInt32Value { value: 1 }),
        ..Default::default()
    });
    assert_eq!(lb_error(&c).0, "least_request_lb_config.choice_count");
    let c = lr(LeastRequestLbConfig {
        active_request_bias: Some(RuntimeDouble {
            default_value: -1.0,
            runtime_key: String::new(),
        }),
        ..Default::default()
    });
    assert_eq!(
        lb_error(&c).0,
        "least_request_lb_config.active_request_bias.default_value"
    );
}

#[test]
fn round_robin_slow_start_is_read_and_checked() {
    let rr = |slow: SlowStartConfig| {
        with_lb(
            ProtoLbPolicy::RoundRobin,
            Some(LbConfig::RoundRobinLbConfig(RoundRobinLbConfig {
                slow_start_config: Some(slow),
            })),
        )
    };
    let c = rr(SlowStartConfig {
        slow_start_window: Some(secs(60)),
        aggression: Some(RuntimeDouble {
            default_value: 2.0,
            runtime_key: String::new(),
        }),
        min_weight_percent: Some(Percent { value: 25.0 }),
    });
    assert_eq!(
        compile(&c).lb_policy,
        LbPolicy::RoundRobin {
            slow_start: Some(SlowStart {
                window: Duration::from_secs(60),
                aggression: finite(2.0),
                min_weight: finite(0.25),
            })
        }
    );
    // No window, or a zero one: no slow start, as in Envoy.
    let c = rr(SlowStartConfig::default());
    assert_eq!(
        compile(&c).lb_policy,
        LbPolicy::RoundRobin { slow_start: None }
    );
    let c = rr(SlowStartConfig {
        slow_start_window: Some(secs(0)),
        ..Default::default()
    });
    assert_eq!(
        compile(&c).lb_policy,
        LbPolicy::RoundRobin { slow_start: None }
    );

    let c = rr(SlowStartConfig {
        slow_start_window: Some(secs(60)),
        aggression: Some(RuntimeDouble {
            default_value: 0.0,
            runtime_key: String::new(),
        }),
        ..Default::default()
    });
    assert_eq!(
        lb_error(&c).0,
        "round_robin_lb_config.slow_start_config.aggression.default_value"
    );
    let c = rr(SlowStartConfig {
        slow_start_window: Some(secs(60)),
        min_weight_percent: Some(Percent { value: 150.0 }),
        ..Default::default()
    });
    assert_eq!(
        lb_error(&c).0,
        "round_robin_lb_config.slow_start_config.min_weight_percent.value"
    );
    let c = rr(SlowStartConfig {
        slow_start_window: Some(secs(-1)),
        ..Default::default()
    });
    assert_eq!(
        lb_error(&c).0,
        "round_robin_lb_config.slow_start_config.slow_start_window"
    );
}

#[test]
fn a_config_for_another_policy_is_refused() {
    let c = with_lb(
        ProtoLbPolicy::RoundRobin,
        Some(LbConfig::RingHashLbConfig(RingHashLbConfig::default())),
    );
    let (field, reason) = lb_error(&c);
    assert_eq!(field, "ring_hash_lb_config");
    assert!(reason.contains("ROUND_ROBIN"), "{reason}");
    let c = with_lb(
        ProtoLbPolicy::Maglev,
        Some(LbConfig::LeastRequestLbConfig(
            LeastRequestLbConfig::default(),
        )),
    );
    assert_eq!(lb_error(&c).0, "least_request_lb_config");
}

#[test]
fn original_dst_lb_config_is_accepted_only_when_empty() {
    let passthrough = |o: OriginalDstLbConfig| Cluster {
        lb_policy: ProtoLbPolicy::ClusterProvided as i32,
        lb_config: Some(LbConfig::OriginalDstLbConfig(o)),
        ..cluster("PassthroughCluster", DiscoveryType::OriginalDst)
    };
    assert_eq!(
        compile(&passthrough(OriginalDstLbConfig::default())).discovery,
        Discovery::OriginalDst
    );
    let c = passthrough(OriginalDstLbConfig {
        use_http_header: true,
        ..Default::default()
    });
    assert_eq!(lb_error(&c).0, "original_dst_lb_config");
}

#[test]
fn load_balancing_policy_and_subsets_are_refused_by_name() {
    let c = Cluster {
        load_balancing_policy: Some(LoadBalancingPolicy::default()),
        ..cluster("c", DiscoveryType::Eds)
    };
    assert_eq!(lb_error(&c).0, "load_balancing_policy");
    let c = Cluster {
        lb_subset_config: Some(LbSubsetConfig {
            subset_selectors: vec![Default::default()],
            ..Default::default()
        }),
        ..cluster("c", DiscoveryType::Eds)
    };
    assert_eq!(lb_error(&c).0, "lb_subset_config");
    // Without selectors there is no subset balancing: nothing to refuse.
    let c = Cluster {
        lb_subset_config: Some(LbSubsetConfig::default()),
        ..cluster("c", DiscoveryType::Eds)
    };
    assert!(compile_cluster(&c).is_ok());
}

#[test]
fn common_lb_config_panic_threshold_is_read() {
    let with_common = |common: CommonLbConfig| Cluster {
        common_lb_config: Some(common),
        ..cluster("c", DiscoveryType::Eds)
    };
    let c = with_common(CommonLbConfig {
        healthy_panic_threshold: Some(Percent { value: 0.0 }),
        // A zero merge window is what weft-proxy does anyway.
        update_merge_window: Some(secs(0)),
        ..Default::default()
    });
    assert_eq!(compile(&c).healthy_panic_threshold.get(), 0.0);
    assert_eq!(
        compile(&with_common(CommonLbConfig::default()))
            .healthy_panic_threshold
            .get(),
        50.0
    );
    let c = with_common(CommonLbConfig {
        healthy_panic_threshold: Some(Percent { value: 33.4 }),
        ..Default::default()
    });
    assert_eq!(compile(&c).healthy_panic_threshold.get(), 33.0);
    let c = with_common(CommonLbConfig {
        healthy_panic_threshold: Some(Percent { value: 101.0 }),
        ..Default::default()
    });
    assert_eq!(
        lb_error(&c).0,
        "common_lb_config.healthy_panic_threshold.value"
    );
}

#[test]
fn common_lb_config_settings_that_change_traffic_are_refused_by_name() {
    let refused = [
        (
            CommonLbConfig {
                locality_config_specifier: Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(
                    LocalityWeightedLbConfig {},
                )),
                ..Default::default()
            },
            "common_lb_config.locality_weighted_lb_config",
        ),
        (
            CommonLbConfig {
                locality_config_specifier: Some(LocalityConfigSpecifier::ZoneAwareLbConfig(
                    Default::default(),
                )),
                ..Default::default()
            },
            "common_lb_config.zone_aware_lb_config",
        ),
        (
            CommonLbConfig {
                update_merge_window: Some(secs(1)),
                ..Default::default()
            },
            "common_lb_config.update_merge_window",
        ),
        (
            CommonLbConfig {
                ignore_new_hosts_until_first_hc: true,
                ..Default::default()
            },
            "common_lb_config.ignore_new_hosts_until_first_hc",
        ),
        (
            CommonLbConfig {
                close_connections_on_host_set_change: true,
                ..Default::default()
            },
            "common_lb_config.close_connections_on_host_set_change",
        ),
        (
            CommonLbConfig {
                consistent_hashing_lb_config: Some(ConsistentHashingLbConfig {
                    use_hostname_for_hashing: true,
                    hash_balance_factor: None,
                }),
                ..Default::default()
            },
            "common_lb_config.consistent_hashing_lb_config.use_hostname_for_hashing",
        ),
        (
            CommonLbConfig {
                consistent_hashing_lb_config: Some(ConsistentHashingLbConfig {
                    use_hostname_for_hashing: false,
                    hash_balance_factor: Some(UInt32Value { value: 150 }),
                }),
                ..Default::default()
            },
            "common_lb_config.consistent_hashing_lb_config.hash_balance_factor",
        ),
        (
            CommonLbConfig {
                override_host_status: Some(Default::default()),
                ..Default::default()
            },
            "common_lb_config.override_host_status",
        ),
    ];
    for (common, field) in refused {
        let c = Cluster {
            common_lb_config: Some(common),
            ..cluster("c", DiscoveryType::Eds)
        };
        assert_eq!(lb_error(&c).0, field);
    }
}

#[test]
#[allow(deprecated)] // Envoy deprecated the cluster-level DNS fields; control planes still send them.
fn dns_settings_weft_proxy_does_not_follow_are_refused_by_name() {
    use xds_protos::pb::google::protobuf::Duration as ProtoDuration;
    let strict = || cluster("dns", DiscoveryType::StrictDns);
    let five = Cluster {
        dns_refresh_rate: Some(ProtoDuration {
            seconds: 5,
            nanos: 0,
        }),
        ..strict()
    };
    assert!(
        compile_cluster(&five).is_ok(),
        "Envoy's default rate is what weft-proxy does"
    );
    let sixty = Cluster {
        dns_refresh_rate: Some(ProtoDuration {
            seconds: 60,
            nanos: 0,
        }),
        ..strict()
    };
    assert_eq!(
        compile_cluster(&sixty).unwrap_err().field,
        "dns_refresh_rate"
    );
    let ttl = Cluster {
        respect_dns_ttl: true,
        ..strict()
    };
    assert_eq!(compile_cluster(&ttl).unwrap_err().field, "respect_dns_ttl");
    let v4 = Cluster {
        dns_lookup_family: 1,
        ..strict()
    };
    assert_eq!(compile_cluster(&v4).unwrap_err().field, "dns_lookup_family");
}

#[test]
fn a_cluster_asking_for_tls_is_refused_and_plaintext_accepted() {
    use xds_protos::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
    use xds_protos::pb::envoy::config::core::v3::{transport_socket::ConfigType, TransportSocket};
    let socket = |type_url: &str| TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(ConfigType::TypedConfig(Any {
            type_url: type_url.into(),
            value: Vec::new(),
        })),
    };
    let tls = Cluster {
        transport_socket: Some(socket(
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        )),
        ..cluster("c", DiscoveryType::Eds)
    };
    let err = compile_cluster(&tls).unwrap_err();
    assert_eq!(err.field, "transport_socket");
    assert!(err.reason.contains("UpstreamTlsContext"), "{}", err.reason);
    // Istio's mTLS: a socket chosen by endpoint metadata.
    let istio = Cluster {
        transport_socket_matches: vec![TransportSocketMatch {
            name: "tlsMode-istio".into(),
            ..Default::default()
        }],
        ..cluster("c", DiscoveryType::Eds)
    };
    assert_eq!(
        compile_cluster(&istio).unwrap_err().field,
        "transport_socket_matches"
    );
    let plaintext = Cluster {
        transport_socket: Some(socket(
            "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
        )),
        ..cluster("c", DiscoveryType::Eds)
    };
    compile(&plaintext);
}
