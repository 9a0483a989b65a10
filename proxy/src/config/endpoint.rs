//! `ClusterLoadAssignment` to a flat list of endpoints.
//!
//! Localities and priorities are flattened: every endpoint of every locality lands in one list,
//! so locality weights and priority failover are not applied (yet).

use std::net::{IpAddr, SocketAddr};

use xds_protos::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, HealthStatus, SocketAddress,
};
use xds_protos::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, locality_lb_endpoints::LbConfig, ClusterLoadAssignment, LbEndpoint,
};

use super::error::{AtField, FieldError, ValidationError};
use super::workload_metadata::{workload_metadata, WorkloadMetadata};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: EndpointAddress,
    /// `load_balancing_weight`, 1 when unset.
    pub weight: u32,
    /// False for `UNHEALTHY`, `DRAINING` and `TIMEOUT`; `UNKNOWN` counts as healthy, as in
    /// Envoy, and so does `DEGRADED` (degraded hosts are not yet treated specially).
    pub healthy: bool,
    /// Who the endpoint is, from its telemetry metadata, for Istio's `destination_*` labels.
    pub workload: Option<Arc<WorkloadMetadata>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndpointAddress {
    Socket(SocketAddr),
    /// A host name to resolve, only for `STRICT_DNS` / `LOGICAL_DNS` clusters.
    Dns {
        host: String,
        port: u16,
    },
}

/// Compiles an EDS resource. `allow_hostnames` is for the load assignment embedded in a DNS
/// cluster; EDS proper must carry IP addresses.
pub fn compile_load_assignment(
    cla: &ClusterLoadAssignment,
    allow_hostnames: bool,
) -> Result<Vec<Endpoint>, ValidationError> {
    let result = if cla.cluster_name.is_empty() {
        Err(FieldError::new("cluster_name", "must not be empty"))
    } else {
        endpoints(cla, allow_hostnames)
    };
    result.map_err(|e| e.into_error("ClusterLoadAssignment", &cla.cluster_name))
}

#[allow(deprecated)] // `load_balancer_endpoints` is deprecated but still sent.
pub(crate) fn endpoints(
    cla: &ClusterLoadAssignment,
    allow_hostnames: bool,
) -> Result<Vec<Endpoint>, FieldError> {
    let mut out = Vec::new();
    for (i, locality) in cla.endpoints.iter().enumerate() {
        for (j, lb) in locality.lb_endpoints.iter().enumerate() {
            out.push(
                lb_endpoint(lb, allow_hostnames)
                    .at_index("lb_endpoints", j)
                    .at_index("endpoints", i)?,
            );
        }
        match &locality.lb_config {
            None => {}
            Some(LbConfig::LoadBalancerEndpoints(list)) => {
                for (j, lb) in list.lb_endpoints.iter().enumerate() {
                    out.push(
                        lb_endpoint(lb, allow_hostnames)
                            .at_index("load_balancer_endpoints.lb_endpoints", j)
                            .at_index("endpoints", i)?,
                    );
                }
            }
            Some(LbConfig::LedsClusterLocalityConfig(_)) => {
                return Err(FieldError::unsupported("leds_cluster_locality_config")
                    .under(&format!("endpoints[{i}]")));
            }
        }
    }
    Ok(out)
}

fn lb_endpoint(lb: &LbEndpoint, allow_hostnames: bool) -> Result<Endpoint, FieldError> {
    let endpoint = match &lb.host_identifier {
        Some(HostIdentifier::Endpoint(e)) => e,
        Some(HostIdentifier::EndpointName(_)) => {
            return Err(FieldError::unsupported("endpoint_name"))
        }
        None => return Err(FieldError::new("endpoint", "required")),
    };
    let address = endpoint
        .address
        .as_ref()
        .ok_or_else(|| FieldError::new("address", "required"))
        .and_then(|a| endpoint_address(a, allow_hostnames).at("address"))
        .at("endpoint")?;
    let weight = match lb.load_balancing_weight {
        None => 1,
        Some(w) if w.value >= 1 => w.value,
        Some(_) => {
            return Err(FieldError::new(
                "load_balancing_weight",
                "must be at least 1",
            ))
        }
    };
    let healthy = !matches!(
        HealthStatus::try_from(lb.health_status),
        Ok(HealthStatus::Unhealthy | HealthStatus::Draining | HealthStatus::Timeout)
    );
    let workload = workload_metadata(lb.metadata.as_ref())?;
    Ok(Endpoint {
        address,
        weight,
        healthy,
        workload,
    })
}

/// A `socket_address` as an IP and port, or, when `allow_hostnames`, a host name to resolve.
pub(crate) fn endpoint_address(
    addr: &Address,
    allow_hostnames: bool,
) -> Result<EndpointAddress, FieldError> {
    let sa = match &addr.address {
        Some(address::Address::SocketAddress(sa)) => sa,
        Some(address::Address::Pipe(_)) => return Err(FieldError::unsupported("pipe")),
        Some(address::Address::EnvoyInternalAddress(_)) => {
            return Err(FieldError::unsupported("envoy_internal_address"))
        }
        None => return Err(FieldError::new("socket_address", "required")),
    };
    socket_address(sa, allow_hostnames).at("socket_address")
}

fn socket_address(
    sa: &SocketAddress,
    allow_hostnames: bool,
) -> Result<EndpointAddress, FieldError> {
    let port = match &sa.port_specifier {
        Some(PortSpecifier::PortValue(p)) => u16::try_from(*p)
            .map_err(|_| FieldError::new("port_value", format!("{p} is not a valid port")))?,
        Some(PortSpecifier::NamedPort(_)) => return Err(FieldError::unsupported("named_port")),
        None => return Err(FieldError::new("port_value", "required")),
    };
    if let Ok(ip) = sa.address.parse::<IpAddr>() {
        return Ok(EndpointAddress::Socket(SocketAddr::new(ip, port)));
    }
    if sa.address.is_empty() {
        return Err(FieldError::new("address", "must not be empty"));
    }
    if !allow_hostnames {
        return Err(FieldError::new(
            "address",
            format!(
                "{:?} is not an IP address (host names are only allowed in STRICT_DNS and \
                 LOGICAL_DNS clusters)",
                sa.address
            ),
        ));
    }
    Ok(EndpointAddress::Dns {
        host: sa.address.clone(),
        port,
    })
}
