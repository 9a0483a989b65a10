//! Finding where in a file a field is written, and reading serde_yaml_ng's errors.
//!
//! serde_yaml_ng does not expose positions to deserializers, but it attaches the position of
//! the value being read to any error raised while reading it. So to find a field, the
//! document is read again with a visitor that walks down the path and fails on arrival:
//! the error carries the line and column. Only diagnostics pay for this.

use super::path::{FieldPath, Segment};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::sync::OnceLock;

/// The 1-based line and column of the value at `path` in document number `doc` of `text`,
/// or of the closest enclosing value that exists.
pub fn locate(text: &str, doc: usize, path: &FieldPath) -> Option<(usize, usize)> {
    let document = serde_yaml_ng::Deserializer::from_str(text).nth(doc)?;
    let err = Probe(path.segments()).deserialize(document).err()?;
    err.location().map(|l| (l.line(), l.column()))
}

/// Locates fields in a text of many documents reading only the document concerned, so
/// that a file of N resources with a warning each costs N document reads, not N*N/2.
#[derive(Debug, Clone, Default)]
pub struct Locator {
    /// Per document: the byte offset of the line its root value starts on, and that line's
    /// number (0-based).
    starts: OnceLock<Vec<Option<(usize, usize)>>>,
}

/// A cache: two locators are equal whatever they hold.
impl PartialEq for Locator {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Locator {
    pub fn locate(&self, text: &str, doc: usize, path: &FieldPath) -> Option<(usize, usize)> {
        let starts = self.starts.get_or_init(|| doc_starts(text));
        let Some((offset, line_offset)) = starts.get(doc).copied().flatten() else {
            return locate(text, doc, path);
        };
        // Starting at a line start keeps columns, and the document's indentation, intact.
        let document = serde_yaml_ng::Deserializer::from_str(text.get(offset..)?).next()?;
        let err = Probe(path.segments()).deserialize(document).err()?;
        err.location().map(|l| (l.line() + line_offset, l.column()))
    }
}

fn doc_starts(text: &str) -> Vec<Option<(usize, usize)>> {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut starts = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        match Probe(&[]).deserialize(document) {
            Err(err) if err.to_string().contains(ARRIVED) => {
                starts.push(err.location().and_then(|l| {
                    let line = l.line().checked_sub(1)?;
                    line_starts.get(line).map(|offset| (*offset, line))
                }))
            }
            // A syntax error: nothing after it can be read.
            _ => break,
        }
    }
    starts
}

struct Probe<'a>(&'a [Segment]);

const ARRIVED: &str = "weft: located";

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if let Some((Segment::Key(wanted), rest)) = self.0.split_first() {
            while let Some(key) = map.next_key::<KeyText>()? {
                if key.0.as_deref() == Some(wanted.as_str()) {
                    return map.next_value_seed(Probe(rest));
                }
                map.next_value::<IgnoredAny>()?;
            }
        }
        Err(de::Error::custom(ARRIVED))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some((Segment::Index(wanted), rest)) = self.0.split_first() {
            for _ in 0..*wanted {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    return Err(de::Error::custom(ARRIVED));
                }
            }
            if seq.next_element_seed(Probe(rest))?.is_some() {
                return Ok(());
            }
        }
        Err(de::Error::custom(ARRIVED))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(ARRIVED))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(ARRIVED))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(ARRIVED))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(ARRIVED))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(ARRIVED))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(ARRIVED))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(ARRIVED))
    }
}

/// A map key as text, whatever its YAML type (`80: x` has an integer key).
struct KeyText(Option<String>);

impl<'de> de::Deserialize<'de> for KeyText {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyText, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KeyText(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyText, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KeyText(None))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

/// A serde_yaml_ng error taken apart for a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlErrorParts {
    /// The field the error is about, when the message names one.
    pub field: Option<FieldPath>,
    /// The message without the path and position that serde_yaml_ng weaves into it.
    pub message: String,
    pub position: Option<(usize, usize)>,
}

/// Splits an error's text (`spec.http[0]: unknown field `x`, expected ... at line 3 column
/// 5`) into the field path, the message and the position. For unknown and missing fields
/// the field's own name is appended to the path, so the diagnostic points at it.
pub fn split_yaml_error(err: &serde_yaml_ng::Error) -> YamlErrorParts {
    let position = err.location().map(|l| (l.line(), l.column()));
    let mut text = err.to_string();
    if let Some((line, column)) = position {
        text = text.replacen(&format!(" at line {line} column {column}"), "", 1);
    }
    let (mut field, message) = match text.split_once(": ") {
        Some((path, rest)) if looks_like_path(path) => {
            (Some(FieldPath::parse(path)), rest.to_string())
        }
        _ => (None, text.clone()),
    };
    for prefix in ["unknown field `", "missing field `"] {
        if let Some(name) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name)
        {
            field = Some(field.unwrap_or_default().key(name));
        }
    }
    YamlErrorParts {
        field,
        message,
        position,
    }
}

fn looks_like_path(text: &str) -> bool {
    !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '`' | '"' | '\'' | ','))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
---
# comment only
---
kind: X
spec:
  http:
  - weight: 5
  - weight: 7
    labels:
      app.kubernetes.io/name: x
";

    #[test]
    fn finds_fields_by_path() {
        let path = FieldPath::spec().key("http").index(1).key("weight");
        assert_eq!(locate(TEXT, 1, &path), Some((8, 13)));
        let label = FieldPath::spec()
            .key("http")
            .index(1)
            .key("labels")
            .key("app.kubernetes.io/name");
        assert_eq!(locate(TEXT, 1, &label), Some((10, 31)));
        assert_eq!(
            locate(TEXT, 1, &FieldPath::root().key("kind")),
            Some((4, 7))
        );
    }

    #[test]
    fn the_locator_reads_only_the_document_concerned() {
        let locator = Locator::default();
        let text = format!("{TEXT}---\n  # indented\n  kind: Y\n  spec: {{a: [1, 2]}}\n");
        for (doc, path) in [
            (1, FieldPath::spec().key("http").index(1).key("weight")),
            (1, FieldPath::root().key("kind")),
            (2, FieldPath::root().key("kind")),
            (2, FieldPath::spec().key("a").index(1)),
        ] {
            assert_eq!(
                locator.locate(&text, doc, &path),
                locate(&text, doc, &path),
                "{path}"
            );
        }
        assert_eq!(
            locator.locate(&text, 2, &FieldPath::spec().key("a").index(1)),
            Some((14, 17))
        );
    }

    #[test]
    fn falls_back_to_the_closest_existing_value() {
        let missing = FieldPath::spec().key("http").index(9);
        assert_eq!(locate(TEXT, 1, &missing), Some((7, 3)));
        let missing = FieldPath::spec().key("nothing");
        assert_eq!(locate(TEXT, 1, &missing), Some((6, 3)));
    }

    #[test]
    fn splits_unknown_field_errors() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            a: Vec<T>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            b: u32,
        }
        let err = serde_yaml_ng::from_str::<S>("a:\n- b: 1\n  c: 2\n").expect_err("unknown");
        let parts = split_yaml_error(&err);
        assert_eq!(
            parts.field.map(|f| f.to_string()),
            Some("a[0].c".to_string())
        );
        assert!(
            parts.message.starts_with("unknown field `c`"),
            "{}",
            parts.message
        );
        assert_eq!(parts.position, Some((3, 3)));

        let err = serde_yaml_ng::from_str::<S>("a:\n- b: x\n").expect_err("type");
        let parts = split_yaml_error(&err);
        assert_eq!(
            parts.field.map(|f| f.to_string()),
            Some("a[0].b".to_string())
        );
        assert!(
            parts.message.starts_with("invalid type"),
            "{}",
            parts.message
        );
    }
}
