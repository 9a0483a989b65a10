//! A JSON view of a compiled route table for `/config_dump`: what the proxy will actually match
//! on, which can differ from the proto it was sent when a field is ignored.

use serde_json::{json, Value};

use super::header::{HeaderMatch, HeaderSource};
use super::matcher::PathMatcher;
use super::query::QueryMatch;
use super::string_match::{regex_source, StringMatcher};
use super::{Route, RouteAction, RouteTable};

impl RouteTable {
    pub fn describe(&self) -> Value {
        let virtual_hosts: Vec<Value> = self
            .virtual_hosts
            .iter()
            .map(|vh| {
                json!({
                    "name": vh.name,
                    "domains": vh.domains,
                    "routes": vh.routes.iter().map(describe_route).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "name": self.name,
            "ignore_port_in_host_matching": self.ignore_port_in_host_matching,
            "virtual_hosts": virtual_hosts,
        })
    }
}

fn describe_route(route: &Route) -> Value {
    let m = &route.matcher;
    let (kind, value, ignore_case) = match &m.path {
        PathMatcher::Prefix {
            prefix,
            ignore_case,
        } => ("prefix", prefix.to_string(), *ignore_case),
        PathMatcher::Exact { path, ignore_case } => ("path", path.to_string(), *ignore_case),
        PathMatcher::SeparatedPrefix {
            prefix,
            ignore_case,
        } => ("path_separated_prefix", prefix.to_string(), *ignore_case),
        PathMatcher::Regex(re) => ("safe_regex", regex_source(re).to_string(), false),
    };
    let mut matcher = json!({ kind: value, "case_sensitive": !ignore_case });
    if m.grpc {
        matcher["grpc"] = json!(true);
    }
    if !m.headers.is_empty() {
        matcher["headers"] = m
            .headers
            .iter()
            .map(|h| {
                let mut v = describe_header_rule(&h.rule);
                v["name"] = json!(source_name(&h.source));
                v["invert_match"] = json!(h.invert);
                v
            })
            .collect();
    }
    if !m.query_parameters.is_empty() {
        matcher["query_parameters"] = m
            .query_parameters
            .iter()
            .map(|q| {
                let mut v = match &q.rule {
                    QueryMatch::Present(p) => json!({ "present_match": p }),
                    QueryMatch::Value(s) => json!({ "string_match": describe_string(s) }),
                };
                v["name"] = json!(q.name);
                v
            })
            .collect();
    }
    json!({
        "name": &*route.name,
        "match": matcher,
        "action": describe_action(&route.action),
    })
}

fn describe_action(action: &RouteAction) -> Value {
    match action {
        RouteAction::Cluster(t) => json!({ "cluster": &*t.name }),
        RouteAction::Weighted(w) => json!({
            "weighted_clusters": w
                .clusters()
                .iter()
                .map(|c| json!({ "name": &*c.target.name, "weight": c.weight }))
                .collect::<Vec<_>>(),
        }),
        RouteAction::Redirect(r) => json!({ "redirect": {
            "scheme": r.scheme.as_deref(),
            "host": r.host.as_deref(),
            "port": r.port,
            "path": format!("{:?}", r.path),
            "strip_query": r.strip_query,
            "status": r.status,
        }}),
        RouteAction::DirectResponse { status, body } => json!({ "direct_response": {
            "status": status,
            "body_bytes": body.as_ref().map_or(0, |b| b.len()),
        }}),
    }
}

fn describe_header_rule(rule: &HeaderMatch) -> Value {
    match rule {
        HeaderMatch::Present(p) => json!({ "present_match": p }),
        HeaderMatch::Value(s) => json!({ "string_match": describe_string(s) }),
        HeaderMatch::Range { start, end } => {
            json!({ "range_match": { "start": start, "end": end } })
        }
    }
}

fn describe_string(s: &StringMatcher) -> Value {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match s {
        StringMatcher::Exact { value, ignore_case } => {
            json!({ "exact": text(value), "ignore_case": ignore_case })
        }
        StringMatcher::Prefix { value, ignore_case } => {
            json!({ "prefix": text(value), "ignore_case": ignore_case })
        }
        StringMatcher::Suffix { value, ignore_case } => {
            json!({ "suffix": text(value), "ignore_case": ignore_case })
        }
        StringMatcher::Contains { value, ignore_case } => {
            json!({ "contains": text(value), "ignore_case": ignore_case })
        }
        StringMatcher::Regex(re) => json!({ "safe_regex": regex_source(re) }),
    }
}

fn source_name(source: &HeaderSource) -> &str {
    match source {
        HeaderSource::Method => ":method",
        HeaderSource::Authority => ":authority",
        HeaderSource::Path => ":path",
        HeaderSource::Scheme => ":scheme",
        HeaderSource::Header(name) => name.as_str(),
    }
}
