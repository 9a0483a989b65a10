//! Header mutations of a route (`request_headers_to_add` / `_to_remove` and the response
//! ones), compiled once and applied with Envoy's append actions.
//!
//! The levels Envoy knows (weighted cluster, route, virtual host, route configuration) are
//! applied in that order, most specific first, so for overwrites the least specific level has
//! the last word, as in Envoy's default (`most_specific_header_mutations_wins: false`).

use http::{HeaderMap, HeaderName, HeaderValue};

/// Envoy's `HeaderValueOption.HeaderAppendAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendAction {
    /// Add a value; keep the ones there.
    AppendIfExistsOrAdd,
    /// Add only if the header is absent.
    AddIfAbsent,
    /// Replace every value, or add.
    OverwriteIfExistsOrAdd,
    /// Replace every value; do nothing if absent.
    OverwriteIfExists,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderAdd {
    pub name: HeaderName,
    pub value: HeaderValue,
    pub action: AppendAction,
}

/// One direction's mutations: removals first, then additions, as Envoy applies them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderMutations {
    pub remove: Vec<HeaderName>,
    pub add: Vec<HeaderAdd>,
}

impl HeaderMutations {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// Appends a less specific level after this one.
    pub fn then(&mut self, less_specific: &HeaderMutations) {
        self.remove.extend(less_specific.remove.iter().cloned());
        self.add.extend(less_specific.add.iter().cloned());
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for add in &self.add {
            match add.action {
                AppendAction::AppendIfExistsOrAdd => {
                    headers.append(add.name.clone(), add.value.clone());
                }
                AppendAction::AddIfAbsent => {
                    if !headers.contains_key(&add.name) {
                        headers.insert(add.name.clone(), add.value.clone());
                    }
                }
                AppendAction::OverwriteIfExistsOrAdd => {
                    headers.insert(add.name.clone(), add.value.clone());
                }
                AppendAction::OverwriteIfExists => {
                    if headers.contains_key(&add.name) {
                        headers.insert(add.name.clone(), add.value.clone());
                    }
                }
            }
        }
    }
}

/// Request and response mutations of one level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderPolicy {
    pub request: HeaderMutations,
    pub response: HeaderMutations,
}

impl HeaderPolicy {
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }

    pub fn then(&mut self, less_specific: &HeaderPolicy) {
        self.request.then(&less_specific.request);
        self.response.then(&less_specific.response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(name: &'static str, value: &'static str, action: AppendAction) -> HeaderAdd {
        HeaderAdd {
            name: HeaderName::from_static(name),
            value: HeaderValue::from_static(value),
            action,
        }
    }

    #[test]
    fn each_append_action_does_what_envoy_says() {
        let mut h = HeaderMap::new();
        h.insert("a", "1".parse().unwrap());
        h.insert("b", "1".parse().unwrap());
        h.insert("c", "1".parse().unwrap());
        h.insert("gone", "x".parse().unwrap());
        let m = HeaderMutations {
            remove: vec![HeaderName::from_static("gone")],
            add: vec![
                add("a", "2", AppendAction::AppendIfExistsOrAdd),
                add("b", "2", AppendAction::AddIfAbsent),
                add("new", "2", AppendAction::AddIfAbsent),
                add("c", "2", AppendAction::OverwriteIfExistsOrAdd),
                add("absent", "2", AppendAction::OverwriteIfExists),
            ],
        };
        m.apply(&mut h);
        let all = |n: &str| {
            h.get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(all("a"), ["1", "2"]);
        assert_eq!(all("b"), ["1"]);
        assert_eq!(all("new"), ["2"]);
        assert_eq!(all("c"), ["2"]);
        assert!(all("absent").is_empty());
        assert!(all("gone").is_empty());
    }

    #[test]
    fn the_less_specific_level_overwrites_last() {
        let mut route = HeaderMutations {
            remove: vec![],
            add: vec![add("x", "route", AppendAction::OverwriteIfExistsOrAdd)],
        };
        route.then(&HeaderMutations {
            remove: vec![],
            add: vec![add("x", "vhost", AppendAction::OverwriteIfExistsOrAdd)],
        });
        let mut h = HeaderMap::new();
        route.apply(&mut h);
        assert_eq!(h.get("x").unwrap(), "vhost");
    }
}
