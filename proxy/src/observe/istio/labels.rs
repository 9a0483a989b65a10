//! The fixed labels of Istio's standard metrics: who reports, the source side and the
//! destination side, in Istio's order up to the per-request (or per-connection) labels.
//!
//! A sidecar reports twice over a mesh hop: its outbound traffic as `reporter="source"`, its
//! own identity on the source side and the endpoint's on the destination side; and what it
//! receives for its own workload as `reporter="destination"`, its identity on the destination
//! side. The peer of an inbound connection is only known through Istio's metadata exchange
//! over mTLS, which Weft does not have: its source labels are `unknown`, as Istio reports a
//! peer without metadata.
//!
//! The service is the cluster's (see `service_of`). The destination reporter names its own
//! canonical service when the inbound cluster names none, in its own namespace, as Istio's
//! inbound stats do (`Service::served_by`).

use super::SourceIdentity;
use crate::config::WorkloadMetadata;
use metrics::Label;

pub(super) const UNKNOWN: &str = "unknown";
/// Istio's canonical revision when the workload has no `version` label.
const LATEST: &str = "latest";

/// Which end of a request or connection the proxy reports from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    /// The client's proxy: its outbound traffic.
    Source,
    /// The server's proxy: what it receives for its own workload.
    Destination,
}

impl Reporter {
    fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }

    /// Istio's `connection_security_policy`: `unknown` from the source (it cannot tell what
    /// the server enforces), else `mutual_tls` or `none`. Weft has no mTLS: always `none`.
    pub(super) fn security_policy(self) -> &'static str {
        match self {
            Reporter::Source => UNKNOWN,
            Reporter::Destination => "none",
        }
    }
}

/// A label value, `unknown` when empty (as Istio's stats filter reports a value it lacks).
pub(super) fn or_unknown(v: &str) -> String {
    if v.is_empty() {
        UNKNOWN.to_string()
    } else {
        v.to_string()
    }
}

/// The workload labels of one side (`source` or `destination`), as Istio reads them.
struct Side<'a> {
    workload: &'a str,
    namespace: &'a str,
    app: &'a str,
    version: &'a str,
    canonical_service: &'a str,
    canonical_revision: &'a str,
    cluster: &'a str,
}

impl<'a> Side<'a> {
    /// The proxy's own workload. Istio's canonical service defaults to the `app` label, then
    /// the workload name; the canonical revision to the `version` label, then `latest`.
    fn own(s: &'a SourceIdentity) -> Side<'a> {
        let app = s.app.as_deref().unwrap_or("");
        let version = s.version.as_deref().unwrap_or("");
        Side {
            workload: &s.workload,
            namespace: &s.namespace,
            app,
            version,
            canonical_service: if app.is_empty() { &s.workload } else { app },
            canonical_revision: version,
            cluster: "",
        }
    }

    /// A peer, from the control plane's metadata; every field empty when there is none.
    fn peer(w: Option<&'a WorkloadMetadata>) -> Side<'a> {
        match w {
            Some(w) => Side {
                workload: &w.workload,
                namespace: &w.namespace,
                app: &w.app,
                version: &w.version,
                canonical_service: &w.canonical_service,
                canonical_revision: &w.canonical_revision,
                cluster: &w.cluster,
            },
            None => Side {
                workload: "",
                namespace: "",
                app: "",
                version: "",
                canonical_service: "",
                canonical_revision: "",
                cluster: "",
            },
        }
    }

    fn canonical_revision(&self) -> String {
        if self.canonical_revision.is_empty() {
            LATEST.to_string()
        } else {
            self.canonical_revision.to_string()
        }
    }
}

/// The service a cluster stands for: host, name and namespace, each `None` when the cluster
/// does not say.
#[derive(Default)]
struct Service {
    host: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

/// Istio's clusters are named `outbound|PORT|SUBSET|HOST` and (older istiod, and Weft for a
/// known service) `inbound|PORT|SUBSET|HOST`; the service is the host, and for a
/// Kubernetes-style `NAME.NAMESPACE.svc.DOMAIN` host its name and namespace are the first two
/// parts. Any other host is its own service name. An inbound cluster without a host
/// (`inbound|9080||`) names no service. Other clusters (passthrough, black hole) name the
/// service by the cluster, as Istio does for `PassthroughCluster`.
fn service_of(cluster: Option<&str>) -> Service {
    let Some(cluster) = cluster else {
        return Service::default();
    };
    match cluster.split('|').collect::<Vec<_>>()[..] {
        ["outbound" | "inbound", _port, _subset, host] if !host.is_empty() => {
            let mut parts = host.split('.');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(name), Some(ns), Some("svc")) => Service {
                    host: Some(host.to_string()),
                    name: Some(name.to_string()),
                    namespace: Some(ns.to_string()),
                },
                _ => Service {
                    host: Some(host.to_string()),
                    name: Some(host.to_string()),
                    namespace: None,
                },
            }
        }
        ["inbound", ..] => Service::default(),
        _ => Service {
            name: Some(cluster.to_string()),
            ..Service::default()
        },
    }
}

impl Service {
    /// The service as the server's sidecar reports it (`reporter="destination"`), Istio's way:
    /// its inbound stats filter does not read the `Host` header (istiod turns that fallback
    /// off for inbound listeners); it names the service its inbound cluster stands for, and
    /// when the cluster names none, the workload's own canonical service for both
    /// `destination_service` and `destination_service_name`. The namespace is always the
    /// workload's own.
    fn served_by(self, own: &Side<'_>) -> Service {
        let canonical = || Some(own.canonical_service.to_string());
        Service {
            host: self.host.or_else(canonical),
            name: self.name.or_else(canonical),
            namespace: Some(own.namespace.to_string()),
        }
    }
}

fn side_labels(prefix: &str, side: &Side<'_>) -> [Label; 8] {
    let key = |k: &str| format!("{prefix}_{k}");
    [
        Label::new(key("workload"), or_unknown(side.workload)),
        Label::new(key("canonical_service"), or_unknown(side.canonical_service)),
        Label::new(key("canonical_revision"), side.canonical_revision()),
        Label::new(key("workload_namespace"), or_unknown(side.namespace)),
        // No mTLS, no peer certificate: no principal on either side.
        Label::new(key("principal"), UNKNOWN),
        Label::new(key("app"), or_unknown(side.app)),
        Label::new(key("version"), or_unknown(side.version)),
        Label::new(key("cluster"), or_unknown(side.cluster)),
    ]
}

/// `reporter` and the `source_*` labels.
fn source_labels(reporter: Reporter, source: &Side<'_>) -> Vec<Label> {
    let mut labels = Vec::with_capacity(9);
    labels.push(Label::new("reporter", reporter.as_str()));
    labels.extend(side_labels("source", source));
    labels
}

/// The `destination_*` labels: the workload's, with the cluster's service between the
/// workload and the canonical labels (Istio's order).
fn destination_labels(reporter: Reporter, cluster: Option<&str>, dest: &Side<'_>) -> Vec<Label> {
    let service = match reporter {
        Reporter::Source => service_of(cluster),
        Reporter::Destination => service_of(cluster).served_by(dest),
    };
    let label = |v: Option<String>| v.as_deref().map_or_else(|| UNKNOWN.to_string(), or_unknown);
    let [workload, canonical_service, canonical_revision, namespace, principal, app, version, dest_cluster] =
        side_labels("destination", dest);
    vec![
        workload,
        namespace,
        principal,
        app,
        version,
        Label::new("destination_service", label(service.host)),
        canonical_service,
        canonical_revision,
        Label::new("destination_service_name", label(service.name)),
        Label::new("destination_service_namespace", label(service.namespace)),
        dest_cluster,
    ]
}

/// Every fixed label of traffic the proxy reports as `reporter` through `cluster`: `own` is
/// the proxy's identity, `peer` the other end's metadata when the proxy has it (the endpoint
/// that answered, for outbound traffic; nothing yet for inbound).
pub(super) fn fixed_labels(
    reporter: Reporter,
    own: &SourceIdentity,
    cluster: Option<&str>,
    peer: Option<&WorkloadMetadata>,
) -> Vec<Label> {
    let own = Side::own(own);
    let peer = Side::peer(peer);
    let (source, dest) = match reporter {
        Reporter::Source => (&own, &peer),
        Reporter::Destination => (&peer, &own),
    };
    let mut labels = source_labels(reporter, source);
    labels.extend(destination_labels(reporter, cluster, dest));
    labels
}
