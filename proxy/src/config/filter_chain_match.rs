//! Which of a listener's filter chains a connection uses: Envoy's `filter_chain_match`, applied
//! criterion by criterion in Envoy's order — destination port, destination IP, server name,
//! transport protocol, application protocols, direct source IP, source type, source IP, source
//! port. At each criterion the chains that match the connection most specifically stay in the
//! running; a chain that leaves the criterion empty matches anything, but loses to one that
//! names a value the connection has. A connection no chain matches goes to the default chain.

use std::net::{IpAddr, SocketAddr};

use xds_protos::pb::envoy::config::core::v3::CidrRange;
use xds_protos::pb::envoy::config::listener::v3::{
    filter_chain_match::ConnectionSourceType, FilterChainMatch,
};

use super::error::FieldError;

/// A compiled `FilterChainMatch`; empty fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainMatch {
    pub destination_port: Option<u16>,
    pub prefix_ranges: Vec<IpPrefix>,
    /// Exact names, or `*.suffix` wildcards.
    pub server_names: Vec<String>,
    /// `raw_buffer` or `tls` (what `tls_inspector` detects).
    pub transport_protocol: Option<String>,
    pub application_protocols: Vec<String>,
    pub direct_source_prefix_ranges: Vec<IpPrefix>,
    pub source_type: SourceType,
    pub source_prefix_ranges: Vec<IpPrefix>,
    pub source_ports: Vec<u16>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceType {
    #[default]
    Any,
    SameIpOrLoopback,
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What is known about a connection when its chain is chosen.
#[derive(Debug, Clone)]
pub struct Connection<'a> {
    /// The local address, or the original destination when the listener recovered it.
    pub destination: SocketAddr,
    pub source: SocketAddr,
    /// The peer's address as seen on the socket (the same as `source` without PROXY protocol).
    pub direct_source: SocketAddr,
    pub server_name: Option<&'a str>,
    pub transport_protocol: &'a str,
    pub application_protocols: &'a [String],
}

/// How well a chain's match fits one criterion of a connection (see [`exact`]).
type Criterion<'a> = dyn Fn(&ChainMatch) -> Option<u32> + 'a;

/// The index of the chain `conn` uses, or `None` for the default chain.
pub fn select(chains: &[ChainMatch], conn: &Connection<'_>) -> Option<usize> {
    let mut candidates: Vec<usize> = (0..chains.len()).collect();
    let criteria: [&Criterion<'_>; 9] = [
        &|m| exact(m.destination_port.as_ref(), &conn.destination.port()),
        &|m| longest_prefix(&m.prefix_ranges, conn.destination.ip()),
        &|m| server_name(&m.server_names, conn.server_name),
        &|m| exact(m.transport_protocol.as_deref(), conn.transport_protocol),
        &|m| any_of(&m.application_protocols, conn.application_protocols),
        &|m| longest_prefix(&m.direct_source_prefix_ranges, conn.direct_source.ip()),
        &|m| source_type(m.source_type, conn),
        &|m| longest_prefix(&m.source_prefix_ranges, conn.source.ip()),
        &|m| {
            if m.source_ports.is_empty() {
                Some(0)
            } else {
                m.source_ports.contains(&conn.source.port()).then_some(1)
            }
        },
    ];
    for score_of in criteria {
        let scored: Vec<(usize, u32)> = candidates
            .iter()
            .filter_map(|&i| score_of(&chains[i]).map(|s| (i, s)))
            .collect();
        let best = scored.iter().map(|(_, s)| *s).max()?;
        candidates = scored
            .into_iter()
            .filter(|(_, s)| *s == best)
            .map(|(i, _)| i)
            .collect();
    }
    // Envoy rejects listeners whose chains have identical matches, so one is left.
    candidates.first().copied()
}

/// Compiles a `filter_chain_match`. `address_suffix`/`suffix_len` are refused: they would
/// narrow the match, and ignoring them would widen it.
pub(crate) fn filter_chain_match(m: &FilterChainMatch) -> Result<ChainMatch, FieldError> {
    if !m.address_suffix.is_empty() {
        return Err(FieldError::unsupported("address_suffix"));
    }
    if m.suffix_len.is_some() {
        return Err(FieldError::unsupported("suffix_len"));
    }
    let destination_port = match &m.destination_port {
        None => None,
        Some(p) => Some(
            u16::try_from(p.value)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| FieldError::new("destination_port", "must be 1 to 65535"))?,
        ),
    };
    let source_ports =
        m.source_ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                u16::try_from(*p).ok().filter(|p| *p > 0).ok_or_else(|| {
                    FieldError::new(format!("source_ports[{i}]"), "must be 1 to 65535")
                })
            })
            .collect::<Result<_, _>>()?;
    let source_type = match ConnectionSourceType::try_from(m.source_type) {
        Ok(ConnectionSourceType::Any) => SourceType::Any,
        Ok(ConnectionSourceType::SameIpOrLoopback) => SourceType::SameIpOrLoopback,
        Ok(ConnectionSourceType::External) => SourceType::External,
        Err(_) => return Err(FieldError::new("source_type", "unknown value")),
    };
    let server_names = m
        .server_names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if n.is_empty()
                || (n.contains('*') && !(n.starts_with("*.") && n[2..].find('*').is_none()))
            {
                Err(FieldError::new(
                    format!("server_names[{i}]"),
                    format!("{n:?} is neither a name nor a *.suffix wildcard"),
                ))
            } else {
                Ok(n.to_ascii_lowercase())
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(ChainMatch {
        destination_port,
        prefix_ranges: prefixes(&m.prefix_ranges, "prefix_ranges")?,
        server_names,
        transport_protocol: Some(m.transport_protocol.clone()).filter(|t| !t.is_empty()),
        application_protocols: m.application_protocols.clone(),
        direct_source_prefix_ranges: prefixes(
            &m.direct_source_prefix_ranges,
            "direct_source_prefix_ranges",
        )?,
        source_type,
        source_prefix_ranges: prefixes(&m.source_prefix_ranges, "source_prefix_ranges")?,
        source_ports,
    })
}

fn prefixes(ranges: &[CidrRange], field: &str) -> Result<Vec<IpPrefix>, FieldError> {
    ranges
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let at = |reason: String| FieldError::new(format!("{field}[{i}]"), reason);
            let addr: IpAddr = r
                .address_prefix
                .parse()
                .map_err(|_| at(format!("{:?} is not an IP address", r.address_prefix)))?;
            let len = r.prefix_len.as_ref().map_or(0, |l| l.value);
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(at(format!("prefix_len {len} is over {max}")));
            }
            Ok(IpPrefix {
                addr,
                len: len as u8,
            })
        })
        .collect()
}

/// `None`: no match; `Some(0)`: the criterion is empty (matches anything); higher is more specific.
fn exact<T: PartialEq + ?Sized>(wanted: Option<&T>, actual: &T) -> Option<u32> {
    match wanted {
        None => Some(0),
        Some(w) => (w == actual).then_some(1),
    }
}

fn longest_prefix(ranges: &[IpPrefix], ip: IpAddr) -> Option<u32> {
    if ranges.is_empty() {
        return Some(0);
    }
    // Even a /0 is more specific than no range at all.
    ranges
        .iter()
        .filter(|r| r.contains(ip))
        .map(|r| u32::from(r.len) + 1)
        .max()
}

fn server_name(names: &[String], sni: Option<&str>) -> Option<u32> {
    if names.is_empty() {
        return Some(0);
    }
    let sni = sni?.to_ascii_lowercase();
    names
        .iter()
        .filter_map(|n| {
            let n = n.to_ascii_lowercase();
            if n == sni {
                // Exact beats any wildcard.
                Some(u32::MAX)
            } else if let Some(suffix) = n.strip_prefix('*') {
                // `*.example.com`: longer suffixes are more specific.
                (sni.ends_with(suffix) && sni.len() > suffix.len())
                    .then(|| u32::try_from(suffix.len()).unwrap_or(u32::MAX - 1))
            } else {
                None
            }
        })
        .max()
}

fn any_of(wanted: &[String], actual: &[String]) -> Option<u32> {
    if wanted.is_empty() {
        return Some(0);
    }
    wanted.iter().any(|w| actual.contains(w)).then_some(1)
}

fn source_type(t: SourceType, conn: &Connection<'_>) -> Option<u32> {
    let local = conn.source.ip().is_loopback() || conn.source.ip() == conn.destination.ip();
    match t {
        SourceType::Any => Some(0),
        SourceType::SameIpOrLoopback => local.then_some(1),
        SourceType::External => (!local).then_some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(dst: &str) -> Connection<'static> {
        let destination: SocketAddr = dst.parse().unwrap();
        let source: SocketAddr = "10.0.0.9:40000".parse().unwrap();
        Connection {
            destination,
            source,
            direct_source: source,
            server_name: None,
            transport_protocol: "raw_buffer",
            application_protocols: &[],
        }
    }

    fn prefix(s: &str) -> IpPrefix {
        let (a, l) = s.split_once('/').unwrap();
        IpPrefix {
            addr: a.parse().unwrap(),
            len: l.parse().unwrap(),
        }
    }

    #[test]
    fn a_named_port_beats_an_empty_one_and_a_wrong_one_is_out() {
        let chains = [
            ChainMatch::default(),
            ChainMatch {
                destination_port: Some(9080),
                ..Default::default()
            },
            ChainMatch {
                destination_port: Some(80),
                ..Default::default()
            },
        ];
        assert_eq!(select(&chains, &conn("10.1.1.1:9080")), Some(1));
        assert_eq!(select(&chains, &conn("10.1.1.1:5000")), Some(0));
        // Without a catch-all chain, nothing matches: the default chain.
        assert_eq!(select(&chains[1..], &conn("10.1.1.1:5000")), None);
    }

    #[test]
    fn the_longest_destination_prefix_wins_and_port_comes_first() {
        let chains = [
            ChainMatch {
                prefix_ranges: vec![prefix("10.0.0.0/8")],
                ..Default::default()
            },
            ChainMatch {
                prefix_ranges: vec![prefix("10.1.0.0/16")],
                ..Default::default()
            },
            ChainMatch {
                destination_port: Some(443),
                ..Default::default()
            },
        ];
        assert_eq!(select(&chains, &conn("10.1.2.3:80")), Some(1));
        assert_eq!(select(&chains, &conn("10.2.2.3:80")), Some(0));
        // Port is decided before address: the port chain wins though its range is empty.
        assert_eq!(select(&chains, &conn("10.1.2.3:443")), Some(2));
        assert_eq!(select(&chains, &conn("192.168.0.1:80")), None);
    }

    #[test]
    fn server_names_exact_then_longest_wildcard() {
        let chains = [
            ChainMatch {
                server_names: vec!["*.example.com".into()],
                ..Default::default()
            },
            ChainMatch {
                server_names: vec!["*.api.example.com".into()],
                ..Default::default()
            },
            ChainMatch {
                server_names: vec!["v1.api.example.com".into()],
                ..Default::default()
            },
        ];
        let mut c = conn("10.0.0.1:443");
        c.server_name = Some("v1.api.example.com");
        assert_eq!(select(&chains, &c), Some(2));
        c.server_name = Some("v2.api.example.com");
        assert_eq!(select(&chains, &c), Some(1));
        c.server_name = Some("www.example.com");
        assert_eq!(select(&chains, &c), Some(0));
        c.server_name = Some("example.com");
        assert_eq!(select(&chains, &c), None);
        c.server_name = None;
        assert_eq!(select(&chains, &c), None);
    }

    #[test]
    fn transport_and_application_protocols_pick_istios_sniffed_chains() {
        // Istio's inbound layout: TLS, plain HTTP (sniffed), and plain TCP for one port.
        let chains = [
            ChainMatch {
                destination_port: Some(9080),
                transport_protocol: Some("tls".into()),
                ..Default::default()
            },
            ChainMatch {
                destination_port: Some(9080),
                transport_protocol: Some("raw_buffer".into()),
                application_protocols: vec!["http/1.1".into(), "h2c".into()],
                ..Default::default()
            },
            ChainMatch {
                destination_port: Some(9080),
                transport_protocol: Some("raw_buffer".into()),
                ..Default::default()
            },
        ];
        let http = ["http/1.1".to_string()];
        let mut c = conn("10.0.0.1:9080");
        c.application_protocols = &http;
        assert_eq!(select(&chains, &c), Some(1));
        c.application_protocols = &[];
        assert_eq!(select(&chains, &c), Some(2));
        c.transport_protocol = "tls";
        assert_eq!(select(&chains, &c), Some(0));
    }

    #[test]
    fn source_criteria() {
        let chains = [
            ChainMatch {
                source_type: SourceType::SameIpOrLoopback,
                ..Default::default()
            },
            ChainMatch {
                source_prefix_ranges: vec![prefix("10.0.0.0/24")],
                ..Default::default()
            },
            ChainMatch::default(),
        ];
        let mut c = conn("10.0.0.1:80");
        // Source type is decided before source prefix.
        c.source = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(select(&chains, &c), Some(0));
        c.source = "10.0.0.7:5000".parse().unwrap();
        assert_eq!(select(&chains, &c), Some(1));
        c.source = "10.9.0.7:5000".parse().unwrap();
        assert_eq!(select(&chains, &c), Some(2));
    }

    #[test]
    fn prefixes_of_both_families() {
        assert!(prefix("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(!prefix("0.0.0.0/0").contains("::1".parse().unwrap()));
        assert!(prefix("fd00::/8").contains("fd12::1".parse().unwrap()));
        assert!(prefix("10.0.0.1/32").contains("10.0.0.1".parse().unwrap()));
        assert!(!prefix("10.0.0.1/32").contains("10.0.0.2".parse().unwrap()));
    }
}
