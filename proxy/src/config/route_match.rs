//! `RouteMatch` to a [`RouteMatcher`]. Regexes are compiled here, once per configuration; a
//! match condition the router cannot evaluate is an error, never silently dropped (dropping it
//! would widen the route).

use xds_protos::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    route_match::PathSpecifier, HeaderMatcher as ProtoHeaderMatcher,
    QueryParameterMatcher as ProtoQueryMatcher, RouteMatch,
};
use xds_protos::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher as ProtoStringMatcher,
};

use super::error::{AtField, FieldError};
use crate::router::{
    HeaderMatch, HeaderMatcher, HeaderSource, PathMatcher, QueryMatch, QueryMatcher, RouteMatcher,
    StringMatcher,
};

pub(crate) fn route_match(m: &RouteMatch) -> Result<RouteMatcher, FieldError> {
    let unsupported = [
        ("runtime_fraction", m.runtime_fraction.is_some()),
        ("cookies", !m.cookies.is_empty()),
        ("tls_context", m.tls_context.is_some()),
        ("dynamic_metadata", !m.dynamic_metadata.is_empty()),
        ("filter_state", !m.filter_state.is_empty()),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(FieldError::unsupported(field));
    }
    let case_sensitive = m.case_sensitive.is_none_or(|b| b.value);
    let path = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => PathMatcher::prefix(p, case_sensitive),
        Some(PathSpecifier::Path(p)) => PathMatcher::exact(p, case_sensitive),
        Some(PathSpecifier::SafeRegex(r)) => {
            let pattern = regex_pattern(r).at("safe_regex")?;
            PathMatcher::regex(pattern).map_err(|e| invalid_regex("safe_regex.regex", e))?
        }
        Some(PathSpecifier::PathSeparatedPrefix(p)) => {
            separated_prefix(p).at("path_separated_prefix")?;
            PathMatcher::separated_prefix(p, case_sensitive)
        }
        Some(PathSpecifier::ConnectMatcher(_)) => {
            return Err(FieldError::unsupported("connect_matcher"))
        }
        Some(PathSpecifier::PathMatchPolicy(_)) => {
            return Err(FieldError::unsupported("path_match_policy"))
        }
        None => {
            return Err(FieldError::new(
                "path_specifier",
                "one of prefix, path, safe_regex or path_separated_prefix is required",
            ))
        }
    };
    let headers = m
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_matcher(h).at_index("headers", i))
        .collect::<Result<_, _>>()?;
    let query_parameters = m
        .query_parameters
        .iter()
        .enumerate()
        .map(|(i, q)| query_matcher(q).at_index("query_parameters", i))
        .collect::<Result<_, _>>()?;
    Ok(RouteMatcher {
        path,
        headers,
        query_parameters,
        grpc: m.grpc.is_some(),
    })
}

/// Envoy requires no `?` or `#`, and no trailing `/` (the matcher adds the separator itself).
fn separated_prefix(p: &str) -> Result<(), FieldError> {
    if p.is_empty() {
        return Err(FieldError::new("", "must not be empty"));
    }
    if p.contains(['?', '#']) {
        return Err(FieldError::new("", "must not contain '?' or '#'"));
    }
    if p.ends_with('/') {
        return Err(FieldError::new("", "must not end with '/'"));
    }
    Ok(())
}

#[allow(deprecated)] // The pre-`string_match` specifiers are deprecated but still sent.
fn header_matcher(h: &ProtoHeaderMatcher) -> Result<HeaderMatcher, FieldError> {
    if h.name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    let source = HeaderSource::from_name(&h.name)
        .map_err(|_| FieldError::new("name", format!("{:?} is not a valid header name", h.name)))?;
    let rule = match &h.header_match_specifier {
        // Envoy's default when no specifier is set.
        None => HeaderMatch::Present(true),
        Some(HeaderMatchSpecifier::PresentMatch(b)) => HeaderMatch::Present(*b),
        Some(HeaderMatchSpecifier::ExactMatch(s)) => {
            HeaderMatch::Value(StringMatcher::exact(s, false))
        }
        Some(HeaderMatchSpecifier::PrefixMatch(s)) => {
            non_empty(s, "prefix_match")?;
            HeaderMatch::Value(StringMatcher::prefix(s, false))
        }
        Some(HeaderMatchSpecifier::SuffixMatch(s)) => {
            non_empty(s, "suffix_match")?;
            HeaderMatch::Value(StringMatcher::suffix(s, false))
        }
        Some(HeaderMatchSpecifier::ContainsMatch(s)) => {
            non_empty(s, "contains_match")?;
            HeaderMatch::Value(StringMatcher::contains(s, false))
        }
        Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => {
            let pattern = regex_pattern(r).at("safe_regex_match")?;
            HeaderMatch::Value(
                StringMatcher::regex(pattern)
                    .map_err(|e| invalid_regex("safe_regex_match.regex", e))?,
            )
        }
        Some(HeaderMatchSpecifier::RangeMatch(r)) => HeaderMatch::Range {
            start: r.start,
            end: r.end,
        },
        Some(HeaderMatchSpecifier::StringMatch(sm)) => {
            HeaderMatch::Value(string_matcher(sm).at("string_match")?)
        }
    };
    Ok(HeaderMatcher {
        source,
        rule,
        invert: h.invert_match,
        treat_missing_as_empty: h.treat_missing_header_as_empty,
    })
}

fn query_matcher(q: &ProtoQueryMatcher) -> Result<QueryMatcher, FieldError> {
    if q.name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    let rule = match &q.query_parameter_match_specifier {
        // A bare name asks for presence, as in Envoy.
        None => QueryMatch::Present(true),
        Some(QueryParameterMatchSpecifier::PresentMatch(b)) => QueryMatch::Present(*b),
        Some(QueryParameterMatchSpecifier::StringMatch(sm)) => {
            QueryMatch::Value(string_matcher(sm).at("string_match")?)
        }
    };
    Ok(QueryMatcher {
        name: q.name.as_str().into(),
        rule,
    })
}

pub(crate) fn string_matcher(sm: &ProtoStringMatcher) -> Result<StringMatcher, FieldError> {
    let ic = sm.ignore_case;
    Ok(match &sm.match_pattern {
        Some(MatchPattern::Exact(s)) => StringMatcher::exact(s, ic),
        Some(MatchPattern::Prefix(s)) => {
            non_empty(s, "prefix")?;
            StringMatcher::prefix(s, ic)
        }
        Some(MatchPattern::Suffix(s)) => {
            non_empty(s, "suffix")?;
            StringMatcher::suffix(s, ic)
        }
        Some(MatchPattern::Contains(s)) => {
            non_empty(s, "contains")?;
            StringMatcher::contains(s, ic)
        }
        Some(MatchPattern::SafeRegex(r)) => {
            let pattern = regex_pattern(r).at("safe_regex")?;
            StringMatcher::regex(pattern).map_err(|e| invalid_regex("safe_regex.regex", e))?
        }
        Some(MatchPattern::Custom(_)) => return Err(FieldError::unsupported("custom")),
        None => return Err(FieldError::new("match_pattern", "required")),
    })
}

pub(crate) fn regex_pattern(r: &RegexMatcher) -> Result<&str, FieldError> {
    non_empty(&r.regex, "regex")?;
    Ok(&r.regex)
}

pub(crate) fn invalid_regex(field: &str, e: regex::Error) -> FieldError {
    FieldError::new(field, format!("invalid regex: {e}"))
}

fn non_empty(s: &str, field: &str) -> Result<(), FieldError> {
    if s.is_empty() {
        Err(FieldError::new(field, "must not be empty"))
    } else {
        Ok(())
    }
}
