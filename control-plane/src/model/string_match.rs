//! Istio's StringMatch: `{exact: x}`, `{prefix: x}` or `{regex: x}`.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a string (URI, header, query parameter, ...) is matched.
///
/// Istio lets a header match be written `{}` to mean "the header is present, with any
/// value". That reads as `Regex(".*")`, which matches exactly that wherever a value is
/// matched only when present (and its negation, in `withoutHeaders`, means "absent").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    /// RE2 syntax in Istio; checked with the `regex` crate, whose syntax is close.
    Regex(String),
}

impl StringMatch {
    /// The regex that `{}` stands for.
    pub const ANY: &'static str = ".*";

    pub fn value(&self) -> &str {
        match self {
            StringMatch::Exact(v) | StringMatch::Prefix(v) | StringMatch::Regex(v) => v,
        }
    }

    /// The YAML key: `exact`, `prefix` or `regex`.
    pub fn kind(&self) -> &'static str {
        match self {
            StringMatch::Exact(_) => "exact",
            StringMatch::Prefix(_) => "prefix",
            StringMatch::Regex(_) => "regex",
        }
    }
}

impl Serialize for StringMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.kind(), self.value())?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for StringMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(StringMatchVisitor)
    }
}

struct StringMatchVisitor;

impl<'de> Visitor<'de> for StringMatchVisitor {
    type Value = StringMatch;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with exactly one of `exact`, `prefix` or `regex`")
    }

    // Errors are raised here, inside the map, so that serde_yaml_ng attaches the field path
    // and the line of this StringMatch to them.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringMatch, A::Error> {
        let mut found: Option<StringMatch> = None;
        while let Some(key) = map.next_key::<String>()? {
            let value: String = map.next_value()?;
            let item = match key.as_str() {
                "exact" => StringMatch::Exact(value),
                "prefix" => StringMatch::Prefix(value),
                "regex" => StringMatch::Regex(value),
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["exact", "prefix", "regex"],
                    ))
                }
            };
            if let Some(previous) = &found {
                return Err(de::Error::custom(format!(
                    "a string match takes exactly one of `exact`, `prefix` or `regex`, found both `{}` and `{}`",
                    previous.kind(),
                    item.kind()
                )));
            }
            found = Some(item);
        }
        Ok(found.unwrap_or_else(|| StringMatch::Regex(StringMatch::ANY.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_form() {
        let m: StringMatch = serde_yaml_ng::from_str("exact: /a").expect("exact");
        assert_eq!(m, StringMatch::Exact("/a".into()));
        let m: StringMatch = serde_yaml_ng::from_str("{prefix: /b}").expect("prefix");
        assert_eq!(m, StringMatch::Prefix("/b".into()));
        let m: StringMatch = serde_yaml_ng::from_str("regex: '^/c.*'").expect("regex");
        assert_eq!(m, StringMatch::Regex("^/c.*".into()));
        let m: StringMatch = serde_yaml_ng::from_str("{}").expect("presence");
        assert_eq!(m, StringMatch::Regex(".*".into()));
    }

    #[test]
    fn rejects_two_keys_and_unknown_keys() {
        let err = serde_yaml_ng::from_str::<StringMatch>("{exact: a, prefix: b}").expect_err("two");
        assert!(err.to_string().contains("exactly one"), "{err}");
        let err = serde_yaml_ng::from_str::<StringMatch>("{suffix: a}").expect_err("unknown");
        assert!(err.to_string().contains("unknown field `suffix`"), "{err}");
    }

    #[test]
    fn writes_back_as_a_one_key_map() {
        let json = serde_json::to_string(&StringMatch::Prefix("/x".into())).expect("json");
        assert_eq!(json, r#"{"prefix":"/x"}"#);
    }
}
