//! Query parameter matching. The query string is scanned in place (no map is built per request);
//! names and values are compared as sent, without percent-decoding, like Envoy.

use super::string_match::StringMatcher;

#[derive(Debug, Clone)]
pub enum QueryMatch {
    /// `true`: the parameter must be present; `false`: it must be absent.
    Present(bool),
    Value(StringMatcher),
}

#[derive(Debug, Clone)]
pub struct QueryMatcher {
    pub name: Box<str>,
    pub rule: QueryMatch,
}

impl QueryMatcher {
    /// `query` is the part after `?` (and before any `#`).
    pub fn matches(&self, query: &str) -> bool {
        let value = first_value(query, &self.name);
        match &self.rule {
            QueryMatch::Present(want) => value.is_some() == *want,
            QueryMatch::Value(m) => value.is_some_and(|v| m.matches(v.as_bytes())),
        }
    }
}

/// The value of the first `name` or `name=value` element; a bare `name` has the empty value.
/// Later repetitions are ignored, as Envoy matches the first occurrence.
pub fn first_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((key, value)) if key == name => Some(value),
            None if pair == name => Some(""),
            _ => None,
        })
}
