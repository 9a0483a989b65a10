//! One delta ADS stream (incremental xDS).
//!
//! Per type the session tracks the names the proxy subscribed to (or wildcard) and the version
//! of every resource it holds, so a config change sends only what changed and names what was
//! removed. A reconnecting proxy announces what it holds in `initial_resource_versions`, and is
//! not sent those again.

use super::compact::{sorted_unique, HeldVersions, NameSet};
use super::driver::{Protocol, StreamEnd};
use super::resources::{NamedResources, VersionedResource};
use super::sequencer::Phase;
use super::{wire, Session};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::{debug, warn};
use xds_protos::pb::envoy::config::core::v3::Node;
use xds_protos::type_url::{self, is_wildcard_type};
use xds_protos::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};

#[derive(Default)]
struct TypeState {
    subscribed: NameSet,
    wildcard: bool,
    /// What the proxy holds: name -> version.
    held: HeldVersions,
    /// Nonces of responses not yet answered, with the config version they carried.
    in_flight: HashMap<String, String>,
}

/// A delta stream: the common session plus the per-type state.
pub(super) struct Stream {
    s: Session<DeltaDiscoveryRequest>,
    types: HashMap<&'static str, TypeState>,
}

impl Protocol for Stream {
    type Request = DeltaDiscoveryRequest;
    const NAME: &'static str = "delta";

    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn new(s: Session<DeltaDiscoveryRequest>) -> Self {
        Stream {
            s,
            types: HashMap::new(),
        }
    }

    fn session(&mut self) -> &mut Session<DeltaDiscoveryRequest> {
        &mut self.s
    }

    async fn on_request(&mut self, req: DeltaDiscoveryRequest) -> Result<(), StreamEnd> {
        self.read(req).await
    }

    async fn push(&mut self, type_url: &'static str, phase: Phase) -> Result<bool, StreamEnd> {
        self.send_changes(type_url, phase, &NameSet::default(), false)
            .await
    }

    fn all_answered(&self) -> bool {
        self.types.values().all(|t| t.in_flight.is_empty())
    }

    fn requested(&self, type_url: &str) -> bool {
        self.types.contains_key(type_url)
    }
}

impl Stream {
    async fn read(&mut self, req: DeltaDiscoveryRequest) -> Result<(), StreamEnd> {
        let Some(type_url) = type_url::known(&req.type_url) else {
            warn!(type_url = %req.type_url, "ignoring request for an unsupported type");
            return Ok(());
        };
        let new_type = !self.types.contains_key(type_url);
        let state = self.types.entry(type_url).or_default();
        // Relative to the current map first, so the names subscribed below that it has cost
        // the session nothing of its own.
        if let Some(all) = self.s.resources.shared_of_type(type_url) {
            state.subscribed.rebase(all, &self.s.shared.map_diffs);
        }
        if !req.response_nonce.is_empty() {
            let version = state
                .in_flight
                .remove(&req.response_nonce)
                .unwrap_or_default();
            match &req.error_detail {
                Some(err) => {
                    warn!(node = %self.s.identity.id, type_url, error = %err.message, "NACK");
                    self.s.shared.status.nacked(
                        self.s.conn,
                        type_url,
                        &version,
                        &req.response_nonce,
                        &err.message,
                    );
                }
                None => self.s.shared.status.acked(self.s.conn, type_url, &version),
            }
            if state.in_flight.is_empty() {
                self.s.seq.answered(type_url);
            }
        }
        if new_type {
            for (name, version) in &req.initial_resource_versions {
                state.held.insert(name, version);
            }
            // A first request naming nothing is the legacy wildcard subscription.
            if is_wildcard_type(type_url) && req.resource_names_subscribe.is_empty() {
                state.wildcard = true;
            }
        }
        let mut changed = new_type;
        // Names subscribed in this request are answered even if the proxy is thought to hold
        // them (it may have dropped them), except those a new stream's first request says it
        // holds (`initial_resource_versions`); names that do not exist are answered as
        // removed, so the proxy does not wait for them.
        // They are kept relative to the current map (nothing copied when they are names of
        // it), so that the request itself (a sidecar's endpoints: every cluster's name) is not
        // held while the response waits for a push slot.
        let empty = Arc::default();
        let all = self.s.resources.shared_of_type(type_url).unwrap_or(&empty);
        let asked = {
            let mut sorted = sorted_unique(&req.resource_names_subscribe);
            if let Ok(star) = sorted.binary_search(&"*") {
                sorted.remove(star);
                changed |= !state.wildcard;
                state.wildcard = true;
            }
            if state.subscribed.len() == 0 {
                // A first subscription: one ordered walk of the map.
                state.subscribed = NameSet::of_sorted(&sorted, all);
            } else {
                sorted.iter().for_each(|name| state.subscribed.insert(name));
            }
            if new_type {
                // What a reconnecting proxy says it holds is not asked for again: it is sent
                // only when its version is not the current one, as the held versions decide.
                sorted.retain(|n| !req.initial_resource_versions.contains_key(*n));
            }
            NameSet::of_sorted(&sorted, all)
        };
        changed |= asked.len() > 0;
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = false;
            } else {
                state.subscribed.remove(name);
            }
            // The proxy dropped it: if it subscribes again it must be sent again.
            state.held.remove(name);
        }
        drop(req);
        if changed {
            let phase = self.s.seq.phase_now(type_url);
            // The first request of a type is always answered, even with nothing: a proxy
            // waits for that answer before it counts the type as received (with an empty
            // mesh, there would be nothing to send ever).
            self.send_changes(type_url, phase, &asked, new_type).await?;
        }
        Ok(())
    }

    /// Sends what the proxy lacks or holds in an old version and, in the exact phase, what it
    /// holds that is gone. Names in `asked` are sent (or reported missing) regardless; with
    /// `answer_always`, a response goes out even when it carries nothing.
    async fn send_changes(
        &mut self,
        type_url: &'static str,
        phase: Phase,
        asked: &NameSet,
        answer_always: bool,
    ) -> Result<bool, StreamEnd> {
        let current: Option<Arc<NamedResources>> =
            self.s.resources.shared_of_type(type_url).cloned();
        let empty = Arc::default();
        let all = current.as_ref().unwrap_or(&empty);
        let Some(state) = self.types.get_mut(type_url) else {
            return Ok(false);
        };
        if current.is_some() {
            state.subscribed.rebase(all, &self.s.shared.map_diffs);
            state.held.rebase(all, &self.s.shared.map_diffs);
        }
        if asked.len() > 0 || !state.held.based_on(all) {
            // A subscription is always answered, and what the proxy holds is not a few names
            // away from the map (a first answer): the slot first, then the work of the
            // answer in it. Its lists name every resource (measured: 180 MB held by 500
            // sessions waiting for a slot with 10,000 services).
            self.s.take_slot().await;
        }
        let Some(state) = self.types.get_mut(type_url) else {
            return Ok(false);
        };
        let held_on_all = state.held.based_on(all);
        let subscribed_on_all = state.subscribed.based_on(all);
        let wanted = |name: &str| state.wildcard || state.subscribed.contains(name);
        // Held versions kept relative to the current map differ from it only in their
        // difference: the names to look at are those, not every name of the map.
        let mut candidates: Vec<&str> = if held_on_all {
            state.held.differing().map(String::as_str).collect()
        } else if state.wildcard {
            all.keys().map(String::as_str).collect()
        } else {
            state.subscribed.iter().map(String::as_str).collect()
        };
        candidates.extend(asked.iter().map(String::as_str));
        // Mostly in order already (the map's, the request's): sorting is a walk.
        candidates.sort_unstable();
        candidates.dedup();
        // The candidates the map has, found by walking it alongside when they are many (a
        // first subscription: thousands of names), else looked up.
        let (present, absent) = split_by_map(&candidates, all);
        let mut to_send: Vec<(&String, &Arc<VersionedResource>)> = Vec::new();
        for (name, r) in present {
            let held = if held_on_all {
                state.held.get_base_key(name, &r.version)
            } else {
                state.held.get(name)
            };
            let stale = held != Some(r.version.as_str());
            let wanted = state.wildcard
                || if subscribed_on_all {
                    state.subscribed.contains_base_key(name)
                } else {
                    state.subscribed.contains(name)
                };
            if (wanted && stale) || asked.contains(name) {
                to_send.push((name, r));
            }
        }
        // What the proxy holds (and wants) that the map does not have any more; names asked
        // for that do not exist are answered as removed too.
        let mut removed: Vec<String> = match phase {
            Phase::Exact if held_on_all => absent
                .iter()
                .filter(|n| state.held.get(n).is_some() && wanted(n))
                .map(|n| n.to_string())
                .collect(),
            Phase::Exact => state
                .held
                .names()
                .filter(|n| !all.contains_key(*n) && wanted(n))
                .cloned()
                .collect(),
            Phase::Add => Vec::new(),
        };
        for &n in absent.iter().filter(|n| asked.contains(n)) {
            if !removed.iter().any(|r| r == n) {
                removed.push(n.to_string());
            }
        }
        if to_send.is_empty() && removed.is_empty() && !answer_always {
            return Ok(false);
        }
        // Before copying the resources into a response: one waiting for its slot would be
        // memory held for nothing.
        self.s.take_slot().await;
        // Names are unique and in the map's order: as many as the map has is the whole map,
        // as every proxy of the class gets it first.
        let whole_map = current.is_some() && to_send.len() == all.len();
        if whole_map && state.held.holds_nothing() {
            state.held = HeldVersions::exactly(all);
        } else {
            for (name, r) in &to_send {
                state.held.insert(name, &r.version);
            }
        }
        for n in &removed {
            state.held.remove(n);
        }
        // A first response leaves every name in the difference; relative to the current map
        // it is empty again (measured: 0.4 MiB per session at 1,000 services otherwise).
        state.held.rebase_now(all, &self.s.shared.map_diffs);
        let nonce = self.s.next_nonce();
        state
            .in_flight
            .insert(nonce.clone(), self.s.config.version.clone());
        let count = to_send.len();
        self.s
            .shared
            .status
            .sent(self.s.conn, type_url, &self.s.config.version, &nonce, count);
        debug!(node = %self.s.identity.id, type_url, count, removed = removed.len(), "delta push");
        let head = DeltaDiscoveryResponse {
            system_version_info: self.s.config.version.clone(),
            type_url: type_url.to_string(),
            removed_resources: removed,
            nonce,
            ..Default::default()
        };
        let response = if whole_map {
            let resources = self.s.shared.whole_maps.resources(all, wire::Form::Delta);
            wire::whole_map_response(&head, &resources)
        } else {
            wire::delta_response(
                &head,
                to_send.iter().map(|(name, r)| (name.as_str(), &***r)),
            )
        };
        self.s.io.send(response).await?;
        Ok(true)
    }
}

/// The entries of `all` named in `sorted` (sorted, unique), and the names it lacks: one walk
/// of the map when the names are a good part of it, else a lookup per name.
fn split_by_map<'a, 'n>(
    sorted: &[&'n str],
    all: &'a NamedResources,
) -> (Vec<(&'a String, &'a Arc<VersionedResource>)>, Vec<&'n str>) {
    let mut present = Vec::with_capacity(sorted.len().min(all.len()));
    let mut absent = Vec::new();
    if sorted.len() * 8 < all.len() {
        for &name in sorted {
            match all.get_key_value(name) {
                Some(entry) => present.push(entry),
                None => absent.push(name),
            }
        }
        return (present, absent);
    }
    let mut entries = all.iter().peekable();
    for &name in sorted {
        while entries.next_if(|(k, _)| k.as_str() < name).is_some() {}
        match entries.next_if(|(k, _)| k.as_str() == name) {
            Some(entry) => present.push(entry),
            None => absent.push(name),
        }
    }
    (present, absent)
}
