use xds_protos::pb::envoy::config::core::v3::HealthStatus;
use xds_protos::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint as ProtoEndpoint, LbEndpoint,
    LocalityLbEndpoints,
};
use xds_protos::pb::google::protobuf::UInt32Value;

use super::socket;
use crate::config::{compile_load_assignment, Endpoint, EndpointAddress};

pub(super) fn lb(ip: &str, port: u32) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(ProtoEndpoint {
            address: Some(socket(ip, port)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub(super) fn cla(name: &str, localities: Vec<Vec<LbEndpoint>>) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: localities
            .into_iter()
            .map(|lb_endpoints| LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn sock(s: &str) -> EndpointAddress {
    EndpointAddress::Socket(s.parse().expect("socket address"))
}

#[test]
fn flattens_localities_with_weights_and_health() {
    let weighted = LbEndpoint {
        load_balancing_weight: Some(UInt32Value { value: 3 }),
        ..lb("10.0.0.2", 9080)
    };
    let draining = LbEndpoint {
        health_status: HealthStatus::Draining as i32,
        ..lb("10.0.0.3", 9080)
    };
    let degraded = LbEndpoint {
        health_status: HealthStatus::Degraded as i32,
        ..lb("::1", 9080)
    };
    let unhealthy = LbEndpoint {
        health_status: HealthStatus::Unhealthy as i32,
        ..lb("10.0.0.4", 9080)
    };
    let timeout = LbEndpoint {
        health_status: HealthStatus::Timeout as i32,
        ..lb("10.0.0.5", 9080)
    };
    let c = cla(
        "outbound|9080||reviews.default.svc.cluster.local",
        vec![
            vec![lb("10.0.0.1", 9080), weighted],
            vec![draining, degraded, unhealthy, timeout],
        ],
    );
    let eps = compile_load_assignment(&c, false).expect("valid");
    let ep = |a: &str, weight, healthy| Endpoint {
        address: sock(a),
        weight,
        healthy,
        workload: None,
    };
    assert_eq!(
        eps,
        vec![
            ep("10.0.0.1:9080", 1, true),
            ep("10.0.0.2:9080", 3, true),
            ep("10.0.0.3:9080", 1, false),
            ep("[::1]:9080", 1, true),
            ep("10.0.0.4:9080", 1, false),
            ep("10.0.0.5:9080", 1, false),
        ]
    );
}

#[test]
fn host_names_only_when_allowed() {
    let c = cla("c", vec![vec![lb("10.0.0.1", 80), lb("db.internal", 5432)]]);
    let err = compile_load_assignment(&c, false).unwrap_err();
    assert_eq!(err.type_url_short, "ClusterLoadAssignment");
    assert_eq!(err.resource, "c");
    assert_eq!(
        err.field,
        "endpoints[0].lb_endpoints[1].endpoint.address.socket_address.address"
    );
    assert!(err.reason.contains("not an IP address"), "{}", err.reason);

    let eps = compile_load_assignment(&c, true).expect("valid");
    assert_eq!(
        eps[1].address,
        EndpointAddress::Dns {
            host: "db.internal".into(),
            port: 5432
        }
    );
}

#[test]
fn rejects_bad_endpoints() {
    let zero_weight = LbEndpoint {
        load_balancing_weight: Some(UInt32Value { value: 0 }),
        ..lb("10.0.0.1", 80)
    };
    let err = compile_load_assignment(&cla("c", vec![vec![zero_weight]]), false).unwrap_err();
    assert_eq!(
        err.field,
        "endpoints[0].lb_endpoints[0].load_balancing_weight"
    );

    let err = compile_load_assignment(&cla("c", vec![vec![], vec![lb("10.0.0.1", 70000)]]), false)
        .unwrap_err();
    assert_eq!(
        err.field,
        "endpoints[1].lb_endpoints[0].endpoint.address.socket_address.port_value"
    );

    let named = LbEndpoint {
        host_identifier: Some(HostIdentifier::EndpointName("e".into())),
        ..Default::default()
    };
    let err = compile_load_assignment(&cla("c", vec![vec![named]]), false).unwrap_err();
    assert_eq!(err.field, "endpoints[0].lb_endpoints[0].endpoint_name");
    assert_eq!(err.reason, "not supported");

    let err = compile_load_assignment(&cla("", vec![]), false).unwrap_err();
    assert_eq!(err.field, "cluster_name");
}

#[test]
fn empty_assignment_is_valid() {
    assert_eq!(
        compile_load_assignment(&cla("c", vec![]), false),
        Ok(vec![])
    );
}
