//! Request and response header handling a proxy owes the hops on either side (RFC 9110 §7.6),
//! and what the connection manager's configuration does to every head ([`prepare_request`],
//! [`finish_response`]).

pub mod forwarding;
mod path;

pub use path::PathRejected;

use crate::config::{HeadPolicy, ServerHeader, StripPort};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Uri};
use http::Request;
use std::net::IpAddr;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Removes the headers that describe one hop, not the message: the fixed set, and every header
/// the `Connection` header names. `TE: trailers` survives, because gRPC needs it end to end.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the names (cheap comparisons) spares
    // the eight hash lookups below, on every request and every response.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if let Some(conn) = headers.get(header::CONNECTION) {
        let named: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .filter(|n| n != header::TE)
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for h in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHORIZATION,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(h);
    }
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !te_trailers {
        headers.remove(header::TE);
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::TRAILER
        || name == header::PROXY_AUTHORIZATION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Removes an `Upgrade: h2c` offer: the upgrade header, its settings, and their tokens in
/// `Connection`.
pub fn strip_h2c_upgrade(headers: &mut HeaderMap) {
    headers.remove(header::UPGRADE);
    headers.remove(&HTTP2_SETTINGS);
    if let Some(conn) = headers.get(header::CONNECTION) {
        let kept: Vec<&str> = conn
            .to_str()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| {
                !t.eq_ignore_ascii_case("upgrade") && !t.eq_ignore_ascii_case("http2-settings")
            })
            .filter(|t| !t.is_empty())
            .collect();
        match HeaderValue::from_str(&kept.join(", ")) {
            Ok(v) if !kept.is_empty() => {
                headers.insert(header::CONNECTION, v);
            }
            _ => {
                headers.remove(header::CONNECTION);
            }
        }
    }
}

/// Appends the downstream peer to `x-forwarded-for`.
pub fn append_forwarded_for(headers: &mut HeaderMap, peer: IpAddr) {
    let mut buf = [0u8; 64];
    let ip = format_ip(peer, &mut buf);
    let value = match headers.get(&X_FORWARDED_FOR) {
        Some(existing) => {
            let mut v = Vec::with_capacity(existing.len() + 1 + ip.len());
            v.extend_from_slice(existing.as_bytes());
            v.push(b',');
            v.extend_from_slice(ip);
            HeaderValue::from_bytes(&v)
        }
        None => HeaderValue::from_bytes(ip),
    };
    if let Ok(v) = value {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
}

/// An IP address as text, into `buf`: IPv4 (the common case, on every request) without the
/// formatting machinery, IPv6 through it.
fn format_ip(ip: IpAddr, buf: &mut [u8; 64]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            &buf[..n]
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{v6}");
            let n = cursor.position() as usize;
            &buf[..n]
        }
    }
}

/// Gives the request an `x-request-id` if it has none, and returns it.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        return v.clone();
    }
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    let v = HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    headers.insert(X_REQUEST_ID.clone(), v.clone());
    v
}

/// Puts the request's `x-request-id` on its response, as Envoy does for a request that forced
/// its trace (`x-envoy-force-trace` from an internal client): the caller learns the id under
/// which the trace was collected. Whatever the upstream sent under that name is replaced.
pub fn return_request_id(response: &mut HeaderMap, request_id: HeaderValue) {
    response.insert(X_REQUEST_ID.clone(), request_id);
}

/// What the connection manager does to a request before its filters and routing see it:
/// removes `x-forwarded-client-cert` (no client certificate ever backs it: see
/// `config::HeadPolicy::forward_client_cert`), strips the host's port, normalizes the path.
/// `listener_port` is the port `strip_matching_host_port` compares with. An error is a path
/// the request must be answered 400 for.
pub fn prepare_request<B>(
    req: &mut Request<B>,
    policy: &HeadPolicy,
    listener_port: u16,
) -> Result<(), PathRejected> {
    if !policy.forward_client_cert {
        req.headers_mut().remove(&X_FORWARDED_CLIENT_CERT);
    }
    if policy.strip_port != StripPort::Keep {
        strip_host_port(req, policy.strip_port, listener_port);
    }
    if !policy.path.is_off() {
        let normalized = req
            .uri()
            .path_and_query()
            .map(|p| path::normalize(p.as_str(), &policy.path))
            .transpose()?
            .flatten();
        if let Some(new) = normalized {
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(new.parse().map_err(|_| PathRejected)?);
            *req.uri_mut() = Uri::from_parts(parts).map_err(|_| PathRejected)?;
        }
    }
    Ok(())
}

/// Removes the port from the request's authority (the target's and `Host`), any port or only
/// `listener_port`, so routing and the upstream see the host alone.
fn strip_host_port<B>(req: &mut Request<B>, mode: StripPort, listener_port: u16) {
    let strip = |port: u16| mode == StripPort::Any || port == listener_port;
    if let Some(a) = req.uri().authority() {
        if a.port_u16().is_some_and(strip) {
            if let Ok(host) = Authority::try_from(a.host()) {
                let mut parts = req.uri().clone().into_parts();
                parts.authority = Some(host);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(split_port)
        .filter(|(_, port)| strip(*port))
        .and_then(|(name, _)| HeaderValue::from_str(name).ok());
    if let Some(host) = host {
        req.headers_mut().insert(header::HOST, host);
    }
}

/// `host:port` split at the port; IPv6 literals only in brackets (`[::1]:80`).
fn split_port(host: &str) -> Option<(&str, u16)> {
    let (name, port) = host.rsplit_once(':')?;
    let bracketed = name.starts_with('[') && name.ends_with(']');
    if name.is_empty() || (name.contains(':') && !bracketed) {
        return None;
    }
    Some((name, port.parse().ok()?))
}

/// What the connection manager does to every response head it sends: the `server` header
/// (`server_name` under `server_header_transformation`), and the request's id when the
/// request forced its trace or `always_set_request_id_in_response` asks for it.
pub fn finish_response(
    response: &mut HeaderMap,
    policy: &HeadPolicy,
    request_id: HeaderValue,
    forced_trace: bool,
) {
    match &policy.server_header {
        ServerHeader::Overwrite(name) => {
            response.insert(header::SERVER, name.clone());
        }
        ServerHeader::AppendIfAbsent(name) => {
            if !response.contains_key(header::SERVER) {
                response.insert(header::SERVER, name.clone());
            }
        }
        ServerHeader::PassThrough => {}
    }
    if forced_trace || policy.request_id_in_response {
        return_request_id(response, request_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn strips_fixed_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn te_trailers_survives_for_grpc() {
        let mut h = map(&[("te", "trailers")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get("te").unwrap(), "trailers");
    }

    #[test]
    fn an_h2c_offer_is_removed_with_its_connection_tokens() {
        let mut h = map(&[
            ("connection", "Upgrade, HTTP2-Settings, keep-alive"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ]);
        strip_h2c_upgrade(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h.get("connection").unwrap(), "keep-alive");
    }

    #[test]
    fn addresses_format_as_std_does() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.255.9",
            "255.255.255.255",
            "::1",
            "fe80::1:2",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(format_ip(ip, &mut buf), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        append_forwarded_for(&mut h, "127.0.0.1".parse().unwrap());
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1,127.0.0.1");
    }

    #[test]
    fn host_ports_split_only_where_there_is_one() {
        assert_eq!(split_port("svc:9080"), Some(("svc", 9080)));
        assert_eq!(split_port("[::1]:80"), Some(("[::1]", 80)));
        assert_eq!(split_port("svc"), None);
        assert_eq!(split_port("::1"), None);
        assert_eq!(split_port("[::1]"), None);
        assert_eq!(split_port("svc:http"), None);
        assert_eq!(split_port(":80"), None);
    }

    #[test]
    fn request_id_is_kept_or_generated() {
        let mut h = map(&[("x-request-id", "abc")]);
        assert_eq!(ensure_request_id(&mut h), "abc");
        let mut h = HeaderMap::new();
        let id = ensure_request_id(&mut h);
        assert_eq!(id.len(), 36);
        assert_eq!(h.get("x-request-id").unwrap(), &id);
    }
}
