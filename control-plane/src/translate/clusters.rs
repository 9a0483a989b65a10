//! Clusters: one per service port (all endpoints), plus one per DestinationRule subset, each
//! balancing as its DestinationRule says (`load_balancing`), with its connection pool limits
//! and outlier detection (`resilience`).

mod load_balancing;
mod resilience;
#[cfg(test)]
mod test_support;

use super::names::{is_http2, outbound_cluster};
use super::MeshSnapshot;
use crate::model::{LoadBalancerSettings, Resolution};
use crate::registry::Service;
use std::time::Duration;
use xds_protos::any::pack;
use xds_protos::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
};
use xds_protos::pb::envoy::config::cluster::v3::Cluster;
use xds_protos::pb::envoy::config::core::v3::{
    config_source::ConfigSourceSpecifier, AggregatedConfigSource, ApiVersion, ConfigSource,
    Http1ProtocolOptions, Http2ProtocolOptions,
};
use xds_protos::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
};
use xds_protos::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use xds_protos::pb::google::protobuf::Duration as PbDuration;
use xds_protos::type_url::HTTP_PROTOCOL_OPTIONS;

/// Istio's default connect timeout.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn clusters(mesh: &MeshSnapshot) -> Vec<Cluster> {
    let mut out = Vec::new();
    for svc in &mesh.registry.services {
        // As for subsets, the most specific DestinationRule for the host is the one in force.
        let rule = mesh
            .destination_rules_for(&svc.hostname)
            .into_iter()
            .next()
            .map(|r| &r.spec);
        for port in &svc.ports {
            let http2 = is_http2(port.protocol.as_deref());
            let lb = load_balancing::settings_for(rule, None, port.number);
            let res = resilience::settings_for(rule, None, port.number);
            out.push(cluster(mesh, svc, port.number, "", http2, lb, res));
            for subset in mesh.subsets_of(&svc.hostname) {
                let lb = load_balancing::settings_for(rule, Some(subset), port.number);
                let res = resilience::settings_for(rule, Some(subset), port.number);
                out.push(cluster(
                    mesh,
                    svc,
                    port.number,
                    &subset.name,
                    http2,
                    lb,
                    res,
                ));
            }
        }
    }
    let collectors = super::tracing::collector_clusters(mesh, &out);
    out.extend(collectors);
    out
}

fn cluster(
    mesh: &MeshSnapshot,
    svc: &Service,
    port: u32,
    subset: &str,
    http2: bool,
    lb: Option<&LoadBalancerSettings>,
    res: resilience::Resilience<'_>,
) -> Cluster {
    let name = outbound_cluster(port, subset, &svc.hostname);
    let mut c = Cluster {
        name: name.clone(),
        connect_timeout: Some(pb_duration(CONNECT_TIMEOUT)),
        ..Default::default()
    };
    match svc.resolution {
        Resolution::Dns | Resolution::DnsRoundRobin => {
            let kind = if svc.resolution == Resolution::Dns {
                DiscoveryType::StrictDns
            } else {
                DiscoveryType::LogicalDns
            };
            c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(kind as i32));
            c.load_assignment = Some(super::endpoints::assignment(mesh, svc, port, subset));
        }
        Resolution::None => {
            c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32,
            ));
        }
        Resolution::Static => {
            c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
            c.eds_cluster_config = Some(EdsClusterConfig {
                eds_config: Some(ads_config_source()),
                // Left empty, a proxy asks EDS for the cluster's own name. istiod repeats the
                // name here: a third of a cluster's encoding, in every CDS response.
                service_name: String::new(),
            });
        }
    }
    load_balancing::apply(&mut c, lb);
    let common = resilience::apply(&mut c, res);
    if http2 || common.is_some() {
        let protocol_config = if http2 {
            ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())
        } else {
            ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default())
        };
        let opts = HttpProtocolOptions {
            common_http_protocol_options: common,
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(protocol_config),
                },
            )),
            ..Default::default()
        };
        c.typed_extension_protocol_options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack(HTTP_PROTOCOL_OPTIONS, &opts),
        );
    }
    c
}

pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    }
}

pub fn pb_duration(d: Duration) -> PbDuration {
    PbDuration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}
