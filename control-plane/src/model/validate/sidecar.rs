//! Sidecar checks, as Istio's validation webhook makes them for the fields weft reads.

use super::common::check_label_keys;
use super::Findings;
use crate::model::path::FieldPath;
use crate::model::sidecar::{EgressHost, Sidecar};

pub(super) fn check(s: &Sidecar, f: &mut Findings) {
    let spec = FieldPath::spec();
    if let Some(sel) = &s.workload_selector {
        let path = spec.key("workloadSelector").key("labels");
        if sel.labels.is_empty() {
            f.error(
                &path,
                "a workloadSelector needs at least one label (omit it to cover the whole namespace)",
            );
        }
        check_label_keys(f, &path, &sel.labels);
    }
    for (i, egress) in s.egress.iter().enumerate() {
        let path = spec.key("egress").index(i).key("hosts");
        if egress.hosts.is_empty() {
            f.error(&path, "an egress listener needs at least one host");
        }
        for (j, host) in egress.hosts.iter().enumerate() {
            if let Err(e) = EgressHost::parse(host) {
                f.error(&path.index(j), e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{parse_file, Severity};
    use std::path::Path;

    fn findings(yaml: &str) -> Vec<(Severity, String)> {
        let (_, diagnostics) = parse_file(Path::new("sidecar.yaml"), yaml);
        diagnostics
            .iter()
            .map(|d| (d.severity, d.to_string()))
            .collect()
    }

    const HEAD: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: default\n  namespace: prod\nspec:\n";

    #[test]
    fn a_valid_sidecar_parses_clean() {
        let yaml = format!(
            "{HEAD}  workloadSelector:\n    labels:\n      app: reviews\n  egress:\n  - hosts:\n    - ./*\n    - istio-system/*\n    - \"*/*.example.com\"\n"
        );
        assert_eq!(findings(&yaml), vec![]);
    }

    #[test]
    fn bad_hosts_are_errors_naming_the_field() {
        let yaml = format!(
            "{HEAD}  egress:\n  - hosts:\n    - reviews.prod.svc.cluster.local\n    - Prod/*\n"
        );
        let f = findings(&yaml);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f.iter().all(|(s, _)| *s == Severity::Error));
        assert!(f[0].1.contains("spec.egress[0].hosts[0]"), "{f:?}");
        assert!(f[0].1.contains("Sidecar prod/default"), "{f:?}");
        assert!(f[1].1.contains("spec.egress[0].hosts[1]"), "{f:?}");
    }

    #[test]
    fn empty_selectors_and_egress_hosts_are_errors() {
        let yaml =
            format!("{HEAD}  workloadSelector:\n    labels: {{}}\n  egress:\n  - hosts: []\n");
        let f = findings(&yaml);
        assert_eq!(f.len(), 2, "{f:?}");
    }

    #[test]
    fn fields_not_acted_on_warn() {
        let yaml = format!(
            "{HEAD}  egress:\n  - port:\n      number: 9080\n      protocol: HTTP\n      name: http\n    hosts:\n    - ./*\n  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\n"
        );
        let f = findings(&yaml);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f.iter().all(|(s, _)| *s == Severity::Warning), "{f:?}");
    }
}
