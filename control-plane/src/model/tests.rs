//! Parsing: documents, envelopes, the whole schema, and diagnostics that name file,
//! resource and field.

use super::*;
use std::path::Path;
use std::time::Duration;

const FULL_SCHEMA: &str = include_str!("../../tests/fixtures/full-schema.yaml");

fn parse(text: &str) -> (Vec<AnyResource>, Vec<Diagnostic>) {
    parse_file(Path::new("conf/test.yaml"), text)
}

fn errors(diagnostics: &[Diagnostic]) -> Vec<&Diagnostic> {
    diagnostics.iter().filter(|d| d.is_error()).collect()
}

fn only_error(text: &str) -> Diagnostic {
    let (_, diagnostics) = parse(text);
    let errors = errors(&diagnostics);
    assert_eq!(errors.len(), 1, "expected one error, got {diagnostics:#?}");
    errors[0].clone()
}

const VS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
";

#[test]
fn the_whole_schema_parses() {
    let (resources, diagnostics) = parse(FULL_SCHEMA);
    assert!(errors(&diagnostics).is_empty(), "{diagnostics:#?}");
    assert_eq!(resources.len(), 5);
    let kinds: Vec<Kind> = resources.iter().map(AnyResource::kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::VirtualService,
            Kind::DestinationRule,
            Kind::ServiceEntry,
            Kind::ServiceEntry,
            Kind::WorkloadEntry
        ]
    );

    let AnyResource::VirtualService(vs) = &resources[0] else {
        panic!("not a VirtualService")
    };
    assert_eq!(vs.meta.namespace, "prod");
    assert_eq!(
        vs.meta.labels.get("app").map(String::as_str),
        Some("reviews")
    );
    assert_eq!(vs.file, Path::new("conf/test.yaml"));
    let full = &vs.spec.http[0];
    assert_eq!(full.timeout, Some(Duration::from_secs(10)));
    assert_eq!(full.retries.as_ref().map(|r| r.attempts), Some(3));
    assert_eq!(
        full.r#match[0].headers.get("x-present"),
        Some(&StringMatch::Regex(".*".into()))
    );
    assert_eq!(full.route[0].weight, Some(75));
    assert_eq!(
        full.route[0].destination.port,
        Some(PortSelector { number: 9080 })
    );
    assert_eq!(vs.spec.http[1].mirror_percent, Some(5));
    assert_eq!(
        vs.spec.http[1].mirror_percentage,
        Some(Percent { value: 5.5 })
    );
    assert_eq!(vs.spec.tcp[0].route.len(), 2);
    assert_eq!(vs.spec.tls[0].r#match[0].sni_hosts, ["login.example.com"]);

    let AnyResource::DestinationRule(dr) = &resources[1] else {
        panic!("not a DestinationRule")
    };
    let tp = dr.spec.traffic_policy.as_ref().expect("trafficPolicy");
    assert_eq!(
        tp.outlier_detection
            .as_ref()
            .and_then(|o| o.base_ejection_time),
        Some(Duration::from_secs(900))
    );
    assert_eq!(
        dr.spec.workload_selector.as_ref().map(|w| w.labels.len()),
        Some(1)
    );
    assert_eq!(dr.spec.subsets.len(), 3);

    let AnyResource::ServiceEntry(se) = &resources[2] else {
        panic!("not a ServiceEntry")
    };
    assert_eq!(se.spec.resolution, Resolution::Dns);
    assert_eq!(se.spec.location, Some(Location::MeshExternal));
    assert_eq!(se.spec.ports[0].target_port, Some(8443));
    assert_eq!(se.spec.endpoints[0].weight, Some(3));

    let AnyResource::WorkloadEntry(we) = &resources[4] else {
        panic!("not a WorkloadEntry")
    };
    assert_eq!(we.spec.ports.get("http"), Some(&19080));
    assert_eq!(we.spec.service_account.as_deref(), Some("ratings"));
}

#[test]
fn serialized_resources_parse_back_the_same() {
    let (resources, _) = parse(FULL_SCHEMA);
    let text: Vec<String> = resources
        .iter()
        .map(|r| serde_yaml_ng::to_string(r).expect("serialize"))
        .collect();
    let (again, diagnostics) = parse(&text.join("---\n"));
    assert!(errors(&diagnostics).is_empty(), "{diagnostics:#?}");
    assert_eq!(again, resources);
}

#[test]
fn the_three_api_versions_are_accepted() {
    for version in ["v1", "v1beta1", "v1alpha3"] {
        let text = VS.replace(
            "networking.istio.io/v1",
            &format!("networking.istio.io/{version}"),
        );
        let (resources, diagnostics) = parse(&text);
        assert!(
            errors(&diagnostics).is_empty(),
            "{version}: {diagnostics:#?}"
        );
        assert_eq!(resources.len(), 1, "{version}");
    }
}

#[test]
fn an_unknown_api_version_names_the_field() {
    let d = only_error(&VS.replace("networking.istio.io/v1", "networking.istio.io/v2"));
    assert_eq!(d.field.as_deref(), Some("apiVersion"));
    assert_eq!(
        d.resource.as_deref(),
        Some("VirtualService default/reviews")
    );
    assert_eq!(d.line, Some(1));
    assert!(
        d.message.contains("\"networking.istio.io/v2\""),
        "{}",
        d.message
    );
}

#[test]
fn an_unknown_kind_is_an_error() {
    let d = only_error("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n");
    assert_eq!(d.field.as_deref(), Some("kind"));
    assert_eq!((d.line, d.column), (Some(2), Some(7)));
    assert!(
        d.message.contains("unsupported kind \"Service\""),
        "{}",
        d.message
    );
    assert_eq!(d.file, Path::new("conf/test.yaml"));
}

#[test]
fn a_missing_name_is_an_error() {
    let d = only_error(&VS.replace("  name: reviews\n", "  namespace: prod\n"));
    assert_eq!(d.field.as_deref(), Some("metadata.name"));
    assert_eq!(d.resource.as_deref(), Some("VirtualService prod/(no name)"));
    assert!(d.message.contains("metadata.name"), "{}", d.message);
    let parsed = parse_file_detailed(
        Path::new("x.yaml"),
        &VS.replace("  name: reviews\n", "  labels: {}\n"),
    );
    assert!(!parsed.intact, "a nameless resource may hide an edited one");
}

#[test]
fn several_documents_and_empty_ones() {
    let text = format!(
        "---\n# only a comment\n---\n{VS}---\n---\n{}\n",
        VS.replace("name: reviews", "name: ratings")
    );
    let (resources, diagnostics) = parse(&text);
    assert!(errors(&diagnostics).is_empty(), "{diagnostics:#?}");
    let names: Vec<&str> = resources.iter().map(|r| r.meta().name.as_str()).collect();
    assert_eq!(names, ["reviews", "ratings"]);
}

#[test]
fn an_empty_file_holds_nothing() {
    for text in ["", "\n", "# nothing\n", "---\n"] {
        let (resources, diagnostics) = parse(text);
        assert!(
            resources.is_empty() && diagnostics.is_empty(),
            "{text:?}: {diagnostics:?}"
        );
    }
}

#[test]
fn invalid_yaml_reports_line_and_column() {
    let d = only_error(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: [x\n",
    );
    assert!(d.message.starts_with("not valid YAML"), "{}", d.message);
    assert!(d.line.is_some() && d.column.is_some(), "{d:?}");
    let parsed = parse_file_detailed(Path::new("x.yaml"), "a: [\n");
    assert!(!parsed.intact);
}

#[test]
fn an_unknown_field_names_the_field_and_its_line() {
    let text = VS.replace(
        "        host: reviews\n",
        "        host: reviews\n        subsett: v1\n",
    );
    let d = only_error(&text);
    assert_eq!(
        d.field.as_deref(),
        Some("spec.http[0].route[0].destination.subsett")
    );
    assert_eq!(
        d.resource.as_deref(),
        Some("VirtualService default/reviews")
    );
    assert_eq!((d.line, d.column), (Some(11), Some(9)));
    assert!(
        d.message.contains("unknown field `subsett`"),
        "{}",
        d.message
    );
    assert!(
        d.to_string()
            .starts_with("conf/test.yaml:11:9: error: VirtualService default/reviews: "),
        "{d}"
    );
}

#[test]
fn an_unknown_top_level_field_is_an_error_but_status_and_metadata_extras_are_not() {
    let d = only_error(&format!("{VS}specs: {{}}\n"));
    assert_eq!(d.field.as_deref(), Some("specs"));
    let text = VS.replace(
        "  name: reviews\n",
        "  name: reviews\n  uid: abc\n  resourceVersion: \"7\"\n  generation: 2\n",
    );
    let (resources, diagnostics) = parse(&format!("{text}status: {{observedGeneration: 2}}\n"));
    assert!(errors(&diagnostics).is_empty(), "{diagnostics:#?}");
    assert_eq!(resources.len(), 1);
}

#[test]
fn snake_case_aliases_are_accepted() {
    let text = VS.replace("  http:\n", "  export_to: [\".\"]\n  http:\n");
    let (resources, diagnostics) = parse(&text);
    assert!(errors(&diagnostics).is_empty(), "{diagnostics:#?}");
    let AnyResource::VirtualService(vs) = &resources[0] else {
        panic!()
    };
    assert_eq!(vs.spec.export_to, ["."]);
}

#[test]
fn a_bad_duration_names_the_field() {
    let d = only_error(&format!("{VS}    timeout: 10sec\n"));
    assert_eq!(d.field.as_deref(), Some("spec.http[0].timeout"));
    assert_eq!(d.line, Some(11));
    assert!(d.message.contains("unknown unit \"sec\""), "{}", d.message);
}

#[test]
fn a_wrong_type_names_the_field() {
    let d = only_error(&format!("{VS}      weight: heavy\n"));
    assert_eq!(d.field.as_deref(), Some("spec.http[0].route[0].weight"));
    assert!(d.message.contains("invalid type"), "{}", d.message);
}

#[test]
fn a_missing_spec_is_an_error() {
    let d =
        only_error("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\n");
    assert_eq!(d.field.as_deref(), Some("spec"));
}

#[test]
fn the_namespace_defaults_to_default() {
    let (resources, _) = parse(VS);
    assert_eq!(resources[0].meta().namespace, "default");
    assert_eq!(
        resources[0].key(),
        ResourceKey::new(Kind::VirtualService, "default", "reviews")
    );
    assert_eq!(
        resources[0].key().to_string(),
        "VirtualService default/reviews"
    );
}

#[test]
fn kinds_display_their_istio_names() {
    for kind in Kind::ALL {
        assert_eq!(Kind::from_name(&kind.to_string()), Some(kind));
    }
}

#[test]
fn damaged_files_are_reported_not_panicked_on() {
    // Cut one character at a time (every 61st) out of the full schema: whatever the result,
    // parsing must come back with diagnostics, never panic.
    let chars: Vec<char> = FULL_SCHEMA.chars().collect();
    for cut in (0..chars.len()).step_by(61) {
        let text: String = chars
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != cut)
            .map(|(_, c)| c)
            .collect();
        let _ = parse(&text);
    }
}
