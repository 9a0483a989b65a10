//! ServiceEntry and WorkloadEntry checks.

use super::common::*;
use super::Findings;
use crate::model::path::FieldPath;
use crate::model::service_entry::*;
use std::collections::BTreeSet;
use std::net::IpAddr;

pub(super) fn check_service_entry(se: &ServiceEntry, f: &mut Findings) {
    let spec = FieldPath::spec();
    if se.hosts.is_empty() {
        f.error(&spec.key("hosts"), "a ServiceEntry needs at least one host");
    }
    check_hosts(f, &spec.key("hosts"), &se.hosts);
    for (i, address) in se.addresses.iter().enumerate() {
        if !is_ip_or_cidr(address) {
            f.error(
                &spec.key("addresses").index(i),
                format!("{address:?} is neither an IP address nor a CIDR block"),
            );
        }
    }
    if se.ports.is_empty() {
        f.error(&spec.key("ports"), "a ServiceEntry needs at least one port");
    }
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, port) in se.ports.iter().enumerate() {
        let p = spec.key("ports").index(i);
        check_port(f, &p.key("number"), port.number);
        if !numbers.insert(port.number) {
            f.error(
                &p.key("number"),
                format!("port {} is declared twice", port.number),
            );
        }
        if port.name.is_empty() {
            f.error(&p.key("name"), "a port needs a name");
        } else if !names.insert(port.name.as_str()) {
            f.error(
                &p.key("name"),
                format!("port name {:?} is used twice", port.name),
            );
        }
        check_optional_port(f, &p.key("targetPort"), port.target_port);
    }
    if se.workload_selector.is_some() && !se.endpoints.is_empty() {
        f.error(
            &spec.key("workloadSelector"),
            "set either endpoints or workloadSelector, not both",
        );
    }
    if let Some(selector) = &se.workload_selector {
        check_label_keys(
            f,
            &spec.key("workloadSelector").key("labels"),
            &selector.labels,
        );
    }
    for (i, ep) in se.endpoints.iter().enumerate() {
        let p = spec.key("endpoints").index(i);
        check_workload(f, &p, ep);
        if se.resolution == Resolution::Static
            && !ep.address.is_empty()
            && !is_ip_or_socket(&ep.address)
        {
            f.error(
                &p.key("address"),
                format!(
                    "{:?} is not an IP address or unix:// socket, as STATIC resolution requires (use DNS resolution for host names)",
                    ep.address
                ),
            );
        }
        for name in ep.ports.keys() {
            if !names.contains(name.as_str()) {
                f.error(
                    &p.key("ports").key(name),
                    format!("port name {name:?} is not one of the ServiceEntry's ports"),
                );
            }
        }
    }
    check_export_to(f, &spec.key("exportTo"), &se.export_to);
    for (i, san) in se.subject_alt_names.iter().enumerate() {
        if san.is_empty() {
            f.error(&spec.key("subjectAltNames").index(i), "must not be empty");
        }
    }
}

pub(super) fn check_workload_entry(we: &WorkloadEntrySpec, f: &mut Findings) {
    check_workload(f, &FieldPath::spec(), we);
}

fn check_workload(f: &mut Findings, p: &FieldPath, w: &WorkloadEntrySpec) {
    // Istio allows a workload without an address only when its network is reachable
    // through a gateway.
    if w.address.is_empty() && w.network.is_none() {
        f.error(&p.key("address"), "address is required");
    }
    if w.address.starts_with("unix://") && !w.ports.is_empty() {
        f.error(&p.key("ports"), "a unix:// socket address takes no ports");
    }
    for (name, port) in &w.ports {
        check_port(f, &p.key("ports").key(name), *port);
    }
    check_label_keys(f, &p.key("labels"), &w.labels);
}

fn is_ip_or_socket(address: &str) -> bool {
    address.parse::<IpAddr>().is_ok()
        || address
            .strip_prefix("unix://")
            .is_some_and(|p| !p.is_empty())
}
