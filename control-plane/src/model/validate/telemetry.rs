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
                f.error(&p.key("providers").index(j).key("name"), "a provider needs a name");
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
