//! `x-forwarded-for` and the internal/external decision, as Envoy's connection manager makes
//! them before routing (checked against Envoy 1.40 on the same requests).
//!
//! With `use_remote_address: false` (unset; istiod's sidecars) the proxy is not the edge:
//! `x-forwarded-for` is left as it came, and the client's address is its one entry; the
//! request is internal only when there is exactly one entry and it is in
//! `internal_address_config` (no range is internal unless configured). With `true` the proxy
//! is the edge: the downstream peer is appended (for a loopback peer, the proxy's own
//! non-loopback address, as Envoy's local address), `x-forwarded-proto` is overwritten with
//! the connection's scheme (`http`: weft-proxy terminates no TLS), and the request is internal
//! only when it came without `x-forwarded-for` from a peer in `internal_address_config`.
//!
//! An internal request gets `x-envoy-internal: true`. Any other loses `x-envoy-internal` and
//! the `x-envoy-*` controls a client must not set (timeouts, retries, forced tracing, …);
//! one from outside at the edge also loses the headers only a proxy sets
//! (`x-envoy-decorator-operation`, `x-envoy-downstream-service-*`), is marked with
//! `x-envoy-external-address`, and gets a new `x-request-id` unless
//! `preserve_external_request_id`.

use super::{X_FORWARDED_FOR, X_FORWARDED_PROTO, X_REQUEST_ID};
use crate::config::{Cidr, Forwarding};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

pub static X_ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");
pub static X_ENVOY_EXTERNAL_ADDRESS: HeaderName =
    HeaderName::from_static("x-envoy-external-address");

/// Removed from every request that is not internal (Envoy's list).
const CONTROLS: [&str; 15] = [
    "x-envoy-internal",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// Also removed from an edge request.
const PROXY_SET: [&str; 3] = [
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
];

/// Applies the forwarding policy to a request from `peer`; returns whether it is internal.
/// Runs before the request id is read, so an edge request's id can be replaced.
pub fn sanitize(h: &mut HeaderMap, policy: &Forwarding, peer: IpAddr) -> bool {
    let (client, trusted) = if policy.use_remote_address {
        let trusted = !h.contains_key(&X_FORWARDED_FOR);
        let appended = if peer.is_loopback() {
            local_address()
        } else {
            peer
        };
        super::append_forwarded_for(h, appended);
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
        (Some(peer), trusted)
    } else if policy.internal.is_empty() {
        // Nothing can be internal: the client's address does not matter.
        (None, false)
    } else {
        sole_forwarded_for(h).map_or((None, false), |ip| (Some(ip), true))
    };
    let internal = trusted && client.is_some_and(|ip| is_internal(&policy.internal, ip));
    if internal {
        h.insert(X_ENVOY_INTERNAL.clone(), HeaderValue::from_static("true"));
        return true;
    }
    let edge = policy.use_remote_address;
    // Most requests carry no `x-envoy-*` header: one pass over the names spares the lookups.
    if h.keys().any(|k| k.as_str().starts_with("x-envoy-")) {
        for name in CONTROLS {
            h.remove(name);
        }
        if edge {
            for name in PROXY_SET {
                h.remove(name);
            }
        }
    }
    if edge {
        let mut buf = [0u8; 64];
        if let Ok(v) = HeaderValue::from_bytes(super::format_ip(peer, &mut buf)) {
            h.insert(X_ENVOY_EXTERNAL_ADDRESS.clone(), v);
        }
        if !policy.preserve_external_request_id {
            h.remove(&X_REQUEST_ID);
        }
    }
    false
}

/// The address in `x-forwarded-for` when it holds exactly one (Envoy trusts no other).
fn sole_forwarded_for(h: &HeaderMap) -> Option<IpAddr> {
    let mut values = h.get_all(&X_FORWARDED_FOR).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let text = value.to_str().ok()?.trim();
    if text.contains(',') {
        return None;
    }
    text.parse().ok()
}

/// Whether `ip` is in one of the ranges (an IPv4 client on a dual-stack socket as IPv4).
pub fn is_internal(ranges: &[Cidr], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ranges.iter().any(|r| r.contains(ip))
}

/// What Envoy appends for a loopback peer: its local address, the first non-loopback IPv4
/// address of the machine's interfaces (loopback when there is none), found once.
fn local_address() -> IpAddr {
    static LOCAL: OnceLock<IpAddr> = OnceLock::new();
    *LOCAL
        .get_or_init(|| first_interface_ipv4().map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4))
}

fn first_interface_ipv4() -> Option<Ipv4Addr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that freeifaddrs releases below;
    // every node is read only while the list is alive.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut node = list;
    while !node.is_null() {
        // SAFETY: `node` is a live element of the list (see above).
        let entry = unsafe { &*node };
        node = entry.ifa_next;
        if entry.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: a non-null `ifa_addr` points at a sockaddr whose family says its type.
        let family = unsafe { (*entry.ifa_addr).sa_family };
        if i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: an AF_INET address is a sockaddr_in.
        let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
        let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
        if !ip.is_loopback() {
            found = Some(ip);
            break;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

#[cfg(test)]
mod tests;
