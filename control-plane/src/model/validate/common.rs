//! Checks shared by several kinds: hosts, ports, regexes, percentages, weights.

use super::Findings;
use crate::model::path::FieldPath;
use crate::model::string_match::StringMatch;
use crate::model::virtual_service::{Destination, Percent};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub(super) fn check_host(f: &mut Findings, path: &FieldPath, host: &str) {
    if host.is_empty() {
        f.error(path, "host must not be empty");
    } else if host
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '/' | ':' | '@'))
        && host.parse::<IpAddr>().is_err()
    {
        f.error(path, format!("{host:?} is not a valid host name"));
    } else if host.chars().skip(1).any(|c| c == '*') {
        f.error(
            path,
            format!("{host:?}: a wildcard '*' may only be the first character of a host"),
        );
    }
}

pub(super) fn check_hosts(f: &mut Findings, path: &FieldPath, hosts: &[String]) {
    for (i, host) in hosts.iter().enumerate() {
        check_host(f, &path.index(i), host);
    }
}

pub(super) fn check_port(f: &mut Findings, path: &FieldPath, port: u32) {
    if port == 0 || port > 65535 {
        f.error(
            path,
            format!("port {port} is out of range: a port is 1-65535"),
        );
    }
}

pub(super) fn check_optional_port(f: &mut Findings, path: &FieldPath, port: Option<u32>) {
    if let Some(port) = port {
        check_port(f, path, port);
    }
}

/// A regex must compile, mean the same and fit in both RE2 (Envoy) and weft-proxy's engine;
/// otherwise the resource is rejected here rather than NACKed by every proxy.
pub(super) fn check_regex(f: &mut Findings, path: &FieldPath, pattern: &str) {
    if let Err(problem) = super::regex::check(pattern) {
        f.error(path, format!("invalid regex `{pattern}`: {problem}"));
    }
}

pub(super) fn check_string_match(f: &mut Findings, path: &FieldPath, m: &StringMatch) {
    if let StringMatch::Regex(pattern) = m {
        check_regex(f, &path.key("regex"), pattern);
    }
}

pub(super) fn check_optional_string_match(
    f: &mut Findings,
    path: &FieldPath,
    m: &Option<StringMatch>,
) {
    if let Some(m) = m {
        check_string_match(f, path, m);
    }
}

pub(super) fn check_percent_value(f: &mut Findings, path: &FieldPath, value: f64) {
    if !(0.0..=100.0).contains(&value) {
        f.error(
            path,
            format!("{value} is not a percentage: it must be between 0 and 100"),
        );
    }
}

pub(super) fn check_percent(f: &mut Findings, path: &FieldPath, p: &Option<Percent>) {
    if let Some(p) = p {
        check_percent_value(f, &path.key("value"), p.value);
    }
}

pub(super) fn check_destination(f: &mut Findings, path: &FieldPath, d: &Destination) {
    check_host(f, &path.key("host"), &d.host);
    if let Some(port) = &d.port {
        check_port(f, &path.key("port").key("number"), port.number);
    }
    if d.subset.as_deref() == Some("") {
        f.error(
            &path.key("subset"),
            "subset must not be empty: leave it out to use every endpoint",
        );
    }
}

/// Weights of a route's destinations: none negative, and summing to 100 when there are
/// several destinations (a single destination may leave its weight out).
pub(super) fn check_weights(f: &mut Findings, route_path: &FieldPath, weights: &[Option<i32>]) {
    let mut negative = false;
    for (i, w) in weights.iter().enumerate() {
        if let Some(w) = w.filter(|w| *w < 0) {
            f.error(
                &route_path.index(i).key("weight"),
                format!("weight {w} is negative"),
            );
            negative = true;
        }
    }
    if weights.len() > 1 && !negative {
        let sum: i64 = weights.iter().map(|w| i64::from(w.unwrap_or(0))).sum();
        if sum != 100 {
            f.error(
                route_path,
                format!("weights sum to {sum}, they must sum to 100"),
            );
        }
    }
}

/// Istio's rules for `exportTo`: `.`, `*`, `~` or namespace names, `*` and `~` alone.
pub(super) fn check_export_to(f: &mut Findings, path: &FieldPath, export_to: &[String]) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, ns) in export_to.iter().enumerate() {
        let known =
            matches!(ns.as_str(), "." | "*" | "~") || crate::model::sidecar::is_dns_label(ns);
        if !known {
            f.error(
                &path.index(i),
                format!("{ns:?} must be \".\", \"*\", \"~\" or a namespace name"),
            );
        } else if !seen.insert(ns.as_str()) {
            f.error(&path.index(i), format!("{ns:?} is listed twice"));
        }
    }
    for alone in ["*", "~"] {
        if export_to.len() > 1 && export_to.iter().any(|e| e == alone) {
            f.error(
                path,
                format!("{alone:?} cannot be combined with other namespaces"),
            );
        }
    }
}

pub(super) fn check_label_keys(
    f: &mut Findings,
    path: &FieldPath,
    labels: &BTreeMap<String, String>,
) {
    for key in labels.keys() {
        if key.is_empty() {
            f.error(&path.key(key), "label names must not be empty");
        }
    }
}

/// An IP address, or a CIDR block (`10.0.0.0/8`).
pub(super) fn is_ip_or_cidr(text: &str) -> bool {
    match text.split_once('/') {
        None => text.parse::<IpAddr>().is_ok(),
        Some((ip, bits)) => match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        },
    }
}

pub(super) fn check_subnets(f: &mut Findings, path: &FieldPath, subnets: &[String]) {
    for (i, s) in subnets.iter().enumerate() {
        if !is_ip_or_cidr(s) {
            f.error(
                &path.index(i),
                format!("{s:?} is neither an IP address nor a CIDR block"),
            );
        }
    }
}
