//! The request as it goes upstream: the downstream head turned into the upstream one once
//! (hop-by-hop headers out, forwarding headers in, the route's rewrites and header mutations,
//! the headers Envoy's router adds), then shaped per try for the upstream protocol.
//!
//! The authority the client asked for is kept, as Envoy keeps it, rather than replaced by the
//! upstream host's address, unless the route rewrites it.

use super::headers::{self, X_FORWARDED_PROTO};
use super::plan::{
    ClusterSettings, X_ENVOY_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS, X_ENVOY_UPSTREAM_RQ_TIMEOUT_MS,
};
use crate::body::ProxyBody;
use crate::config::UpstreamProtocol;
use crate::router::{rewrite_path, Route};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};
use std::time::Duration;

pub static X_ENVOY_ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
pub static X_ENVOY_EXPECTED_RQ_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
pub static X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// One request head, ready to be sent any number of times.
#[derive(Clone)]
pub struct UpstreamHead {
    pub method: Method,
    pub path: PathAndQuery,
    /// A header value so that the common case (HTTP/1.1 with `Host` equal to the authority)
    /// shares the request's own buffer instead of copying it.
    pub authority: HeaderValue,
    pub headers: HeaderMap,
}

/// What the router adds besides the route's own mutations.
pub struct RouterHeaders {
    /// `x-envoy-expected-rq-timeout-ms`: what the upstream has to answer in.
    pub expected_timeout: Option<Duration>,
    /// The router's `suppress_envoy_headers`.
    pub suppress_envoy_headers: bool,
}

impl UpstreamHead {
    pub fn new(
        parts: Parts,
        authority: &str,
        route: &Route,
        cluster: ClusterSettings<'_>,
        router: &RouterHeaders,
    ) -> UpstreamHead {
        let Parts {
            method,
            uri,
            mut headers,
            ..
        } = parts;
        let h = &mut headers;
        headers::strip_hop_by_hop(h);
        // The proxy already answered any `Expect: 100-continue` towards the client.
        h.remove(header::EXPECT);
        // The router consumes its own control headers (looked for in one pass: they are rare).
        if h.keys().any(|k| k.as_str().starts_with("x-envoy-")) {
            h.remove(&X_ENVOY_UPSTREAM_RQ_TIMEOUT_MS);
            h.remove(&X_ENVOY_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS);
            h.remove(&X_ENVOY_EXPECTED_RQ_TIMEOUT_MS);
        }
        if !h.contains_key(&X_FORWARDED_PROTO) {
            h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
        }
        let mut path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let policy = &route.policy;
        if let Some(rule) = &policy.rewrite.path {
            if let Some(new) = rewrite_path(rule, &route.matcher.path, path.as_str()) {
                if let Ok(new) = PathAndQuery::try_from(new) {
                    if !router.suppress_envoy_headers {
                        if let Ok(v) = HeaderValue::from_str(path.as_str()) {
                            h.insert(X_ENVOY_ORIGINAL_PATH.clone(), v);
                        }
                    }
                    path = new;
                }
            }
        }
        let mut authority = match h.get(header::HOST) {
            Some(host) if host.as_bytes() == authority.as_bytes() => host.clone(),
            _ => HeaderValue::from_str(authority).unwrap_or_else(|_| HeaderValue::from_static("")),
        };
        if let Some(new) = cluster.host_rewrite.or(policy.rewrite.authority.as_ref()) {
            if policy.rewrite.append_x_forwarded_host {
                h.append(X_FORWARDED_HOST.clone(), authority.clone());
            }
            authority = new.clone();
        }
        if let Some(headers) = cluster.headers {
            headers.request.apply(h);
        }
        policy.headers.request.apply(h);
        if let (Some(t), false) = (router.expected_timeout, router.suppress_envoy_headers) {
            h.insert(
                X_ENVOY_EXPECTED_RQ_TIMEOUT_MS.clone(),
                HeaderValue::from(t.as_millis() as u64),
            );
        }
        UpstreamHead {
            method,
            path,
            authority,
            headers,
        }
    }

    /// The request for one try, in the form the upstream protocol wants: origin-form plus
    /// `Host` for HTTP/1.1, scheme and `:authority` for HTTP/2.
    pub fn into_request(self, protocol: UpstreamProtocol, body: ProxyBody) -> Request<ProxyBody> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method;
        *req.headers_mut() = self.headers;
        match protocol {
            UpstreamProtocol::Http1 => {
                *req.uri_mut() = Uri::from(self.path);
                *req.version_mut() = Version::HTTP_11;
                let host_is_authority = req
                    .headers()
                    .get(header::HOST)
                    .is_some_and(|h| h == self.authority);
                if !host_is_authority {
                    req.headers_mut().insert(header::HOST, self.authority);
                }
            }
            UpstreamProtocol::Http2 => {
                let mut parts = http::uri::Parts::default();
                parts.scheme = Some(Scheme::HTTP);
                parts.authority = Authority::try_from(self.authority.as_bytes()).ok();
                parts.path_and_query = Some(self.path);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
                *req.version_mut() = Version::HTTP_2;
                req.headers_mut().remove(header::HOST);
            }
        }
        req
    }

    /// Marks which try this is (`x-envoy-attempt-count`, 1 for the first).
    pub fn set_attempt(&mut self, attempt: u32) {
        // The first few tries, which are all a retry policy ever makes in practice, without
        // formatting a number per request.
        const COUNTS: [HeaderValue; 8] = [
            HeaderValue::from_static("1"),
            HeaderValue::from_static("2"),
            HeaderValue::from_static("3"),
            HeaderValue::from_static("4"),
            HeaderValue::from_static("5"),
            HeaderValue::from_static("6"),
            HeaderValue::from_static("7"),
            HeaderValue::from_static("8"),
        ];
        let value = attempt
            .checked_sub(1)
            .and_then(|i| COUNTS.get(i as usize).cloned())
            .unwrap_or_else(|| HeaderValue::from(attempt));
        self.headers.insert(X_ENVOY_ATTEMPT_COUNT.clone(), value);
    }

    /// The head of a mirrored copy: Envoy marks the authority with `-shadow` (before any
    /// port) so the mirror's logs and routing can tell copies from originals.
    pub fn shadow(&self, suffix: bool) -> UpstreamHead {
        let mut copy = self.clone();
        if suffix {
            let shadow = shadow_authority(self.authority.to_str().unwrap_or_default());
            copy.authority =
                HeaderValue::from_str(&shadow).unwrap_or_else(|_| self.authority.clone());
            copy.headers.remove(header::HOST);
        }
        copy
    }
}

pub fn shadow_authority(authority: &str) -> String {
    match authority.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            format!("{host}-shadow:{port}")
        }
        _ => format!("{authority}-shadow"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_goes_before_the_port() {
        assert_eq!(shadow_authority("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_authority("reviews"), "reviews-shadow");
        assert_eq!(shadow_authority("[::1]:80"), "[::1]-shadow:80");
    }

    #[test]
    fn the_head_carries_forwarding_headers_and_drops_control_ones() {
        let req = Request::get("http://reviews:9080/a?b=1")
            .header("connection", "keep-alive")
            .header("x-envoy-upstream-rq-timeout-ms", "100")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let route = crate::router::Route {
            name: "".into(),
            matcher: crate::router::RouteMatcher::new(crate::router::PathMatcher::prefix(
                "/", true,
            )),
            action: crate::router::RouteAction::Cluster(crate::router::ClusterTarget::new("c")),
            policy: Default::default(),
        };
        let head = UpstreamHead::new(
            parts,
            "reviews:9080",
            &route,
            ClusterSettings::default(),
            &RouterHeaders {
                expected_timeout: Some(Duration::from_millis(250)),
                suppress_envoy_headers: false,
            },
        );
        // `x-forwarded-for` is the connection manager's (`headers::forwarding`), before routing.
        assert!(!head.headers.contains_key(&headers::X_FORWARDED_FOR));
        assert!(!head.headers.contains_key("connection"));
        assert!(!head.headers.contains_key("x-envoy-upstream-rq-timeout-ms"));
        assert_eq!(head.headers["x-envoy-expected-rq-timeout-ms"], "250");
        let req = head.into_request(UpstreamProtocol::Http1, ProxyBody::Empty);
        assert_eq!(req.uri(), "/a?b=1");
        assert_eq!(req.headers()["host"], "reviews:9080");
    }
}
