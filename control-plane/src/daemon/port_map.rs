//! `weftd --local-port-map 19080=29080,...`: moves loopback endpoints to other ports.
//!
//! `weftctl up --app-port-base N` starts the demo apps on ports other than the ones their
//! WorkloadEntries declare (so a second mesh, or the tests, can run beside the first one)
//! without rewriting the user's folder, which weftd keeps watching. weftd is told the moves
//! and applies them to the valid configuration before translating it, on every load.
//!
//! Only endpoints on a loopback address are moved (WorkloadEntries and ServiceEntry inline
//! endpoints): the map describes processes on this machine, never a remote workload that
//! happens to use the same port number.

use crate::model::{ConfigSet, WorkloadEntrySpec};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Declared port -> the port the workload really listens on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalPortMap(BTreeMap<u32, u32>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortMapError {
    #[error("{0:?} is not FROM=TO (e.g. 19080=29080)")]
    NotAPair(String),
    #[error("{0:?} is not a TCP port (1-65535)")]
    BadPort(String),
    #[error("port {0} is mapped twice")]
    Twice(u32),
}

impl LocalPortMap {
    /// Parses `FROM=TO,FROM=TO`; an empty string is the empty map.
    pub fn parse(text: &str) -> Result<LocalPortMap, PortMapError> {
        let mut map = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (from, to) = pair
                .split_once('=')
                .ok_or_else(|| PortMapError::NotAPair(pair.to_string()))?;
            let (from, to) = (port(from)?, port(to)?);
            if map.insert(from, to).is_some() {
                return Err(PortMapError::Twice(from));
            }
        }
        Ok(LocalPortMap(map))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The configuration with every mapped loopback endpoint port replaced.
    pub fn apply(&self, mut config: ConfigSet) -> ConfigSet {
        if self.is_empty() {
            return config;
        }
        // Copies of the (shared) resources, for this one use.
        for we in &mut config.workload_entries {
            self.apply_to(&mut Arc::make_mut(we).spec);
        }
        for se in &mut config.service_entries {
            for endpoint in &mut Arc::make_mut(se).spec.endpoints {
                self.apply_to(endpoint);
            }
        }
        config
    }

    fn apply_to(&self, endpoint: &mut WorkloadEntrySpec) {
        if !is_loopback(&endpoint.address) {
            return;
        }
        for port in endpoint.ports.values_mut() {
            if let Some(to) = self.0.get(port) {
                *port = *to;
            }
        }
    }
}

impl std::fmt::Display for LocalPortMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pairs: Vec<String> = self.0.iter().map(|(a, b)| format!("{a}={b}")).collect();
        f.write_str(&pairs.join(","))
    }
}

fn port(text: &str) -> Result<u32, PortMapError> {
    match text.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(u32::from(p)),
        _ => Err(PortMapError::BadPort(text.trim().to_string())),
    }
}

fn is_loopback(address: &str) -> bool {
    address == "localhost" || address.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_file_detailed;

    const YAML: &str = r#"apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: local, namespace: default}
spec:
  address: 127.0.0.1
  ports: {http: 19080, grpc: 19999}
  labels: {app: a}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: remote, namespace: default}
spec:
  address: 10.0.0.7
  ports: {http: 19080}
  labels: {app: a}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: inline, namespace: default}
spec:
  hosts: [inline.default.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: 19080}
"#;

    fn config() -> ConfigSet {
        let parsed = parse_file_detailed(std::path::Path::new("t.yaml"), YAML);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let mut store = crate::source::Store::new();
        let outcome = store.apply(vec![parsed]);
        assert!(!outcome.has_errors(), "{:?}", outcome.diagnostics);
        store.config()
    }

    #[test]
    fn parses_pairs_and_refuses_nonsense() {
        let map = LocalPortMap::parse("19080=29080, 19081=29081").unwrap();
        assert_eq!(map.to_string(), "19080=29080,19081=29081");
        assert!(LocalPortMap::parse("").unwrap().is_empty());
        assert_eq!(
            LocalPortMap::parse("19080"),
            Err(PortMapError::NotAPair("19080".into()))
        );
        assert_eq!(
            LocalPortMap::parse("19080=70000"),
            Err(PortMapError::BadPort("70000".into()))
        );
        assert_eq!(LocalPortMap::parse("1=2,1=3"), Err(PortMapError::Twice(1)));
    }

    #[test]
    fn moves_only_mapped_ports_of_loopback_endpoints() {
        let map = LocalPortMap::parse("19080=29080").unwrap();
        let moved = map.apply(config());
        let we = |name: &str| {
            moved
                .workload_entries
                .iter()
                .find(|w| w.meta.name == name)
                .unwrap()
                .spec
                .ports
                .clone()
        };
        assert_eq!(we("local")["http"], 29080);
        assert_eq!(we("local")["grpc"], 19999, "unmapped ports stay");
        assert_eq!(we("remote")["http"], 19080, "remote workloads stay");
        assert_eq!(
            moved.service_entries[0].spec.endpoints[0].ports["http"],
            29080
        );
    }

    #[test]
    fn the_empty_map_changes_nothing() {
        assert_eq!(LocalPortMap::default().apply(config()), config());
    }
}
