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
    compile_cluster, ClusterConfig, Discovery, EndpointAddress, LbPolicy, UpstreamProtocol,
};

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
    assert_eq!(cfg.lb_policy, LbPolicy::RoundRobin);
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
    assert_eq!(cfg.lb_policy, LbPolicy::LeastRequest);
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
        lb_policy: ProtoLbPolicy::RingHash as i32,
        ..cluster("c", DiscoveryType::Eds)
    };
    let err = compile_cluster(&c).unwrap_err();
    assert_eq!(err.field, "lb_policy");
    assert!(err.reason.contains("RING_HASH"), "{}", err.reason);
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
