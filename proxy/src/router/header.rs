//! Header matching with Envoy's rules for absent headers, inversion and multi-valued headers.
//!
//! Truth table for a header that is absent (and `treat_missing_as_empty` is off):
//! - `Present(true)` fails, `Present(false)` passes; `invert` flips both.
//! - every value rule fails, inverted or not: an absent header is "ignored", never a match.
//!
//! With `treat_missing_as_empty`, an absent header is evaluated as the empty value instead (a
//! presence rule still looks at real presence).

use std::borrow::Cow;

use http::header::{HeaderName, InvalidHeaderName};

use super::string_match::StringMatcher;
use super::RequestView;

/// Where a header matcher reads its value from. HTTP/2 pseudo-headers are not in the
/// `HeaderMap`, so they are resolved from the request view.
#[derive(Debug, Clone)]
pub enum HeaderSource {
    Method,
    Authority,
    Path,
    Scheme,
    Header(HeaderName),
}

impl HeaderSource {
    /// `host` is read from the authority: Envoy keeps HTTP/1 `Host` as `:authority`, and HTTP/2
    /// requests carry no `host` header at all, so only this keeps both protocols consistent.
    pub fn from_name(name: &str) -> Result<Self, InvalidHeaderName> {
        Ok(match name.to_ascii_lowercase().as_str() {
            ":method" => HeaderSource::Method,
            ":authority" | "host" => HeaderSource::Authority,
            ":path" => HeaderSource::Path,
            ":scheme" => HeaderSource::Scheme,
            other => HeaderSource::Header(HeaderName::from_bytes(other.as_bytes())?),
        })
    }

    /// The value Envoy would match against: several values of one header are joined with `,`
    /// (the only case that allocates).
    pub fn value<'a>(&self, req: &RequestView<'a>) -> Option<Cow<'a, [u8]>> {
        let name = match self {
            HeaderSource::Method => return Some(Cow::Borrowed(req.method.as_str().as_bytes())),
            // A request without Host/`:authority` has none, rather than an empty one.
            HeaderSource::Authority => {
                return (!req.authority.is_empty())
                    .then_some(Cow::Borrowed(req.authority.as_bytes()))
            }
            HeaderSource::Path => return Some(Cow::Borrowed(req.path_and_query.as_bytes())),
            HeaderSource::Scheme => return Some(Cow::Borrowed(SCHEME.as_bytes())),
            HeaderSource::Header(name) => name,
        };
        let mut values = req.headers.get_all(name).iter();
        let first = values.next()?;
        let Some(second) = values.next() else {
            return Some(Cow::Borrowed(first.as_bytes()));
        };
        let mut joined = Vec::with_capacity(first.len() + second.len() + 1);
        joined.extend_from_slice(first.as_bytes());
        for value in std::iter::once(second).chain(values) {
            joined.push(b',');
            joined.extend_from_slice(value.as_bytes());
        }
        Some(Cow::Owned(joined))
    }
}

/// What `:scheme` resolves to. Listeners only terminate plaintext HTTP so far, for which Envoy
/// reports `http`; when TLS termination arrives, the scheme has to join [`RequestView`].
const SCHEME: &str = "http";

#[derive(Debug, Clone)]
pub enum HeaderMatch {
    /// `true`: the header must be present; `false`: it must be absent.
    Present(bool),
    Value(StringMatcher),
    /// The whole value must be a base-10 integer in `[start, end)`.
    Range {
        start: i64,
        end: i64,
    },
}

#[derive(Debug, Clone)]
pub struct HeaderMatcher {
    pub source: HeaderSource,
    pub rule: HeaderMatch,
    pub invert: bool,
    pub treat_missing_as_empty: bool,
}

impl HeaderMatcher {
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        let value = self.source.value(req);
        let matched = match (&self.rule, value.as_deref()) {
            (HeaderMatch::Present(want), v) => v.is_some() == *want,
            (_, None) if !self.treat_missing_as_empty => return false,
            (rule, v) => rule.matches_value(v.unwrap_or_default()),
        };
        matched != self.invert
    }
}

impl HeaderMatch {
    fn matches_value(&self, value: &[u8]) -> bool {
        match self {
            HeaderMatch::Present(want) => *want,
            HeaderMatch::Value(m) => m.matches(value),
            HeaderMatch::Range { start, end } => std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .is_some_and(|n| *start <= n && n < *end),
        }
    }
}
