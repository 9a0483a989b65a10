//! A request's hash for the consistent-hashing balancers, from the route's hash policies.
//!
//! Envoy's semantics (`RouteAction.hash_policy`):
//! - each policy hashes one thing with xxHash64 (seed 0): a header's values (sorted, so their
//!   order does not matter, and hashed as one concatenated stream), a cookie's value, the
//!   client's IP as text, or a query parameter's first value. A policy whose input is absent
//!   contributes nothing.
//! - hashes of several policies combine as `previous.rotate_left(1) ^ next`; the rotation keeps
//!   two identical policies from cancelling out.
//! - a `terminal` policy stops the evaluation once a hash exists, so later (fallback) policies
//!   are skipped.
//! - a cookie policy with a `ttl` whose cookie is absent makes the proxy generate the cookie:
//!   the value is the 16 hex digits of xxHash64 of the client's address, the request is hashed
//!   on that value, and the response must carry
//!   `Set-Cookie: name="value"; Max-Age=ttl; Path=path; HttpOnly` (no `Max-Age` for a ttl of 0,
//!   a session cookie; no `Path` when empty) so the client's next requests hash the same way.
//!   Envoy hashes the client's and the listener's `ip:port` strings; this evaluator is given
//!   only the client IP, so the cookie is per client address rather than per connection. The
//!   value is an opaque key either way: what matters is that it stays in the cookie.
//!
//! No policy matching (or no policies) gives no hash, and the balancer then picks at random.
//! Evaluation allocates only to rewrite header values with a regex, to sort more than
//! [`INLINE_VALUES`] values of one header, and to build a generated cookie.

use std::io::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use http::header::COOKIE;
use http::HeaderValue;
use regex::Regex;
use xxhash_rust::xxh64::{xxh64, Xxh64};

use super::header::HeaderSource;
use super::query::first_value;
use super::RequestView;

/// One compiled `RouteAction.hash_policy` entry.
#[derive(Debug, Clone)]
pub struct HashPolicy {
    pub kind: HashKind,
    /// Stop at this policy when a hash has been produced so far.
    pub terminal: bool,
}

#[derive(Debug, Clone)]
pub enum HashKind {
    /// The values of a header (pseudo-headers `:authority`, `:path`, `:method` resolve from
    /// the request line), optionally rewritten first.
    Header {
        source: HeaderSource,
        rewrite: Option<RegexRewrite>,
    },
    Cookie(CookiePolicy),
    /// `connection_properties.source_ip`.
    SourceIp,
    /// The first value of this query parameter, as sent (not percent-decoded).
    QueryParameter(Box<str>),
}

/// `regex_rewrite`: every match of `regex` in a value is replaced before hashing.
#[derive(Debug, Clone)]
pub struct RegexRewrite {
    pub regex: Regex,
    /// In the `regex` crate's replacement syntax (`${1}`), translated from Envoy's (`\1`).
    pub replacement: String,
}

/// A cookie policy. Built only through [`CookiePolicy::new`], which checks that a generated
/// `Set-Cookie` would be a valid header.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    name: Box<str>,
    /// Whole seconds, as Envoy reads it; `None`: never generate the cookie.
    ttl: Option<u64>,
    path: Box<str>,
}

/// Why a cookie policy cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookiePolicyError {
    #[error("{0:?} is not a valid cookie name")]
    Name(String),
    #[error("{0:?} is not a valid cookie path")]
    Path(String),
}

impl CookiePolicy {
    pub fn new(name: &str, ttl: Option<Duration>, path: &str) -> Result<Self, CookiePolicyError> {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(CookiePolicyError::Name(name.to_string()));
        }
        if !path
            .bytes()
            .all(|b| (b.is_ascii_graphic() && b != b';') || b == b' ')
        {
            return Err(CookiePolicyError::Path(path.to_string()));
        }
        Ok(CookiePolicy {
            name: name.into(),
            ttl: ttl.map(|d| d.as_secs()),
            path: path.into(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the proxy generates the cookie when the request lacks it.
    pub fn generates(&self) -> bool {
        self.ttl.is_some()
    }

    /// `Set-Cookie` for a generated `value`, formatted as Envoy formats it.
    fn set_cookie(&self, ttl: u64, value: &str) -> Option<HeaderValue> {
        let mut header = format!("{}=\"{value}\"", self.name);
        if ttl != 0 {
            header.push_str(&format!("; Max-Age={ttl}"));
        }
        if !self.path.is_empty() {
            header.push_str(&format!("; Path={}", self.path));
        }
        header.push_str("; HttpOnly");
        HeaderValue::from_str(&header).ok()
    }
}

/// RFC 6265 cookie-name: an RFC 7230 token.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The outcome of the hash policies for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestHash {
    /// For `Cluster::pick`; `None` when no policy produced a hash.
    pub hash: Option<u64>,
    /// A generated cookie to send back with the response (`Set-Cookie`).
    pub set_cookie: Option<HeaderValue>,
}

/// Values of one header sorted on the stack; more than this falls back to the heap.
pub const INLINE_VALUES: usize = 8;

/// Evaluates `policies` for `req` from the client at `peer`, with Envoy's semantics (see the
/// module note).
pub fn request_hash(policies: &[HashPolicy], req: &RequestView<'_>, peer: IpAddr) -> RequestHash {
    let mut out = RequestHash::default();
    for policy in policies {
        if let Some(next) = policy.kind.evaluate(req, peer, &mut out.set_cookie) {
            out.hash = Some(match out.hash {
                Some(previous) => previous.rotate_left(1) ^ next,
                None => next,
            });
        }
        if policy.terminal && out.hash.is_some() {
            break;
        }
    }
    out
}

impl HashKind {
    fn evaluate(
        &self,
        req: &RequestView<'_>,
        peer: IpAddr,
        set_cookie: &mut Option<HeaderValue>,
    ) -> Option<u64> {
        match self {
            HashKind::Header { source, rewrite } => header_hash(source, rewrite.as_ref(), req),
            HashKind::Cookie(policy) => cookie_hash(policy, req, peer, set_cookie),
            HashKind::SourceIp => Some(xxh64(ip_text(peer).as_bytes(), 0)),
            HashKind::QueryParameter(name) => {
                let query = req.path_and_query.split_once('?')?.1;
                let query = query.split_once('#').map_or(query, |(q, _)| q);
                first_value(query, name).map(|v| xxh64(v.as_bytes(), 0))
            }
        }
    }
}

fn header_hash(
    source: &HeaderSource,
    rewrite: Option<&RegexRewrite>,
    req: &RequestView<'_>,
) -> Option<u64> {
    let single: &[u8] = match source {
        HeaderSource::Method => req.method.as_str().as_bytes(),
        HeaderSource::Authority if req.authority.is_empty() => return None,
        HeaderSource::Authority => req.authority.as_bytes(),
        HeaderSource::Path => req.path_and_query.as_bytes(),
        HeaderSource::Scheme => SCHEME.as_bytes(),
        HeaderSource::Header(name) => {
            let values = req.headers.get_all(name);
            let mut iter = values.iter();
            let first = iter.next()?;
            if iter.next().is_none() && rewrite.is_none() {
                return Some(xxh64(first.as_bytes(), 0));
            }
            return Some(hash_values(values.iter().map(|v| v.as_bytes()), rewrite));
        }
    };
    Some(hash_values(std::iter::once(single), rewrite))
}

/// What `:scheme` resolves to, as in header matching: plaintext listeners only, so far.
const SCHEME: &str = "http";

/// Rewrites, sorts and hashes a header's values as one stream.
fn hash_values<'a>(values: impl Iterator<Item = &'a [u8]>, rewrite: Option<&RegexRewrite>) -> u64 {
    if let Some(rw) = rewrite {
        // Values that are not UTF-8 are hashed as sent: the regex cannot read them.
        let mut rewritten: Vec<Vec<u8>> = values
            .map(|v| match std::str::from_utf8(v) {
                Ok(s) => rw
                    .regex
                    .replace_all(s, rw.replacement.as_str())
                    .into_owned()
                    .into_bytes(),
                Err(_) => v.to_vec(),
            })
            .collect();
        rewritten.sort_unstable();
        return hash_stream(rewritten.iter().map(Vec::as_slice));
    }
    let mut inline: [&[u8]; INLINE_VALUES] = [&[]; INLINE_VALUES];
    let mut count = 0;
    let mut overflow: Vec<&[u8]> = Vec::new();
    for v in values {
        if count < INLINE_VALUES {
            inline[count] = v;
            count += 1;
        } else {
            if overflow.is_empty() {
                overflow.extend_from_slice(&inline);
            }
            overflow.push(v);
        }
    }
    if overflow.is_empty() {
        let sorted = &mut inline[..count];
        sorted.sort_unstable();
        hash_stream(sorted.iter().copied())
    } else {
        overflow.sort_unstable();
        hash_stream(overflow.iter().copied())
    }
}

fn hash_stream<'a>(parts: impl Iterator<Item = &'a [u8]>) -> u64 {
    let mut hasher = Xxh64::new(0);
    for p in parts {
        hasher.update(p);
    }
    hasher.digest()
}

fn cookie_hash(
    policy: &CookiePolicy,
    req: &RequestView<'_>,
    peer: IpAddr,
    set_cookie: &mut Option<HeaderValue>,
) -> Option<u64> {
    if let Some(value) = cookie_value(req, &policy.name).filter(|v| !v.is_empty()) {
        return Some(xxh64(value, 0));
    }
    let ttl = policy.ttl?;
    let mut hex = [0u8; 16];
    let generated = hex16(xxh64(ip_text(peer).as_bytes(), 0), &mut hex);
    if set_cookie.is_none() {
        *set_cookie = policy.set_cookie(ttl, generated);
    }
    Some(xxh64(generated.as_bytes(), 0))
}

/// The value of cookie `name` in the request's `Cookie` headers, read as Envoy reads it: the
/// first `name=value` pair (leading spaces skipped), surrounding double quotes removed.
fn cookie_value<'a>(req: &RequestView<'a>, name: &str) -> Option<&'a [u8]> {
    req.headers.get_all(COOKIE).iter().find_map(|header| {
        header.as_bytes().split(|b| *b == b';').find_map(|pair| {
            let start = pair.iter().position(|b| *b != b' ')?;
            let eq = pair.iter().position(|b| *b == b'=')?;
            if start > eq || &pair[start..eq] != name.as_bytes() {
                return None;
            }
            let value = &pair[eq + 1..];
            Some(match value {
                [b'"', inner @ .., b'"'] => inner,
                _ => value,
            })
        })
    })
}

/// The IP as text, on the stack ("10.0.0.1", "2001:db8::1").
fn ip_text(ip: IpAddr) -> IpText {
    let mut text = IpText {
        buf: [0; 45],
        len: 0,
    };
    let mut cursor = std::io::Cursor::new(&mut text.buf[..]);
    // 45 bytes hold the longest IPv6 text form, so this cannot fail.
    let _ = write!(cursor, "{ip}");
    text.len = cursor.position() as usize;
    text
}

struct IpText {
    buf: [u8; 45],
    len: usize,
}

impl IpText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// `h` as 16 lowercase hex digits, as Envoy's `uint64ToHex`.
fn hex16(h: u64, out: &mut [u8; 16]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((h >> (60 - 4 * i)) & 0xf) as usize];
    }
    // Only ASCII hex digits were written.
    std::str::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests;
