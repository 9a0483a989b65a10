//! Envoy's `StringMatcher`, compiled: patterns are lowered once when `ignore_case` is set, and
//! regexes are anchored so that they must match the whole value (RE2 "full match" semantics).
//!
//! Matching works on bytes because header values need not be UTF-8, and Envoy compares them as
//! raw octets.

use regex::bytes::Regex;

/// A compiled string matcher. `ignore_case` is ASCII-only, as in Envoy, and does not apply to
/// regexes.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    Exact { value: Box<[u8]>, ignore_case: bool },
    Prefix { value: Box<[u8]>, ignore_case: bool },
    Suffix { value: Box<[u8]>, ignore_case: bool },
    Contains { value: Box<[u8]>, ignore_case: bool },
    Regex(Regex),
}

impl StringMatcher {
    pub fn exact(value: &str, ignore_case: bool) -> Self {
        StringMatcher::Exact {
            value: pattern(value, ignore_case),
            ignore_case,
        }
    }

    pub fn prefix(value: &str, ignore_case: bool) -> Self {
        StringMatcher::Prefix {
            value: pattern(value, ignore_case),
            ignore_case,
        }
    }

    pub fn suffix(value: &str, ignore_case: bool) -> Self {
        StringMatcher::Suffix {
            value: pattern(value, ignore_case),
            ignore_case,
        }
    }

    pub fn contains(value: &str, ignore_case: bool) -> Self {
        StringMatcher::Contains {
            value: pattern(value, ignore_case),
            ignore_case,
        }
    }

    /// A regex that must match the entire value.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        full_match_regex(pattern).map(StringMatcher::Regex)
    }

    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            StringMatcher::Exact {
                value: p,
                ignore_case,
            } => eq(value, p, *ignore_case),
            StringMatcher::Prefix {
                value: p,
                ignore_case,
            } => starts_with(value, p, *ignore_case),
            StringMatcher::Suffix {
                value: p,
                ignore_case,
            } => ends_with(value, p, *ignore_case),
            StringMatcher::Contains {
                value: p,
                ignore_case,
            } => contains(value, p, *ignore_case),
            StringMatcher::Regex(re) => re.is_match(value),
        }
    }
}

/// Compiles `pattern` so that it only matches a whole input. The group keeps alternations such
/// as `a|b` from escaping the anchors.
pub fn full_match_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// The pattern as configured, without the anchors [`full_match_regex`] added.
pub fn regex_source(re: &Regex) -> &str {
    let s = re.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

fn pattern(value: &str, ignore_case: bool) -> Box<[u8]> {
    if ignore_case {
        value.to_ascii_lowercase().into_bytes().into_boxed_slice()
    } else {
        value.as_bytes().into()
    }
}

// In the helpers below, `pattern` is already lowercase whenever `ignore_case` is set, so a
// case-insensitive comparison only has to fold the request side.

pub(crate) fn eq(value: &[u8], pattern: &[u8], ignore_case: bool) -> bool {
    if ignore_case {
        value.eq_ignore_ascii_case(pattern)
    } else {
        value == pattern
    }
}

pub(crate) fn starts_with(value: &[u8], pattern: &[u8], ignore_case: bool) -> bool {
    value.len() >= pattern.len() && eq(&value[..pattern.len()], pattern, ignore_case)
}

pub(crate) fn ends_with(value: &[u8], pattern: &[u8], ignore_case: bool) -> bool {
    value.len() >= pattern.len() && eq(&value[value.len() - pattern.len()..], pattern, ignore_case)
}

fn contains(value: &[u8], pattern: &[u8], ignore_case: bool) -> bool {
    if pattern.is_empty() {
        return true;
    }
    value
        .windows(pattern.len())
        .any(|window| eq(window, pattern, ignore_case))
}
