//! Which fields weft-proxy acts on today. Every other field that is set in a resource is
//! still parsed and validated, but earns one warning per resource and field, so nobody
//! believes a timeout or a retry policy is in force when it is not.
//!
//! As features land, add their paths to [`acted_on_fields`]; nothing else needs to change.

use super::Findings;
use crate::model::meta::Kind;
use crate::model::path::FieldPath;
use serde_json::Value;
use std::collections::BTreeSet;

/// The message of the warning.
pub const NOT_ACTED_ON: &str = "parsed but not yet acted on by weft-proxy";

/// The fields weft-proxy acts on, per kind, as YAML paths with `[]` for list items. A path
/// covers everything below it (`spec.ports` covers each port's number, name, protocol and
/// targetPort).
pub fn acted_on_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::ServiceEntry => &[
            "spec.hosts",
            "spec.ports",
            "spec.resolution",
            "spec.endpoints[].address",
            "spec.endpoints[].ports",
            "spec.endpoints[].labels",
            "spec.endpoints[].weight",
            "spec.workloadSelector",
        ],
        Kind::WorkloadEntry => &["spec.address", "spec.ports", "spec.labels", "spec.weight"],
        Kind::VirtualService => &[
            "spec.hosts",
            "spec.gateways",
            "spec.http[].name",
            "spec.http[].match[].scheme",
            "spec.http[].match[].withoutHeaders",
            "spec.http[].match[].sourceLabels",
            "spec.http[].match[].sourceNamespace",
            "spec.http[].match[].gateways",
            "spec.http[].match[].ignoreUriCase",
            "spec.http[].redirect.uri",
            "spec.http[].redirect.authority",
            "spec.http[].redirect.port",
            "spec.http[].redirect.scheme",
            "spec.http[].redirect.redirectCode",
            "spec.http[].directResponse",
            "spec.http[].match[].uri",
            "spec.http[].match[].headers",
            "spec.http[].match[].method",
            "spec.http[].match[].authority",
            "spec.http[].match[].queryParams",
            "spec.http[].match[].port",
            "spec.http[].route[].destination",
            "spec.http[].route[].weight",
        ],
        Kind::DestinationRule => &["spec.host", "spec.subsets[].name", "spec.subsets[].labels"],
    }
}

/// Adds a warning for every field set in `spec` (the spec serialized, which leaves out unset
/// fields) that is not acted on: one per normalized path, at its first occurrence.
pub(super) fn check(kind: Kind, spec: &Value, f: &mut Findings) {
    let table = acted_on_fields(kind);
    let mut warned = BTreeSet::new();
    walk(spec, &FieldPath::spec(), table, &mut warned, f);
}

fn walk(
    value: &Value,
    path: &FieldPath,
    table: &[&str],
    warned: &mut BTreeSet<String>,
    f: &mut Findings,
) {
    let normalized = path.without_indexes();
    if table.contains(&normalized.as_str()) {
        return;
    }
    let has_acted_on_children = table.iter().any(|entry| {
        entry.starts_with(&normalized)
            && matches!(entry.as_bytes().get(normalized.len()), Some(b'.' | b'['))
    });
    match value {
        Value::Object(map) if has_acted_on_children => {
            for (key, child) in map {
                walk(child, &path.key(key), table, warned, f);
            }
        }
        Value::Array(items) if has_acted_on_children => {
            for (i, child) in items.iter().enumerate() {
                walk(child, &path.index(i), table, warned, f);
            }
        }
        _ => {
            if warned.insert(normalized) {
                f.warning(path, NOT_ACTED_ON);
            }
        }
    }
}
