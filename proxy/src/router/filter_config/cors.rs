//! Envoy's CORS policy (`envoy.extensions.filters.http.cors.v3.CorsPolicy`), compiled, and the
//! pure part of the filter: is this a CORS request, is its origin allowed, what to answer a
//! preflight with, and which headers an actual request's response gets.

use crate::router::{Fraction, StringMatcher};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

pub static ORIGIN: HeaderName = http::header::ORIGIN;
static REQUEST_METHOD: HeaderName = http::header::ACCESS_CONTROL_REQUEST_METHOD;
static REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
static ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");

#[derive(Debug, Clone)]
pub struct CorsPolicy {
    pub allow_origins: Vec<StringMatcher>,
    pub allow_methods: Option<HeaderValue>,
    pub allow_headers: Option<HeaderValue>,
    pub expose_headers: Option<HeaderValue>,
    pub max_age: Option<HeaderValue>,
    pub allow_credentials: bool,
    pub allow_private_network_access: bool,
    /// `filter_enabled`: the share of requests the policy is enforced on (default all).
    pub enabled: Fraction,
    /// Preflights from origins that are not allowed go on to the upstream (Envoy's default);
    /// otherwise the proxy answers them itself, without CORS headers.
    pub forward_not_matching_preflights: bool,
}

/// What the filter does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsAction {
    /// Not a CORS request, or the policy is not enforced: pass it on untouched.
    Pass,
    /// A preflight from an allowed origin: answer 200 with these headers.
    Preflight(HeaderMap),
    /// A preflight from an origin that is not allowed, answered without CORS headers.
    RejectPreflight,
    /// An actual request from an allowed origin: pass it on, and add these headers to the
    /// response.
    Actual(HeaderMap),
}

impl CorsPolicy {
    pub fn allows(&self, origin: &[u8]) -> bool {
        self.allow_origins.iter().any(|m| m.matches(origin))
    }

    pub fn action(&self, method: &Method, headers: &HeaderMap) -> CorsAction {
        let Some(origin) = headers.get(&ORIGIN) else {
            return CorsAction::Pass;
        };
        let preflight = method == Method::OPTIONS && headers.contains_key(&REQUEST_METHOD);
        if !self.allows(origin.as_bytes()) {
            return if preflight && !self.forward_not_matching_preflights {
                CorsAction::RejectPreflight
            } else {
                CorsAction::Pass
            };
        }
        let mut out = HeaderMap::new();
        out.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.allow_credentials {
            out.insert(
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if !preflight {
            if let Some(v) = &self.expose_headers {
                out.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
            }
            return CorsAction::Actual(out);
        }
        for (name, value) in [
            (
                http::header::ACCESS_CONTROL_ALLOW_METHODS,
                &self.allow_methods,
            ),
            (
                http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                &self.allow_headers,
            ),
            (http::header::ACCESS_CONTROL_MAX_AGE, &self.max_age),
        ] {
            if let Some(v) = value {
                out.insert(name, v.clone());
            }
        }
        let asks_private_network = headers
            .get(&REQUEST_PRIVATE_NETWORK)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        if self.allow_private_network_access && asks_private_network {
            out.insert(
                ALLOW_PRIVATE_NETWORK.clone(),
                HeaderValue::from_static("true"),
            );
        }
        CorsAction::Preflight(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy {
            allow_origins: vec![
                StringMatcher::exact("https://shop.example", false),
                StringMatcher::regex(r"https://.*\.dev\.example").unwrap(),
            ],
            allow_methods: Some(HeaderValue::from_static("GET,POST")),
            allow_headers: Some(HeaderValue::from_static("x-custom")),
            expose_headers: Some(HeaderValue::from_static("x-trace")),
            max_age: Some(HeaderValue::from_static("86400")),
            allow_credentials: true,
            allow_private_network_access: false,
            enabled: Fraction::ALWAYS,
            forward_not_matching_preflights: true,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn an_allowed_preflight_is_answered_with_the_policy() {
        let h = headers(&[
            ("origin", "https://a.dev.example"),
            ("access-control-request-method", "POST"),
        ]);
        let CorsAction::Preflight(out) = policy().action(&Method::OPTIONS, &h) else {
            panic!("not a preflight answer")
        };
        assert_eq!(out["access-control-allow-origin"], "https://a.dev.example");
        assert_eq!(out["access-control-allow-methods"], "GET,POST");
        assert_eq!(out["access-control-allow-headers"], "x-custom");
        assert_eq!(out["access-control-max-age"], "86400");
        assert_eq!(out["access-control-allow-credentials"], "true");
        assert!(!out.contains_key("access-control-expose-headers"));
    }

    #[test]
    fn actual_requests_get_origin_and_exposed_headers() {
        let h = headers(&[("origin", "https://shop.example")]);
        let CorsAction::Actual(out) = policy().action(&Method::GET, &h) else {
            panic!("not an actual request")
        };
        assert_eq!(out["access-control-allow-origin"], "https://shop.example");
        assert_eq!(out["access-control-expose-headers"], "x-trace");
    }

    #[test]
    fn other_origins_and_plain_requests_pass() {
        let p = policy();
        assert_eq!(p.action(&Method::GET, &HeaderMap::new()), CorsAction::Pass);
        let evil = headers(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ]);
        assert_eq!(p.action(&Method::OPTIONS, &evil), CorsAction::Pass);
        let strict = CorsPolicy {
            forward_not_matching_preflights: false,
            ..policy()
        };
        assert_eq!(
            strict.action(&Method::OPTIONS, &evil),
            CorsAction::RejectPreflight
        );
    }
}
