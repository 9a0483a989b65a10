//! The few facts `weftctl up` needs from a config folder: which WorkloadEntries to run as
//! local demo apps, and the ServiceEntry ports to show in the ready-to-paste curl line.
//!
//! Deliberately tiny and forgiving: weftd is the authority on whether the folder is valid and
//! reports every problem itself, so this reader skips what it does not understand (other
//! kinds, unknown fields, unparsable documents) and only collects warnings. Once
//! `source::load_dir` is stable, `up` can take these facts from it instead.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

#[derive(Deserialize)]
struct Document {
    kind: Option<String>,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: serde_yaml_ng::Value,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    name: String,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct WorkloadSpec {
    #[serde(default)]
    address: String,
    #[serde(default)]
    ports: BTreeMap<String, u32>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ServiceSpec {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    ports: Vec<ServicePort>,
}

#[derive(Deserialize)]
struct ServicePort {
    number: u32,
}

/// Reads every `*.yaml`/`*.yml` file directly in `dir`, in name order so that the port
/// plan does not depend on the order the file system lists them in.
pub fn read_dir(dir: &Path) -> std::io::Result<LocalConfig> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    let mut config = LocalConfig::default();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => parse_text(&text, &file, &mut config),
            Err(e) => config
                .warnings
                .push(format!("{}: cannot read: {e}", file.display())),
        }
    }
    Ok(config)
}

/// Adds what one (possibly multi-document) YAML file holds to `config`.
pub fn parse_text(text: &str, file: &Path, config: &mut LocalConfig) {
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let where_ = format!("{} (document {})", file.display(), index + 1);
        let value = match serde_yaml_ng::Value::deserialize(document) {
            Ok(serde_yaml_ng::Value::Null) => continue,
            Ok(value) => value,
            Err(e) => {
                config.warnings.push(format!("{where_}: not YAML: {e}"));
                // The YAML stream cannot be resynchronised after a syntax error.
                break;
            }
        };
        let doc: Document = match serde_yaml_ng::from_value(value) {
            Ok(doc) => doc,
            Err(e) => {
                config.warnings.push(format!("{where_}: {e}"));
                continue;
            }
        };
        let namespace = doc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        match doc.kind.as_deref() {
            Some("WorkloadEntry") => match serde_yaml_ng::from_value::<WorkloadSpec>(doc.spec) {
                Ok(spec) => config.workloads.push(WorkloadEntry {
                    name: doc.metadata.name,
                    namespace,
                    address: spec.address,
                    ports: spec.ports,
                    labels: spec.labels,
                    file: file.to_path_buf(),
                }),
                Err(e) => config
                    .warnings
                    .push(format!("{where_}: WorkloadEntry spec: {e}")),
            },
            Some("ServiceEntry") => match serde_yaml_ng::from_value::<ServiceSpec>(doc.spec) {
                Ok(spec) => config.services.push(ServiceEntry {
                    name: doc.metadata.name,
                    namespace,
                    hosts: spec.hosts,
                    ports: spec.ports.into_iter().map(|p| p.number).collect(),
                }),
                Err(e) => config
                    .warnings
                    .push(format!("{where_}: ServiceEntry spec: {e}")),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_workload_and_service_entries_and_skips_the_rest() {
        let text = r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v2
  annotations: {note: ignored}
spec:
  address: 127.0.0.1
  serviceAccount: ignored
  ports:
    http: 19083
  labels:
    app: reviews
    version: v2
---
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews]}
---
---
kind: ServiceEntry
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews.prod.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
"#;
        let mut config = LocalConfig::default();
        parse_text(text, Path::new("a.yaml"), &mut config);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert_eq!(config.workloads.len(), 1);
        let w = &config.workloads[0];
        assert_eq!(w.name, "reviews-v2");
        assert_eq!(w.namespace, "default");
        assert_eq!(w.address, "127.0.0.1");
        assert_eq!(w.ports["http"], 19083);
        assert_eq!(w.labels["version"], "v2");
        assert_eq!(config.services.len(), 1);
        assert_eq!(config.services[0].namespace, "prod");
        assert_eq!(config.services[0].ports, vec![9080]);
    }

    #[test]
    fn broken_documents_become_warnings() {
        let mut config = LocalConfig::default();
        parse_text(
            "kind: WorkloadEntry\nmetadata: {name: x}\nspec: {ports: {http: not-a-port}}\n",
            Path::new("bad.yaml"),
            &mut config,
        );
        parse_text("kind: [unclosed", Path::new("worse.yaml"), &mut config);
        assert!(config.workloads.is_empty());
        assert_eq!(config.warnings.len(), 2);
        assert!(config.warnings[0].contains("bad.yaml"));
        assert!(config.warnings[1].contains("worse.yaml"));
    }
}
