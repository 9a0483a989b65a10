//! `Cluster` to the settings the cluster manager needs.

use std::time::Duration;

use prost::Message;
use xds_protos::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType, LbPolicy as ProtoLbPolicy},
    Cluster,
};
use xds_protos::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{explicit_http_config::ProtocolConfig, UpstreamProtocolOptions},
    HttpProtocolOptions,
};
use xds_protos::type_url;

use super::endpoint::{endpoints, Endpoint};
use super::error::{duration, AtField, FieldError, ValidationError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub name: String,
    pub discovery: Discovery,
    pub lb_policy: LbPolicy,
    pub protocol: UpstreamProtocol,
    /// Envoy's default is 5 s.
    pub connect_timeout: Duration,
    /// The name to ask EDS for: `eds_cluster_config.service_name`, or the cluster name.
    pub eds_service_name: String,
    /// From `load_assignment`, for `STATIC`, `STRICT_DNS` and `LOGICAL_DNS` clusters; empty for
    /// the others.
    pub static_endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    Static,
    StrictDns,
    LogicalDns,
    Eds,
    OriginalDst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    Http2,
}

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The key of `typed_extension_protocol_options` that carries the upstream HTTP settings.
const HTTP_PROTOCOL_OPTIONS_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

pub fn compile_cluster(c: &Cluster) -> Result<ClusterConfig, ValidationError> {
    compile(c).map_err(|e| e.into_error("Cluster", &c.name))
}

fn compile(c: &Cluster) -> Result<ClusterConfig, FieldError> {
    if c.name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    let discovery = discovery(c)?;
    let lb_policy = lb_policy(c.lb_policy, discovery)?;
    let connect_timeout = match &c.connect_timeout {
        None => DEFAULT_CONNECT_TIMEOUT,
        Some(d) => match duration(d).at("connect_timeout")? {
            Duration::ZERO => {
                return Err(FieldError::new("connect_timeout", "must be greater than 0"))
            }
            d => d,
        },
    };
    let eds_service_name = c
        .eds_cluster_config
        .as_ref()
        .map(|e| e.service_name.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(&c.name)
        .to_string();
    let static_endpoints = match (discovery, &c.load_assignment) {
        (Discovery::Static | Discovery::StrictDns | Discovery::LogicalDns, Some(cla)) => {
            let allow_hostnames = discovery != Discovery::Static;
            endpoints(cla, allow_hostnames).at("load_assignment")?
        }
        _ => Vec::new(),
    };
    // Envoy resolves exactly one name for a logical DNS cluster.
    if discovery == Discovery::LogicalDns && static_endpoints.len() != 1 {
        return Err(FieldError::new(
            "load_assignment",
            "a LOGICAL_DNS cluster needs exactly one endpoint",
        ));
    }
    Ok(ClusterConfig {
        name: c.name.clone(),
        discovery,
        lb_policy,
        protocol: protocol(c)?,
        connect_timeout,
        eds_service_name,
        static_endpoints,
    })
}

fn discovery(c: &Cluster) -> Result<Discovery, FieldError> {
    let raw = match &c.cluster_discovery_type {
        // The proto default, STATIC.
        None => 0,
        Some(ClusterDiscoveryType::Type(t)) => *t,
        Some(ClusterDiscoveryType::ClusterType(_)) => {
            return Err(FieldError::unsupported("cluster_type"))
        }
    };
    Ok(match DiscoveryType::try_from(raw) {
        Ok(DiscoveryType::Static) => Discovery::Static,
        Ok(DiscoveryType::StrictDns) => Discovery::StrictDns,
        Ok(DiscoveryType::LogicalDns) => Discovery::LogicalDns,
        Ok(DiscoveryType::Eds) => Discovery::Eds,
        Ok(DiscoveryType::OriginalDst) => Discovery::OriginalDst,
        Err(_) => {
            return Err(FieldError::new(
                "type",
                format!("unknown discovery type {raw}"),
            ))
        }
    })
}

/// `CLUSTER_PROVIDED` is accepted for `ORIGINAL_DST` clusters, which Envoy requires to use it
/// (Istio's `PassthroughCluster`): the destination is the original one, so no balancer runs and
/// the value stored is irrelevant.
fn lb_policy(raw: i32, discovery: Discovery) -> Result<LbPolicy, FieldError> {
    match ProtoLbPolicy::try_from(raw) {
        Ok(ProtoLbPolicy::RoundRobin) => Ok(LbPolicy::RoundRobin),
        Ok(ProtoLbPolicy::LeastRequest) => Ok(LbPolicy::LeastRequest),
        Ok(ProtoLbPolicy::Random) => Ok(LbPolicy::Random),
        Ok(ProtoLbPolicy::ClusterProvided) if discovery == Discovery::OriginalDst => {
            Ok(LbPolicy::RoundRobin)
        }
        Ok(other) => Err(FieldError::new(
            "lb_policy",
            format!(
                "{} is not supported (use ROUND_ROBIN, LEAST_REQUEST or RANDOM)",
                other.as_str_name()
            ),
        )),
        Err(_) => Err(FieldError::new(
            "lb_policy",
            format!("unknown policy {raw}"),
        )),
    }
}

/// HTTP/2 only when asked for explicitly; `use_downstream_protocol_config` and `auto_config`
/// are not implemented and fall back to HTTP/1.1.
#[allow(deprecated)] // `http2_protocol_options` on the cluster is deprecated but still sent.
fn protocol(c: &Cluster) -> Result<UpstreamProtocol, FieldError> {
    if let Some(any) = c
        .typed_extension_protocol_options
        .get(HTTP_PROTOCOL_OPTIONS_KEY)
    {
        let field = format!("typed_extension_protocol_options[{HTTP_PROTOCOL_OPTIONS_KEY:?}]");
        if any.type_url != type_url::HTTP_PROTOCOL_OPTIONS {
            return Err(FieldError::new(
                field,
                format!(
                    "expected {}, got {}",
                    type_url::HTTP_PROTOCOL_OPTIONS,
                    any.type_url
                ),
            ));
        }
        let options = HttpProtocolOptions::decode(any.value.as_slice())
            .map_err(|e| FieldError::new(field, format!("cannot decode: {e}")))?;
        if let Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) =
            &options.upstream_protocol_options
        {
            if let Some(ProtocolConfig::Http2ProtocolOptions(_)) = &explicit.protocol_config {
                return Ok(UpstreamProtocol::Http2);
            }
        }
    }
    if c.http2_protocol_options.is_some() {
        return Ok(UpstreamProtocol::Http2);
    }
    Ok(UpstreamProtocol::Http1)
}
