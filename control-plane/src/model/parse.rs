//! Reading a file of YAML documents into typed, validated resources.
//!
//! Each file is read twice. The first pass reads every document as untyped YAML, which
//! finds syntax errors and tells each document's kind and name; the second reads the
//! documents of known kinds into their Rust types, with serde_yaml_ng tracking the line and
//! field path of any error. Knowing the name even when the typed read fails lets the store
//! keep that resource's last good version.

use super::diagnostic::{Diagnostic, Severity};
use super::locate::{split_yaml_error, Locator};
use super::meta::{
    AnyResource, Kind, ObjectMeta, Resource, ResourceKey, Spec, API_GROUP, API_VERSIONS,
    DEFAULT_NAMESPACE, TELEMETRY_API_GROUP, TELEMETRY_API_VERSIONS,
};
use super::path::FieldPath;
use super::validate::validate;
use super::{DestinationRule, ServiceEntry, Sidecar, Telemetry, VirtualService, WorkloadEntrySpec};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One document of a file that names a resource of one of the four kinds.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedDoc {
    /// Index of the document in the file (0-based, counting empty ones).
    pub doc: usize,
    pub key: ResourceKey,
    /// `None` when the resource has errors.
    pub resource: Option<AnyResource>,
}

/// Everything learnt from one file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFile {
    pub path: PathBuf,
    pub text: String,
    pub docs: Vec<ParsedDoc>,
    /// False when the file may hold resources that could not be identified (YAML syntax
    /// error, a document without kind or name, an unreadable file): the store then keeps
    /// the resources it last read from this file.
    pub intact: bool,
    pub diagnostics: Vec<Diagnostic>,
    locator: Locator,
}

impl ParsedFile {
    /// A file that could not be read at all.
    pub fn unreadable(path: &Path, message: impl Into<String>) -> Self {
        ParsedFile {
            path: path.to_path_buf(),
            text: String::new(),
            docs: Vec::new(),
            intact: false,
            diagnostics: vec![Diagnostic::error(path, message)],
            locator: Locator::default(),
        }
    }

    /// The line and column of `field` in document `doc`.
    pub fn locate(&self, doc: usize, field: &FieldPath) -> Option<(usize, usize)> {
        self.locator.locate(&self.text, doc, field)
    }

    /// A diagnostic about the field at `field` of document `doc`, with its position.
    pub fn diagnostic(
        &self,
        doc: usize,
        key: Option<&ResourceKey>,
        severity: Severity,
        field: &FieldPath,
        message: impl Into<String>,
    ) -> Diagnostic {
        let mut d = Diagnostic::new(severity, &self.path, message)
            .with_field(field)
            .at(self.locate(doc, field));
        if let Some(key) = key {
            d = d.with_resource(key);
        }
        d
    }
}

/// Parses one file's text (several `---` separated documents; empty ones are skipped) and
/// validates each resource on its own. Returns the valid resources, and diagnostics for the
/// rest and for warnings. Hosts are returned as written; the config set resolves them.
pub fn parse_file(path: &Path, text: &str) -> (Vec<AnyResource>, Vec<Diagnostic>) {
    let parsed = parse_file_detailed(path, text);
    let resources = parsed.docs.into_iter().filter_map(|d| d.resource).collect();
    (resources, parsed.diagnostics)
}

/// Like [`parse_file`], keeping what the store needs: which resources were rejected, and
/// whether the whole file could be read.
pub fn parse_file_detailed(path: &Path, text: &str) -> ParsedFile {
    let mut file = ParsedFile {
        path: path.to_path_buf(),
        text: text.to_string(),
        docs: Vec::new(),
        intact: true,
        diagnostics: Vec::new(),
        locator: Locator::default(),
    };

    // Each document is identified as it is read and its generic tree dropped: kept for the
    // whole file, the trees of a 10,000-service file were 140 MB (measured), on every reload.
    let mut identities = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(v) => identities.push(identify(&v)),
            Err(err) => {
                // After a syntax error the stream cannot be read further, and what came
                // before it may be half of an edit: take nothing from this file.
                let parts = split_yaml_error(&err);
                file.diagnostics.push(
                    Diagnostic::error(path, format!("not valid YAML: {}", parts.message))
                        .at(parts.position),
                );
                file.intact = false;
                return file;
            }
        }
    }

    let mut typed: BTreeMap<usize, ResourceKey> = BTreeMap::new();
    for (doc, identity) in identities.into_iter().enumerate() {
        match identity {
            Identity::Empty => {}
            Identity::Resource(key) => {
                typed.insert(doc, key);
            }
            Identity::Rejected(key, problem) => {
                let d = file.diagnostic(
                    doc,
                    Some(&key),
                    Severity::Error,
                    &problem.field,
                    problem.message,
                );
                file.diagnostics.push(d);
                file.docs.push(ParsedDoc {
                    doc,
                    key,
                    resource: None,
                });
            }
            Identity::Foreign(problem) => {
                file.diagnostics
                    .push(problem_diagnostic(&file, doc, problem));
            }
            Identity::Unidentified(problem) => {
                file.diagnostics
                    .push(problem_diagnostic(&file, doc, problem));
                file.intact = false;
            }
        }
    }
    if typed.is_empty() {
        return file;
    }

    for (doc, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let Some(key) = typed.remove(&doc) else {
            continue;
        };
        let read = match key.kind {
            Kind::VirtualService => read_typed::<VirtualService>(document, path),
            Kind::DestinationRule => read_typed::<DestinationRule>(document, path),
            Kind::ServiceEntry => read_typed::<ServiceEntry>(document, path),
            Kind::WorkloadEntry => read_typed::<WorkloadEntrySpec>(document, path),
            Kind::Telemetry => read_typed::<Telemetry>(document, path),
            Kind::Sidecar => read_typed::<Sidecar>(document, path),
        };
        let resource = match read {
            Ok(resource) => resource,
            Err(err) => {
                let parts = split_yaml_error(&err);
                let mut d = Diagnostic::error(path, parts.message)
                    .with_resource(&key)
                    .at(parts.position);
                if let Some(field) = parts.field {
                    d = d.with_field(field);
                }
                file.diagnostics.push(d);
                file.docs.push(ParsedDoc {
                    doc,
                    key,
                    resource: None,
                });
                continue;
            }
        };
        let findings = validate(&resource);
        let valid = !findings.iter().any(|f| f.severity == Severity::Error);
        for finding in findings {
            let d = file.diagnostic(
                doc,
                Some(&key),
                finding.severity,
                &finding.path,
                finding.message,
            );
            file.diagnostics.push(d);
        }
        file.docs.push(ParsedDoc {
            doc,
            key,
            resource: valid.then_some(resource),
        });
    }
    file.docs.sort_by_key(|d| d.doc);
    file
}

/// A non-empty string value.
fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn problem_diagnostic(file: &ParsedFile, doc: usize, problem: Problem) -> Diagnostic {
    let d = file.diagnostic(doc, None, Severity::Error, &problem.field, problem.message);
    match problem.resource {
        Some(resource) => d.with_resource(resource),
        None => d,
    }
}

/// A Kubernetes object as written: the typed spec plus fields that are only checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<T> {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: ObjectMeta,
    spec: T,
    /// Written by a cluster, meaningless here.
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}

fn read_typed<T: Spec + DeserializeOwned>(
    document: serde_yaml_ng::Deserializer<'_>,
    path: &Path,
) -> Result<AnyResource, serde_yaml_ng::Error> {
    let envelope = Envelope::<T>::deserialize(document)?;
    let mut meta = envelope.metadata;
    if meta.namespace.is_empty() {
        meta.namespace = DEFAULT_NAMESPACE.to_string();
    }
    Ok(T::into_any(Resource {
        meta,
        spec: envelope.spec,
        file: path.to_path_buf(),
    }))
}

struct Problem {
    /// What the document seems to be (`Service default/x`), for the diagnostic.
    resource: Option<String>,
    field: FieldPath,
    message: String,
}

enum Identity {
    /// An empty document (`---` alone, or only comments).
    Empty,
    Resource(ResourceKey),
    /// One of ours, identified, but unusable (unsupported apiVersion).
    Rejected(ResourceKey, Problem),
    /// Another kind of object: reported, and it cannot hide one of ours.
    Foreign(Problem),
    /// Could be one of ours, but which cannot be told.
    Unidentified(Problem),
}

fn identify(value: &Value) -> Identity {
    if value.is_null() {
        return Identity::Empty;
    }
    let Some(map) = value.as_mapping() else {
        return Identity::Unidentified(Problem {
            resource: None,
            field: FieldPath::root(),
            message: "a document must be a Kubernetes object: a map with apiVersion, kind, metadata and spec"
                .into(),
        });
    };
    let api_version = text(map.get("apiVersion"));
    let kind_name = text(map.get("kind"));
    let metadata = map.get("metadata");
    let name = text(metadata.and_then(|m| m.get("name")));
    let namespace = text(metadata.and_then(|m| m.get("namespace"))).unwrap_or(DEFAULT_NAMESPACE);
    let label = format!(
        "{} {namespace}/{}",
        kind_name.unwrap_or("object"),
        name.unwrap_or("(no name)")
    );
    let problem = |field: &str, message: String| Problem {
        resource: Some(label.clone()),
        field: FieldPath::parse(field),
        message,
    };
    let quoted = |v: Option<&str>| v.map_or_else(|| "missing".to_string(), |v| format!("{v:?}"));

    let Some(kind_name) = kind_name else {
        return Identity::Unidentified(problem("kind", "kind is missing".into()));
    };
    let Some(kind) = Kind::from_name(kind_name) else {
        return Identity::Foreign(problem(
            "kind",
            format!(
                "unsupported kind {kind_name:?} (apiVersion {}): weft reads VirtualService, DestinationRule, \
                 ServiceEntry and WorkloadEntry of {API_GROUP}/{}, and Telemetry of {TELEMETRY_API_GROUP}/{}",
                quoted(api_version),
                API_VERSIONS.join(", "),
                TELEMETRY_API_VERSIONS.join(", ")
            ),
        ));
    };
    let Some(name) = name else {
        return Identity::Unidentified(problem(
            "metadata.name",
            format!("{kind} without metadata.name: a name is required"),
        ));
    };
    let key = ResourceKey::new(kind, namespace, name);
    let (group, versions) = kind.api_group();
    let supported = api_version
        .and_then(|v| v.strip_prefix(group))
        .and_then(|v| v.strip_prefix('/'))
        .is_some_and(|v| versions.contains(&v));
    if !supported {
        let message = format!(
            "apiVersion {} is not supported: use {group}/{}",
            quoted(api_version),
            versions.join(", ")
        );
        return Identity::Rejected(key, problem("apiVersion", message));
    }
    Identity::Resource(key)
}
