//! Reading values out of a config dump's JSON without trusting its shape: a missing or
//! differently typed field reads as empty, so one odd resource does not hide the rest.

use serde_json::Value;

/// The value at `path` as text: strings as they are, numbers and the like in JSON, missing
/// or null as "".
pub fn str_of(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for key in path {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The elements of the array at `key`, none if it is missing or not an array.
pub fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter())
        .into_iter()
        .flatten()
}

/// The path condition as istioctl prints it.
pub fn path_shorthand(m: &Value) -> String {
    if let Some(p) = m.get("prefix").and_then(Value::as_str) {
        format!("{p}*")
    } else if let Some(p) = m.get("path").and_then(Value::as_str) {
        p.to_string()
    } else if let Some(p) = m.get("path_separated_prefix").and_then(Value::as_str) {
        format!("{p}/*")
    } else if let Some(re) = m.get("safe_regex") {
        // Envoy nests the pattern ({"regex": …}); weft-proxy gives it as a string.
        let pattern = re.get("regex").and_then(Value::as_str).or(re.as_str());
        format!("~{}", pattern.unwrap_or_default())
    } else {
        "*".into()
    }
}
