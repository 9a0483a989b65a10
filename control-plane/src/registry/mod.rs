//! The service registry: the services of the mesh and their endpoints, built from
//! ServiceEntries and WorkloadEntries (later also from Kubernetes Services and
//! EndpointSlices).

use crate::model::{ConfigSet, Resolution, ServicePort, WorkloadEntrySpec};
use serde::Serialize;
use std::collections::BTreeMap;

/// Every service, sorted by host name; one per host name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Registry {
    pub services: Vec<Service>,
}

/// A service: one host of a ServiceEntry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// As written in the ServiceEntry.
    pub hostname: String,
    /// The ServiceEntry's namespace.
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    pub resolution: Resolution,
    pub endpoints: Vec<Endpoint>,
    /// The ServiceEntry's virtual IPs or CIDR blocks.
    pub addresses: Vec<String>,
}

/// One workload behind a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// An IP, a DNS name (DNS resolution) or `unix:///path`.
    pub address: String,
    pub labels: BTreeMap<String, String>,
    /// Load-balancing weight, at least 1.
    pub weight: u32,
    /// Service port name -> port on this endpoint.
    pub ports: BTreeMap<String, u32>,
    /// The workload it is, for telemetry: a WorkloadEntry's workload name (its
    /// `service.istio.io/workload-name` label, else its name) and namespace, as istiod names
    /// it; empty for a ServiceEntry's inline endpoints, which istiod leaves unnamed too.
    pub workload_name: String,
    pub workload_namespace: String,
}

impl Service {
    /// The port `ep` receives traffic on for service port `sp`: the endpoint's own port for
    /// that port name, else the port's targetPort, else the port's number.
    pub fn endpoint_port(&self, ep: &Endpoint, sp: &ServicePort) -> u32 {
        ep.ports
            .get(&sp.name)
            .copied()
            .or(sp.target_port)
            .unwrap_or(sp.number)
    }

    pub fn port(&self, number: u32) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }
}

impl Registry {
    /// One service per ServiceEntry host. Its endpoints are the inline `endpoints`, or, with a
    /// `workloadSelector`, every WorkloadEntry of the ServiceEntry's namespace whose labels
    /// contain the selector's. When several ServiceEntries declare a host, the first by
    /// namespace and name provides it (the store warns about the others).
    pub fn build(config: &ConfigSet) -> Registry {
        let mut services: BTreeMap<&str, Service> = BTreeMap::new();
        for se in &config.service_entries {
            let endpoints: Vec<Endpoint> = match &se.spec.workload_selector {
                Some(selector) => config
                    .workload_entries
                    .iter()
                    .filter(|we| we.meta.namespace == se.meta.namespace)
                    .map(|we| {
                        // Istio merges the WorkloadEntry's metadata labels into its spec's,
                        // the metadata winning on conflicts.
                        let mut labels = we.spec.labels.clone();
                        labels.extend(we.meta.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                        (labels, we)
                    })
                    .filter(|(labels, _)| subset_matches(&selector.labels, labels))
                    .map(|(labels, we)| Endpoint {
                        workload_name: labels
                            .get(WORKLOAD_NAME_LABEL)
                            .unwrap_or(&we.meta.name)
                            .clone(),
                        workload_namespace: we.meta.namespace.clone(),
                        labels,
                        ..endpoint(&we.spec)
                    })
                    .collect(),
                None => se.spec.endpoints.iter().map(endpoint).collect(),
            };
            for host in &se.spec.hosts {
                services.entry(host.as_str()).or_insert_with(|| Service {
                    hostname: host.clone(),
                    namespace: se.meta.namespace.clone(),
                    ports: se.spec.ports.clone(),
                    resolution: se.spec.resolution,
                    endpoints: endpoints.clone(),
                    addresses: se.spec.addresses.clone(),
                });
            }
        }
        Registry {
            services: services.into_values().collect(),
        }
    }

    pub fn service(&self, hostname: &str) -> Option<&Service> {
        self.services
            .binary_search_by(|s| s.hostname.as_str().cmp(hostname))
            .ok()
            .map(|i| &self.services[i])
    }
}

fn endpoint(w: &WorkloadEntrySpec) -> Endpoint {
    Endpoint {
        address: w.address.clone(),
        labels: w.labels.clone(),
        // Istio's weight 0 means "not set", which is 1.
        weight: w.weight.filter(|w| *w > 0).unwrap_or(1),
        ports: w.ports.clone(),
        workload_name: String::new(),
        workload_namespace: String::new(),
    }
}

/// The label that names a WorkloadEntry's workload in telemetry, over the entry's own name.
pub const WORKLOAD_NAME_LABEL: &str = "service.istio.io/workload-name";

/// Whether an endpoint with `endpoint_labels` belongs to a subset (or selector) with
/// `subset_labels`: every subset label is present with the same value.
pub fn subset_matches(
    subset_labels: &BTreeMap<String, String>,
    endpoint_labels: &BTreeMap<String, String>,
) -> bool {
    subset_labels
        .iter()
        .all(|(k, v)| endpoint_labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests;
