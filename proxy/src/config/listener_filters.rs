//! A listener's `listener_filters`: the three that istiod configures on a sidecar, which decide
//! what a new connection's chain is matched on before any of its bytes are served.
//!
//! - `envoy.filters.listener.original_dst`: the destination iptables redirected the connection
//!   away from becomes its local address (what `destination_port` and `prefix_ranges` match).
//! - `envoy.filters.listener.tls_inspector`: `transport_protocol` `tls`, the SNI and the ALPN
//!   list, from the ClientHello.
//! - `envoy.filters.listener.http_inspector`: `application_protocols` `http/1.1`, `http/1.0` or
//!   `h2c`, from the first bytes of a plaintext connection.
//!
//! Each may carry `filter_disabled` (a predicate on the destination port), which istiod uses to
//! skip sniffing on ports whose protocol is declared. Any other listener filter is refused by
//! name: skipping one (a PROXY-protocol reader, a rate limit) would change what the chains see.

use std::time::Duration;

use xds_protos::pb::envoy::config::listener::v3::{
    listener_filter, listener_filter_chain_match_predicate::Rule, ListenerFilter,
    ListenerFilterChainMatchPredicate,
};
use xds_protos::type_url;

use super::error::FieldError;

pub const ORIGINAL_DST_NAME: &str = "envoy.filters.listener.original_dst";
pub const TLS_INSPECTOR_NAME: &str = "envoy.filters.listener.tls_inspector";
pub const HTTP_INSPECTOR_NAME: &str = "envoy.filters.listener.http_inspector";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListenerFilters {
    /// `Some` when `original_dst` is configured, with the ports it is disabled on.
    pub original_dst: Option<PortPredicate>,
    pub tls_inspector: Option<PortPredicate>,
    pub http_inspector: Option<PortPredicate>,
    /// `listener_filters_timeout`: how long the inspectors wait for the client's first bytes;
    /// `None` when disabled with 0.
    pub timeout: Option<Duration>,
    /// `continue_on_listener_filters_timeout`: at the timeout, go on with what is known (a
    /// server-first protocol) instead of closing the connection.
    pub continue_on_timeout: bool,
}

impl ListenerFilters {
    /// Whether any inspector reads the connection's first bytes for this destination port.
    pub fn inspects(&self, port: u16) -> bool {
        self.tls_enabled(port) || self.http_enabled(port)
    }

    pub fn tls_enabled(&self, port: u16) -> bool {
        self.tls_inspector
            .as_ref()
            .is_some_and(|p| !p.disables(port))
    }

    pub fn http_enabled(&self, port: u16) -> bool {
        self.http_inspector
            .as_ref()
            .is_some_and(|p| !p.disables(port))
    }

    /// Whether `original_dst` runs (for connections arriving on `port`, the local port: Envoy
    /// evaluates `filter_disabled` on the address as it stands when the filter runs).
    pub fn original_dst_enabled(&self, port: u16) -> bool {
        self.original_dst
            .as_ref()
            .is_some_and(|p| !p.disables(port))
    }
}

/// `filter_disabled`, reduced to what it can test before any filter ran: the destination port.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum PortPredicate {
    /// No `filter_disabled`: the filter always runs.
    #[default]
    Never,
    Any,
    /// Ports in `start..end`.
    Range(i32, i32),
    Or(Vec<PortPredicate>),
    And(Vec<PortPredicate>),
    Not(Box<PortPredicate>),
}

impl PortPredicate {
    /// Whether the filter is disabled for a connection to `port`.
    pub fn disables(&self, port: u16) -> bool {
        let port = i32::from(port);
        match self {
            PortPredicate::Never => false,
            PortPredicate::Any => true,
            PortPredicate::Range(start, end) => (*start..*end).contains(&port),
            PortPredicate::Or(all) => all.iter().any(|p| p.disables(port as u16)),
            PortPredicate::And(all) => all.iter().all(|p| p.disables(port as u16)),
            PortPredicate::Not(p) => !p.disables(port as u16),
        }
    }
}

pub(crate) fn listener_filters(
    filters: &[ListenerFilter],
    timeout: Option<Duration>,
    continue_on_timeout: bool,
) -> Result<ListenerFilters, FieldError> {
    let mut out = ListenerFilters {
        timeout,
        continue_on_timeout,
        ..Default::default()
    };
    for (i, f) in filters.iter().enumerate() {
        let field = format!("listener_filters[{i}]");
        let kind = kind_of(f).map_err(|e| e.under(&field))?;
        let disabled = match &f.filter_disabled {
            None => PortPredicate::Never,
            Some(p) => predicate(p).map_err(|e| e.under(&format!("{field}.filter_disabled")))?,
        };
        let slot = match kind {
            Kind::OriginalDst => &mut out.original_dst,
            Kind::TlsInspector => &mut out.tls_inspector,
            Kind::HttpInspector => &mut out.http_inspector,
        };
        if slot.is_some() {
            return Err(FieldError::new(field, format!("{} appears twice", f.name)));
        }
        *slot = Some(disabled);
    }
    Ok(out)
}

enum Kind {
    OriginalDst,
    TlsInspector,
    HttpInspector,
}

/// Known by type when it has one, else by its well-known name. The three filters' settings are
/// all optional extras (JA3 fingerprints, buffer sizes) that change nothing about matching.
fn kind_of(f: &ListenerFilter) -> Result<Kind, FieldError> {
    let type_url = match &f.config_type {
        Some(listener_filter::ConfigType::TypedConfig(any)) => Some(any.type_url.as_str()),
        Some(listener_filter::ConfigType::ConfigDiscovery(_)) => {
            return Err(FieldError::unsupported("config_discovery"))
        }
        None => None,
    };
    match (type_url, f.name.as_str()) {
        (Some(type_url::ORIGINAL_DST_LISTENER_FILTER), _) | (None, ORIGINAL_DST_NAME) => {
            Ok(Kind::OriginalDst)
        }
        (Some(type_url::TLS_INSPECTOR), _) | (None, TLS_INSPECTOR_NAME) => Ok(Kind::TlsInspector),
        (Some(type_url::HTTP_INSPECTOR), _) | (None, HTTP_INSPECTOR_NAME) => {
            Ok(Kind::HttpInspector)
        }
        _ => Err(FieldError::new(
            "",
            format!(
                "listener filter {} is not supported (only {ORIGINAL_DST_NAME}, {TLS_INSPECTOR_NAME} and {HTTP_INSPECTOR_NAME})",
                f.name
            ),
        )),
    }
}

fn predicate(p: &ListenerFilterChainMatchPredicate) -> Result<PortPredicate, FieldError> {
    let all = |set: &[ListenerFilterChainMatchPredicate], field: &str| {
        set.iter()
            .enumerate()
            .map(|(i, p)| predicate(p).map_err(|e| e.under(&format!("{field}.rules[{i}]"))))
            .collect::<Result<Vec<_>, _>>()
    };
    match &p.rule {
        Some(Rule::AnyMatch(true)) => Ok(PortPredicate::Any),
        Some(Rule::AnyMatch(false)) | None => Err(FieldError::new("rule", "one rule is required")),
        Some(Rule::DestinationPortRange(r)) => Ok(PortPredicate::Range(r.start, r.end)),
        Some(Rule::OrMatch(set)) => Ok(PortPredicate::Or(all(&set.rules, "or_match")?)),
        Some(Rule::AndMatch(set)) => Ok(PortPredicate::And(all(&set.rules, "and_match")?)),
        Some(Rule::NotMatch(inner)) => Ok(PortPredicate::Not(Box::new(
            predicate(inner).map_err(|e| e.under("not_match"))?,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xds_protos::pb::envoy::config::listener::v3::listener_filter_chain_match_predicate::MatchSet;
    use xds_protos::pb::envoy::r#type::v3::Int32Range;
    use xds_protos::pb::google::protobuf::Any;

    fn typed(name: &str, type_url: &str) -> ListenerFilter {
        ListenerFilter {
            name: name.into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(Any {
                type_url: type_url.into(),
                value: Vec::new(),
            })),
            ..Default::default()
        }
    }

    fn ports(start: i32, end: i32) -> ListenerFilterChainMatchPredicate {
        ListenerFilterChainMatchPredicate {
            rule: Some(Rule::DestinationPortRange(Int32Range { start, end })),
        }
    }

    #[test]
    fn istios_three_filters_are_known_by_type_or_name() {
        let f = listener_filters(
            &[
                typed("anything", type_url::ORIGINAL_DST_LISTENER_FILTER),
                typed(TLS_INSPECTOR_NAME, type_url::TLS_INSPECTOR),
                ListenerFilter {
                    name: HTTP_INSPECTOR_NAME.into(),
                    ..Default::default()
                },
            ],
            Some(Duration::from_secs(15)),
            true,
        )
        .unwrap();
        assert!(f.original_dst_enabled(15006));
        assert!(f.tls_enabled(9080) && f.http_enabled(9080));
        assert!(f.continue_on_timeout);
    }

    #[test]
    fn another_listener_filter_is_refused_by_name() {
        let err = listener_filters(
            &[
                typed(ORIGINAL_DST_NAME, type_url::ORIGINAL_DST_LISTENER_FILTER),
                typed(
                    "envoy.filters.listener.proxy_protocol",
                    "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
                ),
            ],
            None,
            false,
        )
        .unwrap_err();
        assert_eq!(err.field, "listener_filters[1]");
        assert!(
            err.reason.contains("envoy.filters.listener.proxy_protocol"),
            "{err:?}"
        );
    }

    #[test]
    fn filter_disabled_on_declared_ports_skips_sniffing_there() {
        let mut http = typed(HTTP_INSPECTOR_NAME, type_url::HTTP_INSPECTOR);
        http.filter_disabled = Some(ListenerFilterChainMatchPredicate {
            rule: Some(Rule::OrMatch(MatchSet {
                rules: vec![ports(9080, 9081), ports(15000, 15100)],
            })),
        });
        let f = listener_filters(&[http], None, false).unwrap();
        assert!(!f.http_enabled(9080));
        assert!(!f.http_enabled(15021));
        assert!(f.http_enabled(8080));
        let not = PortPredicate::Not(Box::new(PortPredicate::Range(80, 81)));
        assert!(not.disables(81) && !not.disables(80));
    }

    #[test]
    fn a_filter_twice_and_an_empty_predicate_are_refused() {
        let twice = [
            typed(TLS_INSPECTOR_NAME, type_url::TLS_INSPECTOR),
            typed(TLS_INSPECTOR_NAME, type_url::TLS_INSPECTOR),
        ];
        assert_eq!(
            listener_filters(&twice, None, false).unwrap_err().field,
            "listener_filters[1]"
        );
        let mut empty = typed(TLS_INSPECTOR_NAME, type_url::TLS_INSPECTOR);
        empty.filter_disabled = Some(ListenerFilterChainMatchPredicate { rule: None });
        assert_eq!(
            listener_filters(&[empty], None, false).unwrap_err().field,
            "listener_filters[0].filter_disabled.rule"
        );
    }
}
