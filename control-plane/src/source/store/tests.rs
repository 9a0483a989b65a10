//! The store: last good versions, removals, broken files, duplicates, cross checks.

use super::*;
use crate::model::{parse_file_detailed, StringMatch};
use std::path::Path;

const SE: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
";

const DR: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";

/// An external service whose two-label host would otherwise read as `name.namespace`.
const HTTPBIN_SE: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http}]
  resolution: DNS
";

const HTTPBIN_VS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: [httpbin.org]
  http:
  - route: [{destination: {host: httpbin.org}}]
";

fn vs(prefix: &str) -> String {
    format!(
        "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - match: [{{uri: {{prefix: {prefix}}}}}]
    route:
    - {{destination: {{host: reviews, subset: v1}}, weight: 50}}
    - {{destination: {{host: reviews, subset: v2}}, weight: 50}}
"
    )
}

fn files(list: &[(&str, &str)]) -> Vec<ParsedFile> {
    list.iter()
        .map(|(path, text)| parse_file_detailed(Path::new(path), text))
        .collect()
}

fn errors(outcome: &ApplyOutcome) -> Vec<String> {
    outcome
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect()
}

fn uri_prefix(store: &Store) -> Option<StringMatch> {
    store.config().virtual_services.first()?.spec.http[0].r#match[0]
        .uri
        .clone()
}

#[test]
fn a_valid_load_fills_the_set_and_resolves_hosts() {
    let mut store = Store::new();
    let vs = vs("/a");
    let outcome = store.apply(files(&[("a.yaml", SE), ("b.yaml", DR), ("c.yaml", &vs)]));
    assert!(errors(&outcome).is_empty(), "{:#?}", outcome.diagnostics);
    assert!(outcome.changed);
    assert_eq!(store.version(), 1);
    let config = store.config();
    assert_eq!(config.len(), 3);
    assert_eq!(
        config.destination_rules[0].spec.host,
        "reviews.default.svc.cluster.local"
    );
    let vs = &config.virtual_services[0].spec;
    assert_eq!(vs.hosts, ["reviews.default.svc.cluster.local"]);
    assert_eq!(
        vs.http[0].route[1].destination.host,
        "reviews.default.svc.cluster.local"
    );
    assert_eq!(
        crate::registry::Registry::build(&store.config())
            .services
            .len(),
        1
    );
}

#[test]
fn the_same_load_again_changes_nothing() {
    let mut store = Store::new();
    let vs = vs("/a");
    store.apply(files(&[("a.yaml", SE), ("b.yaml", DR), ("c.yaml", &vs)]));
    let outcome = store.apply(files(&[("a.yaml", SE), ("b.yaml", DR), ("c.yaml", &vs)]));
    assert!(!outcome.changed);
    assert_eq!(store.version(), 1);
}

#[test]
fn an_invalid_resource_keeps_its_last_good_version() {
    let mut store = Store::new();
    store.apply(files(&[
        ("a.yaml", SE),
        ("b.yaml", DR),
        ("c.yaml", &vs("/a")),
    ]));
    let broken = vs("/b").replace("weight: 50}\n", "weight: 40}\n");
    let before = store.config();
    let outcome = store.apply(files(&[
        ("a.yaml", SE),
        ("b.yaml", DR),
        ("c.yaml", &broken),
    ]));
    assert_eq!(before, store.config(), "{:#?}", outcome.diagnostics);
    assert!(!outcome.changed);
    assert_eq!(
        outcome.kept,
        [ResourceKey::new(Kind::VirtualService, "default", "reviews")]
    );
    let errs = errors(&outcome);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("c.yaml:9:5: error: VirtualService default/reviews: spec.http[0].route: weights sum to 80"), "{errs:?}");
    assert!(outcome
        .diagnostics
        .iter()
        .any(|d| !d.is_error() && d.message.contains("last good version")));
    assert_eq!(uri_prefix(&store), Some(StringMatch::Prefix("/a".into())));

    // Fixed: the new version replaces it.
    let outcome = store.apply(files(&[
        ("a.yaml", SE),
        ("b.yaml", DR),
        ("c.yaml", &vs("/c")),
    ]));
    assert!(outcome.changed && outcome.kept.is_empty());
    assert_eq!(uri_prefix(&store), Some(StringMatch::Prefix("/c".into())));
    assert_eq!(store.version(), 2);
}

#[test]
fn an_invalid_resource_without_a_good_version_is_left_out() {
    let mut store = Store::new();
    let broken = vs("/a").replacen("weight: 50", "weight: 30", 1);
    let outcome = store.apply(files(&[
        ("a.yaml", SE),
        ("b.yaml", DR),
        ("c.yaml", &broken),
    ]));
    let errs = errors(&outcome);
    assert_eq!(errs.len(), 1, "{:#?}", outcome.diagnostics);
    assert!(errs[0].contains("weights sum to 80"), "{errs:?}");
    assert!(store.config().virtual_services.is_empty());
}

#[test]
fn a_bad_regex_is_rejected_and_other_changes_still_apply() {
    let ratings = |prefix: &str| {
        vs(prefix)
            .replace("name: reviews}", "name: ratings}")
            .replace("hosts: [reviews]", "hosts: [ratings]")
    };
    let mut store = Store::new();
    store.apply(files(&[
        ("a.yaml", SE),
        ("b.yaml", DR),
        ("c.yaml", &vs("/a")),
        ("d.yaml", &ratings("/r1")),
    ]));
    // RE2 has no backreferences: Envoy would NACK the whole route configuration.
    let broken = vs("/a").replace("prefix: /a", "regex: '(a)\\1'");
    let outcome = store.apply(files(&[
        ("a.yaml", SE),
        ("b.yaml", DR),
        ("c.yaml", &broken),
        ("d.yaml", &ratings("/r2")),
    ]));
    let errs = errors(&outcome);
    assert_eq!(errs.len(), 1, "{:#?}", outcome.diagnostics);
    assert!(
        errs[0].starts_with("c.yaml:7:27:")
            && errs[0].contains("VirtualService default/reviews: spec.http[0].match[0].uri.regex")
            && errs[0].contains("backreference"),
        "{errs:?}"
    );
    assert!(outcome.changed, "the other VirtualService's change ships");
    assert_eq!(
        outcome.kept,
        [ResourceKey::new(Kind::VirtualService, "default", "reviews")]
    );
    let prefix_of = |name: &str| {
        store
            .config()
            .virtual_services
            .iter()
            .find(|v| v.meta.name == name)
            .and_then(|v| v.spec.http[0].r#match[0].uri.clone())
    };
    assert_eq!(prefix_of("reviews"), Some(StringMatch::Prefix("/a".into())));
    assert_eq!(
        prefix_of("ratings"),
        Some(StringMatch::Prefix("/r2".into()))
    );
}

#[test]
fn a_removed_resource_is_removed() {
    let mut store = Store::new();
    store.apply(files(&[("a.yaml", SE), ("b.yaml", DR)]));
    let outcome = store.apply(files(&[("a.yaml", SE)]));
    assert!(outcome.changed);
    assert!(store.config().destination_rules.is_empty());
}

#[test]
fn a_file_that_is_not_yaml_keeps_what_it_held() {
    let mut store = Store::new();
    let both = format!("{SE}---\n{DR}");
    store.apply(files(&[("a.yaml", &both)]));
    assert_eq!(store.config().len(), 2);
    let outcome = store.apply(files(&[("a.yaml", &format!("{both}---\nfoo: [\n"))]));
    assert!(!outcome.changed);
    assert_eq!(store.config().len(), 2);
    assert_eq!(outcome.kept.len(), 2);
    let errs = errors(&outcome);
    assert!(
        errs.len() == 1 && errs[0].contains("not valid YAML"),
        "{errs:?}"
    );
}

#[test]
fn an_unreadable_file_keeps_what_it_held() {
    let mut store = Store::new();
    store.apply(files(&[("a.yaml", SE)]));
    let outcome = store.apply(vec![ParsedFile::unreadable(
        Path::new("a.yaml"),
        "cannot read",
    )]);
    assert!(!outcome.changed);
    assert_eq!(store.config().service_entries.len(), 1);
}

#[test]
fn a_duplicate_is_an_error_on_the_second() {
    let mut store = Store::new();
    let other = SE.replace("10.0.0.1", "10.9.9.9");
    let outcome = store.apply(files(&[("a.yaml", SE), ("b.yaml", &other)]));
    let errs = errors(&outcome);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("b.yaml:3:")
            && errs[0].contains("ServiceEntry default/reviews: metadata.name: defined twice"),
        "{errs:?}"
    );
    assert!(errs[0].contains("a.yaml:3"), "{errs:?}");
    assert_eq!(store.config().service_entries[0].file, Path::new("a.yaml"));
}

#[test]
fn a_route_to_an_undefined_subset_is_rejected() {
    let mut store = Store::new();
    let vs3 = vs("/a").replace("subset: v2", "subset: v3");
    let outcome = store.apply(files(&[("a.yaml", SE), ("b.yaml", DR), ("c.yaml", &vs3)]));
    let errs = errors(&outcome);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("spec.http[0].route[1].destination.subset: subset \"v3\" is not defined"),
        "{errs:?}"
    );
    assert!(errs[0].starts_with("c.yaml:10:"), "{errs:?}");
    assert!(store.config().virtual_services.is_empty());

    // Without any DestinationRule, even v1 is undefined.
    let outcome = store.apply(files(&[("a.yaml", SE), ("c.yaml", &vs("/a"))]));
    assert_eq!(errors(&outcome).len(), 2, "{:#?}", outcome.diagnostics);
}

#[test]
fn the_subset_check_runs_against_the_resulting_set() {
    let mut store = Store::new();
    store.apply(files(&[
        ("a.yaml", SE),
        ("b.yaml", DR),
        ("c.yaml", &vs("/a")),
    ]));
    // The DestinationRule breaks, so its last good version (with v1 and v2) stays, and the
    // VirtualService is still valid against it.
    let bad_dr = DR.replace("name: v2,", "name: v1,");
    let outcome = store.apply(files(&[
        ("a.yaml", SE),
        ("b.yaml", &bad_dr),
        ("c.yaml", &vs("/b")),
    ]));
    let errs = errors(&outcome);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("DestinationRule default/reviews"),
        "{errs:?}"
    );
    assert_eq!(uri_prefix(&store), Some(StringMatch::Prefix("/b".into())));

    // The DestinationRule drops v2 for real: the new VirtualService is rejected and the
    // last good one stays.
    let dr_v1 = DR.replace("  - {name: v2, labels: {version: v2}}\n", "");
    let outcome = store.apply(files(&[
        ("a.yaml", SE),
        ("b.yaml", &dr_v1),
        ("c.yaml", &vs("/c")),
    ]));
    assert!(
        errors(&outcome)[0].contains("subset \"v2\""),
        "{:#?}",
        outcome.diagnostics
    );
    assert_eq!(uri_prefix(&store), Some(StringMatch::Prefix("/b".into())));
    assert_eq!(store.config().destination_rules[0].spec.subsets.len(), 1);
}

#[test]
fn hosts_a_service_entry_declares_are_not_expanded() {
    let mut store = Store::new();
    store.apply(files(&[("a.yaml", HTTPBIN_SE), ("b.yaml", HTTPBIN_VS)]));
    let spec = &store.config().virtual_services[0].spec;
    assert_eq!(spec.hosts, ["httpbin.org"]);
    assert_eq!(spec.http[0].route[0].destination.host, "httpbin.org");
}

#[test]
fn two_service_entries_for_one_host_warn() {
    let other = SE.replace("name: reviews", "name: reviews-2");
    let mut store = Store::new();
    let outcome = store.apply(files(&[("a.yaml", SE), ("b.yaml", &other)]));
    let warning = outcome
        .diagnostics
        .iter()
        .find(|d| {
            d.message
                .contains("also declared by ServiceEntry default/reviews")
        })
        .expect("a warning");
    assert_eq!(
        warning.resource.as_deref(),
        Some("ServiceEntry default/reviews-2")
    );
}

#[test]
fn two_namespace_wide_sidecars_warn() {
    let sidecar = |name: &str, selector: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: prod}}\nspec:\n{selector}  egress:\n  - hosts: [\"./*\"]\n"
        )
    };
    let a = sidecar("a", "");
    let b = sidecar("b", "");
    let selected = sidecar("c", "  workloadSelector: {labels: {app: reviews}}\n");
    let mut store = Store::new();
    let outcome = store.apply(files(&[
        ("a.yaml", &a),
        ("b.yaml", &b),
        ("c.yaml", &selected),
    ]));
    let warnings: Vec<_> = outcome
        .diagnostics
        .iter()
        .filter(|d| {
            d.message
                .contains("another Sidecar without a workloadSelector")
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", outcome.diagnostics);
    assert_eq!(warnings[0].resource.as_deref(), Some("Sidecar prod/b"));
    assert!(warnings[0].message.contains("Sidecar prod/a"));
    assert_eq!(store.config().sidecars.len(), 3);
}

#[test]
fn load_dir_reads_a_folder_recursively_in_order() {
    let dir = std::env::temp_dir().join(format!("weft-store-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("routes")).expect("mkdir");
    std::fs::create_dir_all(dir.join(".hidden")).expect("mkdir");
    std::fs::write(dir.join("services.yaml"), SE).expect("write");
    std::fs::write(
        dir.join("routes/reviews.yml"),
        format!("{DR}---\n{}", vs("/a")),
    )
    .expect("write");
    std::fs::write(dir.join(".hidden/broken.yaml"), "not: [valid").expect("write");
    std::fs::write(dir.join("notes.txt"), "not: [valid").expect("write");
    let (config, diagnostics) = crate::source::load_dir(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        diagnostics.iter().all(|d| !d.is_error()),
        "{diagnostics:#?}"
    );
    assert_eq!(config.len(), 3);
    assert_eq!(
        config.virtual_services[0].file,
        dir.join("routes/reviews.yml")
    );

    let (config, diagnostics) = crate::source::load_dir(&dir.join("missing"));
    assert!(config.is_empty());
    assert!(diagnostics[0]
        .message
        .contains("cannot read the configuration folder"));
}

#[test]
fn a_reload_resolves_unchanged_hosts_again_and_keeps_unchanged_resources_shared() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a-services.yaml"), SE).expect("write");
    std::fs::write(dir.path().join("b-routes.yaml"), HTTPBIN_VS).expect("write");
    let mut store = Store::new();
    store.reload_dir(dir.path());
    let before = store.config();
    // Not declared by any ServiceEntry: read as `name.namespace`.
    assert_eq!(
        before.virtual_services[0].spec.hosts,
        ["httpbin.org.svc.cluster.local"]
    );

    // A ServiceEntry for httpbin.org, in the other file: the unchanged VirtualService file is
    // not parsed again (`folder::ParseCache`), but its hosts are resolved again, now as written.
    std::fs::write(
        dir.path().join("a-services.yaml"),
        format!("{SE}---\n{HTTPBIN_SE}"),
    )
    .expect("write");
    let outcome = store.reload_dir(dir.path());
    assert!(outcome.changed && !outcome.has_errors(), "{outcome:#?}");
    let after = store.config();
    assert_eq!(after.virtual_services[0].spec.hosts, ["httpbin.org"]);
    // The reviews ServiceEntry did not change: the same allocation, shared with the set the
    // last snapshot was built from.
    let reviews = |c: &ConfigSet| {
        c.service_entries
            .iter()
            .find(|s| s.meta.name == "reviews")
            .cloned()
            .expect("reviews")
    };
    assert!(Arc::ptr_eq(&reviews(&before), &reviews(&after)));

    // Nothing changed: nothing parsed, nothing new.
    let outcome = store.reload_dir(dir.path());
    assert!(!outcome.changed);
    assert!(Arc::ptr_eq(
        &store.config().virtual_services[0],
        &after.virtual_services[0]
    ));
}
