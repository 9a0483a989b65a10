//! The few facts `weftctl up` needs from a config folder: which WorkloadEntries to run as
//! local demo apps, and the ServiceEntry ports to show in the ready-to-paste curl line.
//!
//! Read with the same loader weftd uses, so `up` and weftd never disagree about the folder.
//! Errors in the folder are shown as warnings here: weftd is the authority, reports them
//! itself and serves what is valid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use weft_control_plane::model::Severity;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadEntry {
    pub name: String,
    pub namespace: String,
    pub address: String,
    /// Service port name -> the port this workload listens on.
    pub ports: BTreeMap<String, u32>,
    pub labels: BTreeMap<String, String>,
    pub file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub name: String,
    pub namespace: String,
    pub hosts: Vec<String>,
    pub ports: Vec<u32>,
}

#[derive(Debug, Default)]
pub struct LocalConfig {
    pub workloads: Vec<WorkloadEntry>,
    pub services: Vec<ServiceEntry>,
    pub warnings: Vec<String>,
}

pub fn read_dir(dir: &Path) -> std::io::Result<LocalConfig> {
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not a folder",
        ));
    }
    let (config, diagnostics) = weft_control_plane::source::load_dir(dir);
    let workloads = config
        .workload_entries
        .iter()
        .map(|we| WorkloadEntry {
            name: we.meta.name.clone(),
            namespace: we.meta.namespace.clone(),
            address: we.spec.address.clone(),
            ports: we.spec.ports.clone(),
            labels: we.spec.labels.clone(),
            file: we.file.clone(),
        })
        .collect();
    let services = config
        .service_entries
        .iter()
        .map(|se| ServiceEntry {
            name: se.meta.name.clone(),
            namespace: se.meta.namespace.clone(),
            hosts: se.spec.hosts.clone(),
            ports: se.spec.ports.iter().map(|p| p.number).collect(),
        })
        .collect();
    let warnings = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect();
    Ok(LocalConfig {
        workloads,
        services,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bookinfo_example() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bookinfo");
        let config = read_dir(&dir).expect("read");
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let names: Vec<_> = config.workloads.iter().map(|w| w.name.as_str()).collect();
        assert!(names.contains(&"reviews-v2"), "{names:?}");
        let reviews = config
            .services
            .iter()
            .find(|s| s.name == "reviews")
            .expect("reviews");
        assert_eq!(reviews.ports, [9080]);
    }

    #[test]
    fn a_missing_folder_is_an_error() {
        assert!(read_dir(Path::new("/nonexistent/weft")).is_err());
    }
}
