//! Rewrites of the upstream request's path and authority (`prefix_rewrite`, `regex_rewrite`,
//! `host_rewrite_literal`), as pure functions of the route and the request's path.
//!
//! The query string is kept as sent; only the path part is rewritten, as in Envoy.

use super::matcher::PathMatcher;
use http::HeaderValue;
use regex::Regex;

#[derive(Debug, Clone)]
pub enum PathRewrite {
    /// Swap the part of the path the route's prefix matched (the whole path for other
    /// matchers) for this value.
    Prefix(Box<str>),
    /// Replace every match of the regex in the path; `substitution` uses `${n}` for groups.
    Regex {
        pattern: Regex,
        substitution: Box<str>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    pub path: Option<PathRewrite>,
    /// `host_rewrite_literal`.
    pub authority: Option<HeaderValue>,
    /// `append_x_forwarded_host`: record the original authority when it is rewritten.
    pub append_x_forwarded_host: bool,
}

/// The rewritten `path?query`, or `None` when the rule leaves it unchanged.
pub fn rewrite_path(
    rule: &PathRewrite,
    matcher: &PathMatcher,
    path_and_query: &str,
) -> Option<String> {
    let (path, query) = path_and_query
        .split_once('?')
        .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    let mut out = match rule {
        PathRewrite::Prefix(new) => swap_prefix(matcher, path, new),
        PathRewrite::Regex {
            pattern,
            substitution,
        } => pattern.replace_all(path, &**substitution).into_owned(),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    (out != path_and_query).then_some(out)
}

/// Replaces what a prefix matcher matched with `new`; other matchers matched the whole path.
pub fn swap_prefix(matcher: &PathMatcher, path: &str, new: &str) -> String {
    match matcher {
        PathMatcher::Prefix { prefix, .. } | PathMatcher::SeparatedPrefix { prefix, .. } => {
            format!("{new}{}", path.get(prefix.len()..).unwrap_or(""))
        }
        _ => new.to_string(),
    }
}

/// Envoy writes substitution groups as `\1`; the regex crate wants `${1}`.
pub fn substitution_from_envoy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                let d = *d;
                chars.next();
                out.push_str(&format!("${{{d}}}"));
            }
            ('\\', Some('\\')) => {
                chars.next();
                out.push('\\');
            }
            ('$', _) => out.push_str("$$"),
            (c, _) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str) -> PathMatcher {
        PathMatcher::prefix(p, true)
    }

    #[test]
    fn prefix_rewrite_swaps_the_matched_prefix_and_keeps_the_query() {
        let rule = PathRewrite::Prefix("/v2/".into());
        assert_eq!(
            rewrite_path(&rule, &prefix("/v1/"), "/v1/ratings/1?x=1").as_deref(),
            Some("/v2/ratings/1?x=1")
        );
        let root = PathRewrite::Prefix("/".into());
        assert_eq!(
            rewrite_path(&root, &prefix("/api"), "/api/users").as_deref(),
            Some("//users")
        );
        let exact = PathMatcher::exact("/old", true);
        assert_eq!(
            rewrite_path(&PathRewrite::Prefix("/new".into()), &exact, "/old?q").as_deref(),
            Some("/new?q")
        );
    }

    #[test]
    fn regex_rewrite_substitutes_groups_in_the_path_only() {
        let rule = PathRewrite::Regex {
            pattern: Regex::new("^/service/([^/]+)(/.*)$").unwrap(),
            substitution: substitution_from_envoy("\\2/instance/\\1").into(),
        };
        assert_eq!(
            rewrite_path(&rule, &prefix("/"), "/service/foo/v1/api?a=/service/x/y").as_deref(),
            Some("/v1/api/instance/foo?a=/service/x/y")
        );
        assert_eq!(rewrite_path(&rule, &prefix("/"), "/other"), None);
    }

    #[test]
    fn envoy_substitutions_translate() {
        assert_eq!(substitution_from_envoy("\\1-\\2"), "${1}-${2}");
        assert_eq!(substitution_from_envoy("a$b\\\\c"), "a$$b\\c");
    }
}
