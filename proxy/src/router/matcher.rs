//! One route's match conditions: the path rule, then gRPC, headers and query parameters, all of
//! which must pass.
//!
//! Which part of `:path` each rule sees follows Envoy: `prefix` looks at the whole `:path`
//! (query included), while `path`, `path_separated_prefix` and `safe_regex` look at the path with
//! the query string (and any fragment) removed.

use regex::bytes::Regex;

use super::header::HeaderMatcher;
use super::query::QueryMatcher;
use super::string_match::{eq, full_match_regex, starts_with};
use super::RequestView;

#[derive(Debug, Clone)]
pub enum PathMatcher {
    Prefix {
        prefix: Box<str>,
        ignore_case: bool,
    },
    Exact {
        path: Box<str>,
        ignore_case: bool,
    },
    /// Matches the prefix itself or the prefix followed by `/`; never `/api/developer` for
    /// `/api/dev`.
    SeparatedPrefix {
        prefix: Box<str>,
        ignore_case: bool,
    },
    Regex(Regex),
}

impl PathMatcher {
    /// Patterns are lowered here when matching ignores case, so the request side is the only
    /// side folded per request.
    pub fn prefix(prefix: &str, case_sensitive: bool) -> Self {
        PathMatcher::Prefix {
            prefix: fold(prefix, case_sensitive),
            ignore_case: !case_sensitive,
        }
    }

    pub fn exact(path: &str, case_sensitive: bool) -> Self {
        PathMatcher::Exact {
            path: fold(path, case_sensitive),
            ignore_case: !case_sensitive,
        }
    }

    pub fn separated_prefix(prefix: &str, case_sensitive: bool) -> Self {
        PathMatcher::SeparatedPrefix {
            prefix: fold(prefix, case_sensitive),
            ignore_case: !case_sensitive,
        }
    }

    /// Must match the whole path (without query); `case_sensitive` does not apply, as in Envoy.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        full_match_regex(pattern).map(PathMatcher::Regex)
    }

    fn matches(&self, target: &PathTarget<'_>) -> bool {
        match self {
            PathMatcher::Prefix {
                prefix,
                ignore_case,
            } => starts_with(target.full.as_bytes(), prefix.as_bytes(), *ignore_case),
            PathMatcher::Exact { path, ignore_case } => {
                eq(target.path.as_bytes(), path.as_bytes(), *ignore_case)
            }
            PathMatcher::SeparatedPrefix {
                prefix,
                ignore_case,
            } => {
                let path = target.path.as_bytes();
                starts_with(path, prefix.as_bytes(), *ignore_case)
                    && matches!(path.get(prefix.len()), None | Some(b'/'))
            }
            PathMatcher::Regex(re) => re.is_match(target.path.as_bytes()),
        }
    }
}

fn fold(pattern: &str, case_sensitive: bool) -> Box<str> {
    if case_sensitive {
        pattern.into()
    } else {
        pattern.to_ascii_lowercase().into_boxed_str()
    }
}

/// All conditions of one `RouteMatch`, ANDed.
#[derive(Debug, Clone)]
pub struct RouteMatcher {
    pub path: PathMatcher,
    pub headers: Vec<HeaderMatcher>,
    pub query_parameters: Vec<QueryMatcher>,
    /// Only gRPC requests (by `content-type`) match.
    pub grpc: bool,
}

impl RouteMatcher {
    pub fn new(path: PathMatcher) -> Self {
        RouteMatcher {
            path,
            headers: Vec::new(),
            query_parameters: Vec::new(),
            grpc: false,
        }
    }

    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.matches_target(req, &PathTarget::new(req.path_and_query))
    }

    /// The cheap checks run first; the result does not depend on the order.
    pub(crate) fn matches_target(&self, req: &RequestView<'_>, target: &PathTarget<'_>) -> bool {
        self.path.matches(target)
            && (!self.grpc || is_grpc(req))
            && self.headers.iter().all(|h| h.matches(req))
            && self
                .query_parameters
                .iter()
                .all(|q| q.matches(target.query))
    }
}

/// `:path` split once per request rather than once per route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathTarget<'a> {
    full: &'a str,
    path: &'a str,
    query: &'a str,
}

impl<'a> PathTarget<'a> {
    pub(crate) fn new(full: &'a str) -> Self {
        let (path, rest) = match full.find(['?', '#']) {
            Some(i) => (&full[..i], &full[i..]),
            None => (full, ""),
        };
        let query = rest
            .strip_prefix('?')
            .map(|q| q.split_once('#').map_or(q, |(q, _fragment)| q))
            .unwrap_or("");
        PathTarget { full, path, query }
    }
}

/// `application/grpc`, or that followed by `+` (`application/grpc+proto`) or `;` parameters;
/// `application/grpc-web` is a different protocol and does not count.
fn is_grpc(req: &RequestView<'_>) -> bool {
    let Some(value) = req.headers.get(http::header::CONTENT_TYPE) else {
        return false;
    };
    const GRPC: &[u8] = b"application/grpc";
    let value = value.as_bytes();
    value.starts_with(GRPC) && matches!(value.get(GRPC.len()), None | Some(b'+') | Some(b';'))
}
