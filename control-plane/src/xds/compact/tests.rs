use super::*;
use crate::xds::resources::VersionedResource;
use xds_protos::pb::google::protobuf::Any;

/// A shared map whose resources' contents (and so versions) are the given bytes.
pub(in crate::xds) fn map(entries: &[(&str, &[u8])]) -> Arc<NamedResources> {
    Arc::new(
        entries
            .iter()
            .map(|(n, v)| {
                let any = Any {
                    type_url: "t".into(),
                    value: v.to_vec(),
                };
                (n.to_string(), Arc::new(VersionedResource::new(any)))
            })
            .collect(),
    )
}

fn list(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_name_set_is_the_same_set_whatever_its_base() {
    let old = map(&[("a", b"1"), ("b", b"1"), ("c", b"1")]);
    let new = map(&[("b", b"2"), ("c", b"1"), ("d", b"1")]);
    let mut s = NameSet::of_list(&list(&["a", "b", "x"]), &old);
    assert!(s.same_as_list(&list(&["a", "b", "x"])));
    assert_eq!((s.extra.len(), s.missing.len()), (1, 1));
    s.rebase(&new, &MapDiffs::default());
    assert!(s.same_as_list(&list(&["a", "b", "x"])));
    s.insert("d");
    s.remove("a");
    s.remove("zz");
    assert!(s.same_as_list(&list(&["b", "d", "x"])));
    let listed: BTreeSet<String> = s.iter().cloned().collect();
    assert_eq!(listed, names(&["b", "d", "x"]));
    assert!(!s.contains("c") && !s.contains("a"));
}

#[test]
fn a_name_set_equal_to_the_keys_costs_nothing_of_its_own() {
    let m = map(&[("a", b"1"), ("b", b"1")]);
    let s = NameSet::of_list(&list(&["a", "b"]), &m);
    assert!(s.extra.is_empty() && s.missing.is_empty());
    assert!(!s.same_as_list(&list(&["a"])));
}

#[test]
fn held_versions_follow_inserts_and_removals_across_rebases() {
    let old = map(&[("a", b"1"), ("b", b"1")]);
    let new = map(&[("a", b"2"), ("b", b"1"), ("c", b"1")]);
    let mut h = HeldVersions::default();
    h.insert("a", &old["a"].version);
    h.insert("b", &old["b"].version);
    h.rebase(&old, &MapDiffs::default());
    assert_eq!(h.own_entries(), 0, "holds exactly the map");
    h.rebase(&new, &MapDiffs::default());
    assert_eq!(h.get("a"), Some(old["a"].version.as_str()));
    assert_eq!(h.get("b"), Some(new["b"].version.as_str()));
    assert_eq!(h.get("c"), None);
    h.insert("a", &new["a"].version);
    h.insert("c", &new["c"].version);
    assert_eq!(h.own_entries(), 0, "now holds exactly the new map");
    h.remove("b");
    h.insert("z", "v");
    let held: BTreeSet<String> = h.names().cloned().collect();
    assert_eq!(held, names(&["a", "c", "z"]));
    assert_eq!(h.get("z"), Some("v"));
    assert_eq!(h.get("b"), None);
}

#[test]
fn a_client_holding_little_of_a_large_map_stays_relative_to_nothing() {
    let big = map(&[("a", b"1"), ("b", b"1"), ("c", b"1"), ("d", b"1")]);
    let mut h = HeldVersions::default();
    h.insert("a", &big["a"].version);
    h.rebase(&big, &MapDiffs::default());
    assert_eq!(h.own_entries(), 1);
    let held: BTreeSet<String> = h.names().cloned().collect();
    assert_eq!(held, names(&["a"]));
}

#[test]
fn after_a_rebase_only_changed_names_differ() {
    let old = map(&[("a", b"1"), ("b", b"1"), ("c", b"1")]);
    let new = map(&[("a", b"1"), ("b", b"2"), ("d", b"1")]);
    let mut h = HeldVersions::default();
    for (n, r) in old.iter() {
        h.insert(n, &r.version);
    }
    h.rebase(&old, &MapDiffs::default());
    assert!(h.based_on(&old) && h.differing().next().is_none());
    h.rebase(&new, &MapDiffs::default());
    assert!(h.based_on(&new));
    let differing: BTreeSet<String> = h.differing().cloned().collect();
    // b changed, c is held but gone, d is new and not held; a is the same.
    assert_eq!(differing, names(&["b", "c", "d"]));
    assert_eq!(h.get("c"), Some(old["c"].version.as_str()));
    assert_eq!(h.get("d"), None);
}

#[test]
fn a_set_covers_a_map_when_it_holds_all_its_keys() {
    let m = map(&[("a", b"1"), ("b", b"1")]);
    let other = map(&[("a", b"2"), ("b", b"2")]);
    let mut s = NameSet::of_list(&list(&["a", "b", "x"]), &m);
    assert!(s.covers(&m));
    assert!(s.covers(&other), "same keys, another map");
    s.remove("b");
    assert!(!s.covers(&m) && !s.covers(&other));
}

#[test]
fn a_first_response_leaves_nothing_of_its_own_once_rebased() {
    let m = map(&[("a", b"1"), ("b", b"1"), ("c", b"1")]);
    let mut h = HeldVersions::default();
    for (n, r) in m.iter() {
        h.insert(n, &r.version);
    }
    assert_eq!(
        h.own_entries(),
        3,
        "relative to nothing, every name is its own"
    );
    h.rebase_now(&m, &MapDiffs::default());
    assert_eq!(h.own_entries(), 0);
    h.insert("z", "v");
    h.rebase_now(&m, &MapDiffs::default());
    assert_eq!(h.own_entries(), 1, "a name not in the map stays");
    assert_eq!(h.get("z"), Some("v"));
}

#[test]
fn a_request_list_is_compared_and_kept_like_a_set() {
    let m = map(&[("a", b"1"), ("b", b"1"), ("c", b"1")]);
    let all = NameSet::of_list(&list(&["a", "b", "c"]), &m);
    assert!(all.extra.is_empty() && all.missing.is_empty());
    // In order, shuffled, repeated: the same set.
    assert!(all.same_as_list(&list(&["a", "b", "c"])));
    assert!(all.same_as_list(&list(&["c", "a", "b", "a"])));
    assert!(!all.same_as_list(&list(&["a", "b"])));
    assert!(!all.same_as_list(&list(&["a", "b", "d"])));
    assert!(!all.same_as_list(&list(&["a", "b", "c", "d"])));

    let some = NameSet::of_list(&list(&["x", "c", "a", "0", "c"]), &m);
    assert_eq!(
        some.iter().cloned().collect::<BTreeSet<_>>(),
        names(&["0", "a", "c", "x"])
    );
    assert_eq!(some.missing().collect::<Vec<_>>(), ["b"]);
    assert!(some.same_as_list(&list(&["0", "a", "c", "x"])));
    assert!(some.same_as_list(&list(&["0", "a", "c", "x"])));
    assert!(!some.same_as_list(&list(&["0", "a", "b", "x"])));
    assert!(some.same_as_list(&list(&["x", "c", "0", "a", "x"])));
    assert!(!some.same_as_list(&list(&["x", "c", "0"])));
    assert!(!some.same_as_list(&list(&["x", "c", "0", "b"])));
    assert!(some.based_on(&m) && !some.based_on(&map(&[])));
}

#[test]
fn holding_nothing_stays_relative_to_nothing() {
    let m = map(&[("a", b"1"), ("b", b"1")]);
    let mut h = HeldVersions::default();
    h.rebase(&m, &MapDiffs::default());
    assert_eq!(h.own_entries(), 0);
    assert!(!h.based_on(&m));
    assert_eq!(h.get("a"), None);
    assert_eq!(h.names().count(), 0);
}

#[test]
fn holding_exactly_a_map_costs_nothing_of_its_own() {
    let m = map(&[("a", b"1"), ("b", b"1")]);
    let h = HeldVersions::exactly(&m);
    assert_eq!(h.own_entries(), 0);
    assert!(h.based_on(&m));
    assert_eq!(h.get("b"), Some(m["b"].version.as_str()));
    assert_eq!(h.names().count(), 2);
}

#[test]
fn a_set_holding_few_names_of_a_large_map_stays_relative_to_nothing() {
    let big = map(&[("a", b"1"), ("b", b"1"), ("c", b"1"), ("d", b"1")]);
    let mut empty = NameSet::default();
    empty.rebase(&big, &MapDiffs::default());
    assert!(empty.missing.is_empty() && empty.extra.is_empty() && empty.len() == 0);
    let mut one = NameSet::of_list(&list(&["a"]), &big);
    assert!(one.missing.is_empty() && !one.based_on(&big));
    assert!(one.contains("a") && !one.contains("b"));
    // A set that was relative to a map and shrank goes back to relative to nothing.
    let mut all = NameSet::of_list(&list(&["a", "b", "c", "d"]), &big);
    for n in ["b", "c", "d"] {
        all.remove(n);
    }
    let bigger = map(&[
        ("a", b"1"),
        ("b", b"1"),
        ("c", b"1"),
        ("d", b"1"),
        ("e", b"1"),
    ]);
    all.rebase(&bigger, &MapDiffs::default());
    assert!(!all.based_on(&bigger) && all.missing.is_empty());
    assert!(all.same_as_list(&list(&["a"])));
    one.rebase(&bigger, &MapDiffs::default());
    assert!(one.same_as_list(&list(&["a"])));
}
