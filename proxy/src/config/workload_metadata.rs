//! The workload behind an endpoint, from the telemetry metadata istiod puts on every
//! `LbEndpoint`: `filter_metadata["istio"]["workload"]`, one string
//! `workload;namespace;canonical-service;canonical-revision;cluster-id` (Istio's stats filter
//! reads the same field the same way when it has no metadata exchange with the peer). weftd
//! appends the workload's `app` and `version` labels as a sixth and seventh field, which
//! Istio's encoding lacks and Istio's reader ignores; from istiod they are absent.
//!
//! Other metadata namespaces are informational for filters weft-proxy does not run, as for an
//! Envoy without those filters, and are left alone.

use super::error::{AtField, FieldError};
use std::collections::HashMap;
use std::sync::Arc;
use xds_protos::pb::envoy::config::core::v3::Metadata;
use xds_protos::pb::google::protobuf::{value, Struct};

/// Who an endpoint is, for the `destination_*` labels of Istio's metrics. An empty field is
/// one the control plane did not know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct WorkloadMetadata {
    pub workload: String,
    pub namespace: String,
    pub canonical_service: String,
    pub canonical_revision: String,
    pub cluster: String,
    pub app: String,
    pub version: String,
}

/// The endpoint's workload, `None` when the metadata has no `istio.workload`.
pub(crate) fn workload_metadata(
    metadata: Option<&Metadata>,
) -> Result<Option<Arc<WorkloadMetadata>>, FieldError> {
    let Some(fm) = metadata.map(|m| &m.filter_metadata) else {
        return Ok(None);
    };
    let Some(encoded) = string_field(fm, "istio", "workload")? else {
        return Ok(None);
    };
    let parts: Vec<&str> = encoded.split(';').collect();
    let [workload, namespace, canonical_service, canonical_revision, cluster, ref weft @ ..] =
        parts[..]
    else {
        return Err(FieldError::new(
            "workload",
            format!(
                "{encoded:?} is not workload;namespace;canonical-service;canonical-revision;cluster"
            ),
        )
        .under("filter_metadata[\"istio\"]")
        .under("metadata"));
    };
    let extra = |i: usize| weft.get(i).map_or_else(String::new, |s| s.to_string());
    Ok(Some(Arc::new(WorkloadMetadata {
        workload: workload.to_string(),
        namespace: namespace.to_string(),
        canonical_service: canonical_service.to_string(),
        canonical_revision: canonical_revision.to_string(),
        cluster: cluster.to_string(),
        app: extra(0),
        version: extra(1),
    })))
}

/// `filter_metadata[namespace][key]` when present; an error when it is not a string.
fn string_field(
    fm: &HashMap<String, Struct>,
    namespace: &str,
    key: &str,
) -> Result<Option<String>, FieldError> {
    let Some(value) = fm.get(namespace).and_then(|s| s.fields.get(key)) else {
        return Ok(None);
    };
    match &value.kind {
        Some(value::Kind::StringValue(s)) => Ok(Some(s.clone())),
        _ => Err(FieldError::new(key, "must be a string"))
            .at(&format!("filter_metadata[\"{namespace}\"]"))
            .at("metadata"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xds_protos::pb::google::protobuf::Value;

    fn metadata(fields: &[(&str, &str, value::Kind)]) -> Metadata {
        let mut m = Metadata::default();
        for (ns, key, kind) in fields {
            m.filter_metadata
                .entry(ns.to_string())
                .or_default()
                .fields
                .insert(
                    key.to_string(),
                    Value {
                        kind: Some(kind.clone()),
                    },
                );
        }
        m
    }

    fn s(v: &str) -> value::Kind {
        value::Kind::StringValue(v.into())
    }

    #[test]
    fn istiods_encoding_and_weftds_app_and_version() {
        let m = metadata(&[
            (
                "istio",
                "workload",
                s("reviews-v2;bookinfo;reviews;v2;Kubernetes;reviews;v2"),
            ),
            ("envoy.transport_socket_match", "tlsMode", s("istio")),
        ]);
        let w = workload_metadata(Some(&m)).unwrap().unwrap();
        assert_eq!(
            *w,
            WorkloadMetadata {
                workload: "reviews-v2".into(),
                namespace: "bookinfo".into(),
                canonical_service: "reviews".into(),
                canonical_revision: "v2".into(),
                cluster: "Kubernetes".into(),
                app: "reviews".into(),
                version: "v2".into(),
            }
        );
    }

    #[test]
    fn istiods_five_fields_leave_app_and_version_empty() {
        let m = metadata(&[("istio", "workload", s(";;ratings;;"))]);
        let w = workload_metadata(Some(&m)).unwrap().unwrap();
        assert_eq!(w.workload, "");
        assert_eq!(w.canonical_service, "ratings");
        assert_eq!(w.app, "");
        assert_eq!(w.version, "");
        assert_eq!(workload_metadata(None).unwrap(), None);
        let other = metadata(&[("envoy.lb", "canary", s("true"))]);
        assert_eq!(workload_metadata(Some(&other)).unwrap(), None);
    }

    #[test]
    fn a_malformed_workload_is_refused_with_its_path() {
        let short = metadata(&[("istio", "workload", s("a;b;c;d"))]);
        let e = workload_metadata(Some(&short)).unwrap_err();
        assert_eq!(e.field, "metadata.filter_metadata[\"istio\"].workload");
        let number = metadata(&[("istio", "workload", value::Kind::NumberValue(1.0))]);
        let e = workload_metadata(Some(&number)).unwrap_err();
        assert_eq!(e.field, "metadata.filter_metadata[\"istio\"].workload");
        assert_eq!(e.reason, "must be a string");
    }
}
