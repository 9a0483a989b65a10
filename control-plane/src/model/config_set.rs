//! The set of valid resources that translation works from.

use super::meta::{AnyResource, Resource};
use super::{DestinationRule, ServiceEntry, Sidecar, Telemetry, VirtualService, WorkloadEntrySpec};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every valid resource, each kind sorted by (namespace, name). Hosts in VirtualServices and
/// DestinationRules are resolved to fully qualified names (`model::fqdn`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConfigSet {
    pub virtual_services: Vec<Arc<Resource<VirtualService>>>,
    pub destination_rules: Vec<Arc<Resource<DestinationRule>>>,
    pub service_entries: Vec<Arc<Resource<ServiceEntry>>>,
    pub workload_entries: Vec<Arc<Resource<WorkloadEntrySpec>>>,
    pub telemetries: Vec<Arc<Resource<Telemetry>>>,
    pub sidecars: Vec<Arc<Resource<Sidecar>>>,
}

impl ConfigSet {
    /// Sorts the resources into a set; hosts are taken as they are.
    pub fn from_resources(resources: impl IntoIterator<Item = AnyResource>) -> Self {
        let mut set = ConfigSet::default();
        for resource in resources {
            match resource {
                AnyResource::VirtualService(r) => set.virtual_services.push(r),
                AnyResource::DestinationRule(r) => set.destination_rules.push(r),
                AnyResource::ServiceEntry(r) => set.service_entries.push(r),
                AnyResource::WorkloadEntry(r) => set.workload_entries.push(r),
                AnyResource::Telemetry(r) => set.telemetries.push(r),
                AnyResource::Sidecar(r) => set.sidecars.push(r),
            }
        }
        fn by_name<T>(r: &Arc<Resource<T>>) -> (String, String) {
            (r.meta.namespace.clone(), r.meta.name.clone())
        }
        set.virtual_services.sort_by_key(by_name);
        set.destination_rules.sort_by_key(by_name);
        set.service_entries.sort_by_key(by_name);
        set.workload_entries.sort_by_key(by_name);
        set.telemetries.sort_by_key(by_name);
        set.sidecars.sort_by_key(by_name);
        set
    }

    pub fn len(&self) -> usize {
        self.virtual_services.len()
            + self.destination_rules.len()
            + self.service_entries.len()
            + self.workload_entries.len()
            + self.telemetries.len()
            + self.sidecars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every resource, kind by kind.
    pub fn resources(&self) -> impl Iterator<Item = AnyResource> + '_ {
        let vs = self
            .virtual_services
            .iter()
            .cloned()
            .map(AnyResource::VirtualService);
        let dr = self
            .destination_rules
            .iter()
            .cloned()
            .map(AnyResource::DestinationRule);
        let se = self
            .service_entries
            .iter()
            .cloned()
            .map(AnyResource::ServiceEntry);
        let we = self
            .workload_entries
            .iter()
            .cloned()
            .map(AnyResource::WorkloadEntry);
        let te = self.telemetries.iter().cloned().map(AnyResource::Telemetry);
        let sc = self.sidecars.iter().cloned().map(AnyResource::Sidecar);
        vs.chain(dr).chain(se).chain(we).chain(te).chain(sc)
    }

    /// The Sidecar that applies to a workload of `namespace` with `labels`: one in the
    /// namespace selecting the workload, else the namespace's one without a selector, else the
    /// root namespace's one without a selector. Where Istio leaves the choice undefined (two
    /// that select the workload), the first by name wins, so the choice is stable.
    pub fn sidecar_for(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        root_namespace: &str,
    ) -> Option<&Resource<Sidecar>> {
        let selects = |s: &Sidecar| {
            s.workload_selector.as_ref().is_some_and(|sel| {
                sel.labels
                    .iter()
                    .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
            })
        };
        let in_ns = |ns: &str| -> Vec<&Resource<Sidecar>> {
            self.sidecars
                .iter()
                .filter(|r| r.meta.namespace == ns)
                .map(|r| &**r)
                .collect()
        };
        let own = in_ns(namespace);
        own.iter()
            .find(|r| selects(&r.spec))
            .or_else(|| own.iter().find(|r| r.spec.workload_selector.is_none()))
            .copied()
            .or_else(|| {
                in_ns(root_namespace)
                    .into_iter()
                    .find(|r| r.spec.workload_selector.is_none())
            })
    }
}
