//! One state-of-the-world ADS stream.
//!
//! Per type the session remembers what the proxy subscribed to, the nonce of the last
//! response and what it sent, so that a config change only re-sends the types whose content
//! changed for this proxy. Requests carrying a nonce other than the latest are stale
//! (the proxy has not seen the newest response yet) and are ignored, as the protocol says.
//!
//! What was sent is kept two ways. Listeners and clusters (wildcard types, whose response is
//! the whole set) keep the map sent, which is the very map every session shares. Routes and
//! endpoints (subscribed by name, a response updating only the names it carries) keep
//! name -> version as a difference from the shared map ([`HeldVersions`]), as delta does:
//! after a change that difference is exactly what changed, and no session builds a map of
//! its thousands of endpoint names (profiled: that, and reading each request's names into a
//! set, were most of a sotw change's CPU at 500 proxies).

use super::compact::{HeldVersions, NameSet};
use super::driver::{Protocol, StreamEnd};
use super::map_diff::MapDiffs;
use super::resources::{NamedResources, VersionedResource};
use super::sequencer::Phase;
use super::{wire, Session};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::{debug, warn};
use xds_protos::pb::envoy::config::core::v3::Node;
use xds_protos::type_url::{self, is_wildcard_type};
use xds_protos::DiscoveryResponse;

mod request;
use request::SotwRequest;

#[derive(Default)]
struct TypeState {
    subscribed: NameSet,
    wildcard: bool,
    last_nonce: String,
    /// A response of this type is out and not answered yet.
    awaiting: bool,
    last_version: String,
    /// Whether anything was sent yet (an empty response is a valid answer).
    sent_once: bool,
    /// Wildcard types: what the proxy was last sent, kept through the additive steps of a push.
    sent: WholeSet,
    /// Types subscribed by name: what the proxy holds, name -> version.
    held: HeldVersions,
}

/// What a wildcard type's response holds: a map (usually the very map every session of the
/// class shares) and, in a push's additive phase, the resources the config dropped that the
/// proxy still holds. Kept apart, a response is the shared map's encoding plus a few
/// resources: merged into one map per session, a push that removed one cluster copied 3,000
/// of them per proxy, and again into its response (measured: 400 MB at 2,000 proxies).
#[derive(Debug, Default, Clone)]
struct WholeSet {
    map: Arc<NamedResources>,
    /// Whether `map` is a map every session shares (not one of this proxy's own).
    shared: bool,
    dropped: NamedResources,
}

impl WholeSet {
    fn len(&self) -> usize {
        self.map.len() + self.dropped.len()
    }

    /// Whether both hold the same names in the same versions. Two shared maps are compared
    /// by their difference, found once for every session (each session walking 3,000
    /// clusters of both was 4 % of a sotw change, measured).
    fn same_versions(&self, other: &WholeSet, diffs: &MapDiffs) -> bool {
        let maps = if self.shared && other.shared {
            Arc::ptr_eq(&self.map, &other.map)
                || diffs.between(&other.map, &self.map).changed.is_empty()
        } else {
            same_versions(&self.map, &other.map)
        };
        maps && same_versions(&self.dropped, &other.dropped)
    }
}

/// A sotw stream: the common session plus the per-type state.
pub(super) struct Stream {
    s: Session<SotwRequest>,
    types: HashMap<&'static str, TypeState>,
}

impl Protocol for Stream {
    type Request = SotwRequest;
    const NAME: &'static str = "sotw";

    fn node(req: &SotwRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn new(s: Session<SotwRequest>) -> Self {
        Stream {
            s,
            types: HashMap::new(),
        }
    }

    fn session(&mut self) -> &mut Session<SotwRequest> {
        &mut self.s
    }

    async fn on_request(&mut self, req: SotwRequest) -> Result<(), StreamEnd> {
        self.read(req).await
    }

    async fn push(&mut self, type_url: &'static str, phase: Phase) -> Result<bool, StreamEnd> {
        self.send(type_url, phase, false, Carry::Changes).await
    }

    fn all_answered(&self) -> bool {
        !self.types.values().any(|t| t.awaiting)
    }

    fn requested(&self, type_url: &str) -> bool {
        self.types.contains_key(type_url)
    }
}

impl Stream {
    async fn read(&mut self, req: SotwRequest) -> Result<(), StreamEnd> {
        let Some(type_url) = type_url::known(&req.type_url) else {
            warn!(type_url = %req.type_url, "ignoring request for an unsupported type");
            return Ok(());
        };
        let state = self.types.entry(type_url).or_default();
        if !req.response_nonce.is_empty() && req.response_nonce != state.last_nonce {
            debug!(type_url, nonce = %req.response_nonce, "stale nonce, ignored");
            return Ok(());
        }
        let answered = !req.response_nonce.is_empty();
        if let Some(err) = &req.error_detail {
            warn!(node = %self.s.identity.id, type_url, error = %err.message, "NACK");
            self.s.shared.status.nacked(
                self.s.conn,
                type_url,
                &state.last_version,
                &req.response_nonce,
                &err.message,
            );
        } else if answered {
            self.s
                .shared
                .status
                .acked(self.s.conn, type_url, &req.version_info);
        }
        if answered {
            state.awaiting = false;
            self.s.seq.answered(type_url);
        }

        let first_request = !answered;
        let changed = {
            let names = req.names().map_err(StreamEnd::BadRequest)?;
            let wildcard = is_wildcard_type(type_url) && (names.is_empty() || names.contains(&"*"));
            let changed = !state.subscribed.same_as_list(&names) || wildcard != state.wildcard;
            if changed {
                let current = self.s.resources.shared_of_type(type_url);
                state.subscribed = NameSet::of_list(&names, current.unwrap_or(&Arc::default()));
            }
            state.wildcard = wildcard;
            changed
        };
        // Not kept while the response waits for a push slot: an endpoint request names every
        // cluster.
        drop(req);
        if first_request || changed {
            // A request without a nonce is a proxy that may hold nothing (a new stream, or
            // one that dropped what it had): it gets everything it asks for.
            let carry = if first_request {
                Carry::Everything
            } else {
                Carry::Changes
            };
            let phase = self.s.seq.phase_now(type_url);
            self.send(type_url, phase, true, carry).await?;
        }
        Ok(())
    }

    /// Sends the current resources of a type; unless `force`, only when they changed. In the
    /// additive phase, what the proxy has and the config dropped is sent again, not removed.
    ///
    /// Listeners and clusters are always sent whole (a response is their whole set). Routes and
    /// endpoints are subscribed by name and a response updates only the names it carries, so
    /// with [`Carry::Changes`] it carries only those the proxy does not hold in this version:
    /// one changed route configuration is resent, not every one the proxy holds.
    async fn send(
        &mut self,
        type_url: &'static str,
        phase: Phase,
        force: bool,
        carry: Carry,
    ) -> Result<bool, StreamEnd> {
        if !is_wildcard_type(type_url) {
            return self.send_by_name(type_url, phase, force, carry).await;
        }
        let Some(state) = self.types.get_mut(type_url) else {
            return Ok(false);
        };
        let current = self.s.resources.shared_of_type(type_url);
        if let Some(current) = current {
            state.subscribed.rebase(current, &self.s.shared.map_diffs);
        }
        let next = wanted_now(state, current, phase, &self.s.shared.map_diffs);
        let shared_map = current.is_some_and(|c| Arc::ptr_eq(c, &next.map));
        if !force && state.sent_once && next.same_versions(&state.sent, &self.s.shared.map_diffs) {
            return Ok(false);
        }
        self.s.take_slot().await;
        let head = self.start_response(type_url);
        let dropped = next.dropped.values().map(|r| &**r);
        let response = if shared_map {
            // The whole shared map, as every proxy of the class gets it.
            let map = self
                .s
                .shared
                .whole_maps
                .resources(&next.map, wire::Form::Sotw);
            wire::whole_map_and(&head, &map, dropped)
        } else {
            let all: Vec<&VersionedResource> =
                next.map.values().map(|r| &**r).chain(dropped).collect();
            wire::sotw_response(&head, all.into_iter())
        };
        let count = next.len();
        if let Some(state) = self.types.get_mut(type_url) {
            state.sent = next;
        }
        self.finish_response(type_url, &head.nonce, count, response)
            .await
    }

    /// [`Stream::send`] for routes and endpoints: what the proxy holds is name -> version
    /// relative to the shared map, so finding what changed looks at that difference only.
    async fn send_by_name(
        &mut self,
        type_url: &'static str,
        phase: Phase,
        force: bool,
        carry: Carry,
    ) -> Result<bool, StreamEnd> {
        let Some(state) = self.types.get_mut(type_url) else {
            return Ok(false);
        };
        let current = self.s.resources.shared_of_type(type_url).cloned();
        let all = current.unwrap_or_default();
        state.subscribed.rebase(&all, &self.s.shared.map_diffs);
        state.held.rebase(&all, &self.s.shared.map_diffs);
        let wanted = |name: &str| state.wildcard || state.subscribed.contains(name);
        let held_everything_wanted = state.wildcard || state.subscribed.covers(&all);

        // What the proxy should be sent: every wanted resource, or those it does not hold.
        let mut to_send: Vec<(&String, &Arc<VersionedResource>)> = Vec::new();
        let stale = |name: &str, r: &VersionedResource| {
            carry == Carry::Everything || state.held.get(name) != Some(r.version.as_str())
        };
        if carry == Carry::Changes && state.held.based_on(&all) {
            // Relative to the current map, only the difference can be stale.
            for name in state.held.differing() {
                if let Some((n, r)) = all.get_key_value(name) {
                    if wanted(n) && stale(n, r) {
                        to_send.push((n, r));
                    }
                }
            }
            to_send.sort_unstable_by(|a, b| a.0.cmp(b.0));
        } else if held_everything_wanted {
            to_send.extend(all.iter().filter(|(n, r)| stale(n, r)));
        } else {
            for name in state.subscribed.iter() {
                if let Some((n, r)) = all.get_key_value(name) {
                    if stale(n, r) {
                        to_send.push((n, r));
                    }
                }
            }
            to_send.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        // What the proxy holds and should not any more (only forgotten in the exact phase:
        // a sotw response of this type cannot remove anything, but the proxy must be sent it
        // again once it subscribes to it again).
        let gone: Vec<String> = match phase {
            Phase::Add => Vec::new(),
            Phase::Exact => {
                let unwanted = |n: &String| !all.contains_key(n) || !wanted(n);
                if state.held.based_on(&all) && state.subscribed.based_on(&all) {
                    state
                        .held
                        .differing()
                        .chain(state.subscribed.missing())
                        .filter(|n| state.held.get(n).is_some() && unwanted(n))
                        .cloned()
                        .collect::<std::collections::BTreeSet<String>>()
                        .into_iter()
                        .collect()
                } else {
                    state
                        .held
                        .names()
                        .filter(|n| unwanted(n))
                        .cloned()
                        .collect()
                }
            }
        };
        if !force && state.sent_once && to_send.is_empty() && gone.is_empty() {
            return Ok(false);
        }
        let count = to_send.len();
        let whole_map = count == all.len() && count > 0;
        // The whole map needs no list of its own: the proxy then holds exactly the map.
        let picked: Vec<(String, Arc<VersionedResource>)> = if whole_map {
            Vec::new()
        } else {
            to_send
                .iter()
                .map(|(n, r)| ((*n).clone(), Arc::clone(r)))
                .collect()
        };
        // Before copying the resources into a response: one waiting for its slot would be
        // memory held for nothing.
        self.s.take_slot().await;
        let head = self.start_response(type_url);
        let response = if whole_map {
            let resources = self.s.shared.whole_maps.resources(&all, wire::Form::Sotw);
            wire::whole_map_response(&head, &resources)
        } else {
            wire::sotw_response(&head, picked.iter().map(|(_, r)| &**r))
        };
        if let Some(state) = self.types.get_mut(type_url) {
            if whole_map && (phase == Phase::Exact || state.held.holds_nothing()) {
                // Everything it held outside the map is gone (or there was nothing): it holds
                // the map, no more.
                state.held = HeldVersions::exactly(&all);
            } else {
                if whole_map {
                    for (name, r) in all.iter() {
                        state.held.insert(name, &r.version);
                    }
                }
                for (name, r) in &picked {
                    state.held.insert(name, &r.version);
                }
                for name in &gone {
                    state.held.remove(name);
                }
                state.held.rebase_now(&all, &self.s.shared.map_diffs);
            }
        }
        self.finish_response(type_url, &head.nonce, count, response)
            .await
    }

    /// Marks a response of `type_url` as out and returns its head (version, type, nonce).
    fn start_response(&mut self, type_url: &'static str) -> DiscoveryResponse {
        let nonce = self.s.next_nonce();
        let version = self.s.config.version.clone();
        if let Some(state) = self.types.get_mut(type_url) {
            state.awaiting = true;
            state.last_nonce = nonce.clone();
            state.last_version = version.clone();
            state.sent_once = true;
        }
        DiscoveryResponse {
            version_info: version,
            type_url: type_url.to_string(),
            nonce,
            ..Default::default()
        }
    }

    async fn finish_response(
        &mut self,
        type_url: &'static str,
        nonce: &str,
        count: usize,
        response: wire::EncodedMessage,
    ) -> Result<bool, StreamEnd> {
        self.s
            .shared
            .status
            .sent(self.s.conn, type_url, &self.s.config.version, nonce, count);
        debug!(node = %self.s.identity.id, type_url, count, nonce = %nonce, "push");
        self.s.io.send(response).await?;
        Ok(true)
    }
}

/// What the proxy should hold of a wildcard type now: the current resources it subscribed to
/// (when that is the whole current map, the shared map itself) and, in the additive phase,
/// also what it was sent that the config dropped.
fn wanted_now(
    state: &TypeState,
    current: Option<&Arc<NamedResources>>,
    phase: Phase,
    diffs: &MapDiffs,
) -> WholeSet {
    let empty = Arc::default();
    let all = current.unwrap_or(&empty);
    let wanted = |name: &str| state.wildcard || state.subscribed.contains(name);
    let shared = state.wildcard || state.subscribed.covers(all);
    let map = if shared {
        all.clone()
    } else {
        Arc::new(
            state
                .subscribed
                .iter()
                .filter_map(|n| all.get(n).map(|r| (n.clone(), r.clone())))
                .collect(),
        )
    };
    let mut dropped = NamedResources::new();
    if phase == Phase::Add {
        let sent = &state.sent;
        let mut keep = |name: &String, r: &Arc<VersionedResource>| {
            if wanted(name) && !map.contains_key(name) {
                dropped.insert(name.clone(), r.clone());
            }
        };
        for (name, r) in &sent.dropped {
            keep(name, r);
        }
        if Arc::ptr_eq(&sent.map, all) && Arc::ptr_eq(&map, all) {
            // Nothing of the map was dropped.
        } else if shared && sent.shared && !sent.map.is_empty() {
            // From one shared map to the next: what the old one has and the new one lacks is
            // in their difference, found once for every session.
            for c in &diffs.between(&sent.map, all).changed {
                if let (false, Some((name, r))) = (c.in_new, sent.map.get_key_value(&c.name)) {
                    keep(name, r);
                }
            }
        } else {
            for (name, r) in sent.map.iter() {
                keep(name, r);
            }
        }
    }
    WholeSet {
        map,
        shared,
        dropped,
    }
}

/// Which resources of a subscribed-by-name type a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    /// Every resource the proxy subscribed to.
    Everything,
    /// Only those it was not sent, or was sent in another version.
    Changes,
}

/// Whether two sets of resources have the same names and versions.
fn same_versions(a: &NamedResources, b: &NamedResources) -> bool {
    std::ptr::eq(a, b)
        || (a.len() == b.len()
            && a.iter()
                .zip(b.iter())
                .all(|((na, ra), (nb, rb))| na == nb && ra.version == rb.version))
}
