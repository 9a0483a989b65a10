//! The store: one versioned view of every valid resource, kept up to date by reloading the
//! whole folder.
//!
//! Each reload is merged with what the store held before, resource by resource:
//! - a resource that is valid now replaces its previous version;
//! - a resource that is invalid now keeps its last good version (the error is reported,
//!   with a warning saying which version stays in effect);
//! - a resource that is no longer in the folder is removed, unless the file that held it
//!   could not be read whole (YAML syntax error, unreadable file, a document without kind
//!   or name): then everything that file held stays until it can be read again;
//! - the second definition of the same kind/namespace/name is an error and is ignored.
//!
//! Checks across resources run on the set that would result: a VirtualService that routes
//! to a subset no DestinationRule defines is rejected, and keeps its last good version.

use super::folder::{parse_dir_cached, ParseCache};
use crate::model::validate::cross::{check_subsets, RulesByHost};
use crate::model::{
    resolve_destination_rule, resolve_virtual_service, AnyResource, ConfigSet, Diagnostic,
    FieldPath, Kind, ParsedFile, Resource, ResourceKey, Severity,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyOutcome {
    /// Whether the config set differs from the one before.
    pub changed: bool,
    /// The store's version after the reload.
    pub version: u64,
    /// Errors and warnings, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// Resources that are invalid (or unreadable) now and keep their last good version.
    pub kept: Vec<ResourceKey>,
}

impl ApplyOutcome {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The store keeps each resource once: the set translation reads is built from it on demand
/// ([`Store::config`]) and handed over, not kept beside it (with 10,000 ServiceEntries, each
/// copy of every resource is tens of MB, and a reload holds the old and the new).
#[derive(Debug, Default)]
pub struct Store {
    /// Every good resource, by key.
    good: BTreeMap<ResourceKey, AnyResource>,
    version: u64,
    /// The files as last read (a reload parses only those that changed).
    files: ParseCache,
}

/// Where a resource was read in this reload: file index and document index.
#[derive(Debug, Clone, Copy)]
struct Origin {
    file: usize,
    doc: usize,
}

impl Store {
    pub fn new() -> Self {
        Store::default()
    }

    /// Reads the folder again and merges it in. If the folder cannot be listed at all,
    /// nothing changes.
    pub fn reload_dir(&mut self, dir: &Path) -> ApplyOutcome {
        match parse_dir_cached(dir, &mut self.files) {
            Ok(files) => self.apply(files),
            Err(err) => ApplyOutcome {
                changed: false,
                version: self.version,
                diagnostics: vec![err.diagnostic()],
                kept: self.good.keys().cloned().collect(),
            },
        }
    }

    /// Merges a fresh read of every file (see the module documentation).
    pub fn apply(&mut self, mut files: Vec<ParsedFile>) -> ApplyOutcome {
        let mut diagnostics: Vec<Diagnostic> = files
            .iter_mut()
            .flat_map(|f| std::mem::take(&mut f.diagnostics))
            .collect();
        let broken: BTreeSet<PathBuf> = files
            .iter()
            .filter(|f| !f.intact)
            .map(|f| f.path.clone())
            .collect();

        let Collected {
            origins,
            candidates,
            rejected,
        } = collect(&mut files, &mut diagnostics);

        // Last good versions that stay.
        let mut next: BTreeMap<ResourceKey, AnyResource> = BTreeMap::new();
        let mut kept = Vec::new();
        for (key, old) in &self.good {
            if candidates.contains_key(key) {
                continue;
            }
            if let Some(at) = rejected.contains(key).then(|| origins.get(key)).flatten() {
                diagnostics.push(keeping(&files[at.file], *at, key, old));
            } else if broken.contains(old.file()) {
                diagnostics.push(
                    Diagnostic::warning(
                        old.file(),
                        "keeping the last good version until this file can be read again",
                    )
                    .with_resource(key),
                );
            } else {
                continue;
            }
            kept.push(key.clone());
            next.insert(key.clone(), old.clone());
        }

        // ServiceEntries and WorkloadEntries depend on nothing else.
        let (mut routing, entries): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .partition(|(key, _)| matches!(key.kind, Kind::VirtualService | Kind::DestinationRule));
        next.extend(entries);

        resolve_hosts(&mut routing, &next);
        let (virtual_services, rules): (Vec<_>, Vec<_>) = routing
            .into_iter()
            .partition(|(key, _)| key.kind == Kind::VirtualService);
        next.extend(rules);

        // VirtualServices are checked against the DestinationRules that will be in effect.
        let mut accepted = Vec::new();
        {
            let destination_rules: Vec<&Resource<_>> = next
                .values()
                .filter_map(|r| match r {
                    AnyResource::DestinationRule(dr) => Some(&**dr),
                    _ => None,
                })
                .collect();
            let by_host = RulesByHost::new(&destination_rules);
            for (key, resource) in virtual_services {
                let AnyResource::VirtualService(vs) = &resource else {
                    continue;
                };
                let findings = check_subsets(&vs.spec, &destination_rules, &by_host);
                if findings.is_empty() {
                    accepted.push((key, resource));
                    continue;
                }
                let Some(at) = origins.get(&key) else {
                    continue;
                };
                let file = &files[at.file];
                for finding in findings {
                    diagnostics.push(file.diagnostic(
                        at.doc,
                        Some(&key),
                        finding.severity,
                        &finding.path,
                        finding.message,
                    ));
                }
                if let Some(old) = self.good.get(&key) {
                    diagnostics.push(keeping(file, *at, &key, old));
                    kept.push(key.clone());
                    accepted.push((key, old.clone()));
                }
            }
        }
        next.extend(accepted);

        diagnostics.extend(host_conflicts(&next));
        diagnostics.extend(sidecar_conflicts(&next));
        // An unchanged resource keeps the allocation of the last set, which the last snapshot
        // shares: until sessions move on, a reload then holds a second copy only of what
        // changed (every file is parsed again).
        let mut changed = next.len() != self.good.len();
        for (key, resource) in next.iter_mut() {
            match self.good.get(key) {
                Some(old) if old == resource => *resource = old.clone(),
                _ => changed = true,
            }
        }
        if changed {
            self.version += 1;
        }
        self.good = next;
        diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        kept.sort();
        ApplyOutcome {
            changed,
            version: self.version,
            diagnostics,
            kept,
        }
    }

    /// The current good set (a copy, built from the store's resources).
    pub fn config(&self) -> ConfigSet {
        ConfigSet::from_resources(self.good.values().cloned())
    }

    /// How many resources the good set has.
    pub fn len(&self) -> usize {
        self.good.len()
    }

    pub fn is_empty(&self) -> bool {
        self.good.is_empty()
    }

    /// Starts at 0 and goes up by one whenever the config set changes.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn into_config(self) -> ConfigSet {
        ConfigSet::from_resources(self.good.into_values())
    }
}

/// The resources of one reload, one definition per key.
struct Collected {
    origins: BTreeMap<ResourceKey, Origin>,
    /// The valid ones.
    candidates: BTreeMap<ResourceKey, AnyResource>,
    /// The invalid ones.
    rejected: BTreeSet<ResourceKey>,
}

/// Takes the documents out of `files`, in file order; a second definition of a key is an
/// error and is ignored.
fn collect(files: &mut [ParsedFile], diagnostics: &mut Vec<Diagnostic>) -> Collected {
    let mut out = Collected {
        origins: BTreeMap::new(),
        candidates: BTreeMap::new(),
        rejected: BTreeSet::new(),
    };
    let mut duplicates = Vec::new();
    for (index, file) in files.iter_mut().enumerate() {
        for doc in std::mem::take(&mut file.docs) {
            let origin = Origin {
                file: index,
                doc: doc.doc,
            };
            if let Some(first) = out.origins.get(&doc.key) {
                duplicates.push((doc.key, origin, *first));
                continue;
            }
            out.origins.insert(doc.key.clone(), origin);
            match doc.resource {
                Some(resource) => {
                    out.candidates.insert(doc.key, resource);
                }
                None => {
                    out.rejected.insert(doc.key);
                }
            }
        }
    }
    let name_field = FieldPath::root().key("metadata").key("name");
    for (key, at, first) in duplicates {
        let first_file = &files[first.file];
        let line = first_file
            .locate(first.doc, &name_field)
            .map(|(line, _)| format!(":{line}"))
            .unwrap_or_default();
        let message = format!(
            "defined twice: the first definition, at {}{line}, is used and this one is ignored",
            first_file.path.display()
        );
        diagnostics.push(files[at.file].diagnostic(
            at.doc,
            Some(&key),
            Severity::Error,
            &name_field,
            message,
        ));
    }
    out
}

/// Resolves the hosts of new VirtualServices and DestinationRules, keeping as written the
/// hosts that a ServiceEntry in `next` declares.
fn resolve_hosts(
    routing: &mut [(ResourceKey, AnyResource)],
    next: &BTreeMap<ResourceKey, AnyResource>,
) {
    let declared: BTreeSet<&str> = next
        .values()
        .filter_map(|r| match r {
            AnyResource::ServiceEntry(se) => Some(se.spec.hosts.iter().map(String::as_str)),
            _ => None,
        })
        .flatten()
        .collect();
    let is_declared = |host: &str| declared.contains(host);
    for (_, resource) in routing.iter_mut() {
        match resource {
            // Resolved from the resource as written (which the file cache shares) into a copy
            // only when that changes a host: most hosts are written in full.
            AnyResource::VirtualService(r) => {
                let mut spec = r.spec.clone();
                resolve_virtual_service(&mut spec, &r.meta.namespace, &is_declared);
                if spec != r.spec {
                    Arc::make_mut(r).spec = spec;
                }
            }
            AnyResource::DestinationRule(r) => {
                let mut spec = r.spec.clone();
                resolve_destination_rule(&mut spec, &r.meta.namespace, &is_declared);
                if spec != r.spec {
                    Arc::make_mut(r).spec = spec;
                }
            }
            _ => {}
        }
    }
}

fn keeping(file: &ParsedFile, at: Origin, key: &ResourceKey, old: &AnyResource) -> Diagnostic {
    let message = format!(
        "invalid, so the last good version (read from {}) stays in effect",
        old.file().display()
    );
    file.diagnostic(
        at.doc,
        Some(key),
        Severity::Warning,
        &FieldPath::root(),
        message,
    )
}

/// The registry has one service per host name: when several ServiceEntries declare a
/// host, the first by namespace and name provides it.
fn host_conflicts(good: &BTreeMap<ResourceKey, AnyResource>) -> Vec<Diagnostic> {
    let mut first: BTreeMap<&str, ResourceKey> = BTreeMap::new();
    let mut out = Vec::new();
    // By key: by namespace and name.
    let service_entries = good.values().filter_map(|r| match r {
        AnyResource::ServiceEntry(se) => Some(se),
        _ => None,
    });
    for se in service_entries {
        for (i, host) in se.spec.hosts.iter().enumerate() {
            match first.get(host.as_str()) {
                Some(owner) if *owner != se.key() => out.push(
                    Diagnostic::warning(
                        &se.file,
                        format!("host {host} is also declared by {owner}, which provides it"),
                    )
                    .with_resource(se.key())
                    .with_field(FieldPath::spec().key("hosts").index(i)),
                ),
                Some(_) => {}
                None => {
                    first.insert(host, se.key());
                }
            }
        }
    }
    out
}

/// Istio leaves undefined which of two Sidecars without a selector in one namespace applies;
/// weft uses the first by name (`ConfigSet::sidecar_for`) and says so.
fn sidecar_conflicts(good: &BTreeMap<ResourceKey, AnyResource>) -> Vec<Diagnostic> {
    let mut first: BTreeMap<&str, ResourceKey> = BTreeMap::new();
    let mut out = Vec::new();
    let without_selector = good.values().filter_map(|r| match r {
        AnyResource::Sidecar(sc) if sc.spec.workload_selector.is_none() => Some(sc),
        _ => None,
    });
    for sc in without_selector {
        match first.get(sc.meta.namespace.as_str()) {
            Some(owner) => out.push(
                Diagnostic::warning(
                    &sc.file,
                    format!(
                        "namespace {} has another Sidecar without a workloadSelector, {owner}, which applies instead",
                        sc.meta.namespace
                    ),
                )
                .with_resource(sc.key()),
            ),
            None => {
                first.insert(&sc.meta.namespace, sc.key());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
