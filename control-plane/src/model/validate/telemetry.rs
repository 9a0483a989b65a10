//! Telemetry checks, as Istio's validation webhook makes them for the fields weft reads.

use super::Findings;
use crate::model::path::FieldPath;
use crate::model::telemetry::{Telemetry, TracingMode};

pub(super) fn check(t: &Telemetry, f: &mut Findings) {
    let spec = FieldPath::spec();
    if t.target_ref.is_some() {
        f.error(
            &spec.key("targetRef"),
            "targetRef attaches to a Gateway API resource, which weft does not have; use selector",
        );
    }
    if !t.target_refs.is_empty() {
        f.error(
            &spec.key("targetRefs"),
            "targetRefs attach to Gateway API resources, which weft does not have; use selector",
        );
    }
    if let Some(sel) = &t.selector {
        if sel.match_labels.is_empty() {
            f.error(
                &spec.key("selector").key("matchLabels"),
                "a selector needs at least one label (omit it to cover the whole namespace)",
            );
        }
    }
    check_access_logging(t, f);
    let mut client = false;
    let mut server = false;
    for (i, tr) in t.tracing.iter().enumerate() {
        let p = spec.key("tracing").index(i);
        let mode_text = tr.r#match.as_ref().and_then(|m| m.mode.as_deref());
        let Some(mode) = TracingMode::parse(mode_text) else {
            f.error(
                &p.key("match").key("mode"),
                format!(
                    "{:?} is not a mode: CLIENT, SERVER or CLIENT_AND_SERVER",
                    mode_text.unwrap_or_default()
                ),
            );
            continue;
        };
        let (c, s) = match mode {
            TracingMode::Client => (true, false),
            TracingMode::Server => (false, true),
            TracingMode::ClientAndServer => (true, true),
        };
        if (c && client) || (s && server) {
            f.error(
                &p.key("match"),
                "two tracing entries cover the same side (CLIENT/SERVER) of requests",
            );
        }
        client |= c;
        server |= s;
        if tr.providers.len() > 1 {
            f.error(
                &p.key("providers"),
                "only one tracing provider per entry is supported (as in Istio)",
            );
        }
        for (j, provider) in tr.providers.iter().enumerate() {
            if provider.name.is_empty() {
                f.error(
                    &p.key("providers").index(j).key("name"),
                    "a provider needs a name",
                );
            }
        }
        if let Some(pct) = tr.random_sampling_percentage {
            if !(0.0..=100.0).contains(&pct) || pct.is_nan() {
                f.error(
                    &p.key("randomSamplingPercentage"),
                    format!("{pct} is not a percentage in [0, 100]"),
                );
            }
        }
        for (name, tag) in &tr.custom_tags {
            let tp = p.key("customTags").key(name);
            let set = [
                tag.literal.is_some(),
                tag.environment.is_some(),
                tag.header.is_some(),
            ]
            .iter()
            .filter(|s| **s)
            .count();
            if set != 1 {
                f.error(
                    &tp,
                    "a custom tag needs exactly one of literal, environment or header",
                );
            }
            if tag.environment.as_ref().is_some_and(|e| e.name.is_empty()) {
                f.error(&tp.key("environment").key("name"), "must not be empty");
            }
            if let Some(h) = &tag.header {
                if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
                    f.error(
                        &tp.key("header").key("name"),
                        format!("{:?} is not a header name", h.name),
                    );
                }
            }
        }
    }
}

fn check_access_logging(t: &Telemetry, f: &mut Findings) {
    let spec = FieldPath::spec();
    for (i, entry) in t.access_logging.iter().enumerate() {
        let p = spec.key("accessLogging").index(i);
        let mode_text = entry.r#match.as_ref().and_then(|m| m.mode.as_deref());
        if TracingMode::parse(mode_text).is_none() {
            f.error(
                &p.key("match").key("mode"),
                format!(
                    "{:?} is not a mode: CLIENT, SERVER or CLIENT_AND_SERVER",
                    mode_text.unwrap_or_default()
                ),
            );
        }
        if entry.filter.is_some() {
            f.error(
                &p.key("filter"),
                "CEL access log filters are not supported by weft-proxy; every request would \
                 be logged",
            );
        }
        for (j, provider) in entry.providers.iter().enumerate() {
            if provider.name.is_empty() {
                f.error(
                    &p.key("providers").index(j).key("name"),
                    "a provider needs a name",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{parse_file, AnyResource, Severity};
    use std::path::Path;

    fn errors(yaml: &str) -> Vec<(String, String, String)> {
        let (_, diagnostics) = parse_file(Path::new("t.yaml"), yaml);
        diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                (
                    d.resource.unwrap_or_default(),
                    d.field.unwrap_or_default(),
                    d.message,
                )
            })
            .collect()
    }

    const HEAD: &str = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t, namespace: shop}\n";

    #[test]
    fn a_valid_telemetry_parses_in_both_versions() {
        for version in ["v1", "v1alpha1"] {
            let yaml = format!(
                "apiVersion: telemetry.istio.io/{version}\nkind: Telemetry\nmetadata: {{name: t}}\n\
                 spec:\n  tracing:\n  - providers: [{{name: otel}}]\n    randomSamplingPercentage: 10\n"
            );
            let (resources, diagnostics) = parse_file(Path::new("t.yaml"), &yaml);
            assert!(diagnostics.is_empty(), "{diagnostics:?}");
            assert!(matches!(resources[0], AnyResource::Telemetry(_)));
        }
        assert_eq!(
            errors("apiVersion: networking.istio.io/v1\nkind: Telemetry\nmetadata: {name: t}\nspec: {}\n")[0].1,
            "apiVersion"
        );
    }

    #[test]
    fn errors_name_the_resource_and_field() {
        let e = errors(&format!(
            "{HEAD}spec:\n  tracing:\n  - randomSamplingPercentage: 120\n    customTags:\n      both: {{literal: {{value: a}}, header: {{name: x}}}}\n"
        ));
        let fields: Vec<&str> = e.iter().map(|(_, f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.tracing[0].randomSamplingPercentage",
                "spec.tracing[0].customTags.both"
            ]
        );
        assert!(e.iter().all(|(r, _, _)| r == "Telemetry shop/t"));
        let e = errors(&format!(
            "{HEAD}spec:\n  tracing:\n  - match: {{mode: CLIENT}}\n  - match: {{mode: CLIENT_AND_SERVER}}\n  - match: {{mode: SIDEWAYS}}\n"
        ));
        let fields: Vec<&str> = e.iter().map(|(_, f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.tracing[1].match", "spec.tracing[2].match.mode"]
        );
        let e = errors(&format!(
            "{HEAD}spec:\n  targetRef: {{kind: Gateway, name: g}}\n"
        ));
        assert_eq!(e[0].1, "spec.targetRef");
        let e = errors(&format!("{HEAD}spec:\n  tracing:\n  - sampling: 3\n"));
        assert!(e[0].2.contains("unknown field"), "{e:?}");
    }

    #[test]
    fn access_logging_is_acted_on_and_filters_are_refused() {
        let (_, diagnostics) = parse_file(
            Path::new("t.yaml"),
            &format!(
                "{HEAD}spec:\n  accessLogging:\n  - providers: [{{name: envoy}}]\n    match: {{mode: SERVER}}\n    disabled: true\n"
            ),
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let e = errors(&format!(
            "{HEAD}spec:\n  accessLogging:\n  - filter: {{expression: 'response.code >= 400'}}\n  - match: {{mode: BOTH}}\n"
        ));
        let fields: Vec<&str> = e.iter().map(|(_, f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.accessLogging[0].filter",
                "spec.accessLogging[1].match.mode"
            ]
        );
    }

    #[test]
    fn metrics_warn_as_not_acted_on() {
        let (resources, diagnostics) = parse_file(
            Path::new("t.yaml"),
            &format!("{HEAD}spec:\n  metrics: [{{providers: [{{name: prometheus}}]}}]\n"),
        );
        assert_eq!(resources.len(), 1);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].severity, Severity::Warning);
        assert_eq!(diagnostics[0].field.as_deref(), Some("spec.metrics"));
    }
}
