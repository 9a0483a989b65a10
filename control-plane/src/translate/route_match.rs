//! Route matches: an Istio HTTPMatchRequest as an Envoy RouteMatch, and Istio's StringMatch
//! as Envoy's string matchers.

use crate::model::{HttpMatchRequest, StringMatch};
use xds_protos::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    route_match::PathSpecifier, HeaderMatcher, QueryParameterMatcher, RouteMatch,
};
use xds_protos::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use xds_protos::pb::google::protobuf::BoolValue;

pub fn route_match(m: &HttpMatchRequest) -> RouteMatch {
    let path_specifier = Some(match &m.uri {
        None => PathSpecifier::Prefix("/".to_string()),
        Some(StringMatch::Exact(p)) => PathSpecifier::Path(p.clone()),
        Some(StringMatch::Prefix(p)) => PathSpecifier::Prefix(p.clone()),
        Some(StringMatch::Regex(r)) => PathSpecifier::SafeRegex(regex(r)),
    });
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|(name, sm)| header_matcher(&name.to_ascii_lowercase(), sm))
        .collect();
    if let Some(sm) = &m.method {
        headers.push(header_matcher(":method", sm));
    }
    if let Some(sm) = &m.authority {
        headers.push(header_matcher(":authority", sm));
    }
    if let Some(sm) = &m.scheme {
        headers.push(header_matcher(":scheme", sm));
    }
    // withoutHeaders: the header is absent, or does not match.
    headers.extend(m.without_headers.iter().map(|(name, sm)| HeaderMatcher {
        invert_match: true,
        treat_missing_header_as_empty: true,
        ..header_matcher(&name.to_ascii_lowercase(), sm)
    }));
    let query_parameters = m
        .query_params
        .iter()
        .map(|(name, sm)| QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::StringMatch(
                string_matcher(sm),
            )),
        })
        .collect();
    RouteMatch {
        path_specifier,
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters,
        ..Default::default()
    }
}

fn header_matcher(name: &str, sm: &StringMatch) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(string_matcher(sm))),
        ..Default::default()
    }
}

pub fn string_matcher(sm: &StringMatch) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(match sm {
            StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
            StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
            StringMatch::Regex(r) => MatchPattern::SafeRegex(regex(r)),
        }),
        ..Default::default()
    }
}

pub fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.to_string(),
        ..Default::default()
    }
}
