//! Redirect responses: the `Location` a route's redirect action builds from the request.

use crate::body::ProxyBody;
use crate::router::{swap_prefix, PathMatcher, Redirect, RedirectPath};
use http::{header, HeaderValue, Response, StatusCode};

/// The redirect for a request to `authority` + `path_and_query` on a route matched by `matcher`.
pub fn respond(
    r: &Redirect,
    matcher: &PathMatcher,
    authority: &str,
    path_and_query: &str,
) -> Response<ProxyBody> {
    let location = location(r, matcher, authority, path_and_query);
    let mut resp = Response::new(ProxyBody::Empty);
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Each part the redirect does not set is kept from the request, as Envoy does.
pub fn location(
    r: &Redirect,
    matcher: &PathMatcher,
    authority: &str,
    path_and_query: &str,
) -> String {
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let (req_host, req_port) = split_authority(authority);
    let host = r.host.as_deref().unwrap_or(req_host);
    // A new scheme without a new port drops the old port: it belonged to the old scheme.
    let port = match (r.port, req_port) {
        (Some(p), _) => Some(p.to_string()),
        (None, Some(p)) if r.scheme.is_none() => Some(p.to_string()),
        _ => None,
    };
    let (path, query) = path_and_query
        .split_once('?')
        .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    let mut new_path = match &r.path {
        None => path.to_string(),
        Some(RedirectPath::Path(p)) => p.to_string(),
        Some(RedirectPath::PrefixRewrite(rewrite)) => swap_prefix(matcher, path, rewrite),
    };
    // A path_redirect that carries its own query replaces the request's.
    let replaces_query = matches!(&r.path, Some(RedirectPath::Path(p)) if p.contains('?'));
    if let (Some(q), false, false) = (query, r.strip_query, replaces_query) {
        new_path.push('?');
        new_path.push_str(q);
    }
    match port {
        Some(p) => format!("{scheme}://{host}:{p}{new_path}"),
        None => format!("{scheme}://{host}{new_path}"),
    }
}

fn split_authority(authority: &str) -> (&str, Option<&str>) {
    match authority.rsplit_once(':') {
        Some((h, p))
            if !h.ends_with(']') && p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') =>
        {
            (h, Some(p))
        }
        Some((h, p)) if h.ends_with(']') => (h, Some(p)),
        _ => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect() -> Redirect {
        Redirect {
            scheme: None,
            host: None,
            port: None,
            path: None,
            strip_query: false,
            status: 301,
        }
    }

    fn prefix(p: &str) -> PathMatcher {
        PathMatcher::prefix(p, true)
    }

    #[test]
    fn unset_parts_come_from_the_request() {
        let r = Redirect {
            host: Some("new.example".into()),
            ..redirect()
        };
        assert_eq!(
            location(&r, &prefix("/"), "old:9080", "/a?b=1"),
            "http://new.example:9080/a?b=1"
        );
    }

    #[test]
    fn a_new_scheme_drops_the_old_port() {
        let r = Redirect {
            scheme: Some("https".into()),
            ..redirect()
        };
        assert_eq!(
            location(&r, &prefix("/"), "site:80", "/x"),
            "https://site/x"
        );
    }

    #[test]
    fn path_and_prefix_rewrites() {
        let r = Redirect {
            path: Some(RedirectPath::Path("/v2/ratings".into())),
            ..redirect()
        };
        assert_eq!(
            location(&r, &prefix("/"), "ratings:9080", "/ratings?x=1"),
            "http://ratings:9080/v2/ratings?x=1"
        );
        let r = Redirect {
            path: Some(RedirectPath::PrefixRewrite("/new".into())),
            strip_query: true,
            ..redirect()
        };
        assert_eq!(
            location(&r, &prefix("/old"), "h", "/old/page?q"),
            "http://h/new/page"
        );
    }

    #[test]
    fn the_response_carries_status_and_location() {
        let r = Redirect {
            status: 308,
            port: Some(8443),
            ..redirect()
        };
        let resp = respond(&r, &prefix("/"), "h:80", "/");
        assert_eq!(resp.status(), 308);
        assert_eq!(resp.headers()["location"], "http://h:8443/");
    }
}
