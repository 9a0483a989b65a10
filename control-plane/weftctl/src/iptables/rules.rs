//! The interception rules as pure data: from the options (Istio's `istio-iptables` flags and
//! `traffic.sidecar.istio.io/*` annotations) to the `iptables-restore` input that installs
//! them, and from a saved `nat` table to the input that removes them.
//!
//! The chain layout is Istio's, so anyone who has debugged a sidecar reads it at once:
//! `PREROUTING → ISTIO_INBOUND → ISTIO_IN_REDIRECT (REDIRECT to the inbound port)` and
//! `OUTPUT → ISTIO_OUTPUT → ISTIO_REDIRECT (REDIRECT to the outbound port)`, with the proxy's
//! own traffic (its uid/gid) and the inbound passthrough source `127.0.0.6` let through.
//!
//! Everything is one `iptables-restore --noflush` transaction per address family: the kernel
//! applies it whole or not at all, so a failure never leaves half the rules in place.

use std::fmt::Write as _;
use std::net::IpAddr;

/// The chains this tool owns: created by install, flushed and deleted by clean.
pub const CHAINS: [&str; 4] = [
    "ISTIO_INBOUND",
    "ISTIO_IN_REDIRECT",
    "ISTIO_OUTPUT",
    "ISTIO_REDIRECT",
];

/// The rules in built-in chains that send traffic into ours, exactly as `iptables-save`
/// prints them (so their presence can be read back).
const INBOUND_JUMP: &str = "-A PREROUTING -p tcp -j ISTIO_INBOUND";
const OUTBOUND_JUMP: &str = "-A OUTPUT -p tcp -j ISTIO_OUTPUT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn localhost(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.1/32",
            Family::V6 => "::1/128",
        }
    }

    /// The source address the proxy uses for inbound passthrough connections to the app.
    fn passthrough_source(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.6/32",
            Family::V6 => "::6/128",
        }
    }

    pub fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

/// A set of ports or CIDRs where `*` means "all".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection<T> {
    All,
    Only(Vec<T>),
}

impl<T> Selection<T> {
    fn is_empty(&self) -> bool {
        matches!(self, Selection::Only(v) if v.is_empty())
    }
}

/// An address range, validated; printed as iptables expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    fn family(&self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("{flag}: {value:?} is not a port (1-65535)")]
    Port { flag: &'static str, value: String },
    #[error("{flag}: {value:?} is not an address range like 10.0.0.0/8 or fd00::/8")]
    Cidr { flag: &'static str, value: String },
}

/// Parses a comma-separated port list; `*` is all ports, empty is none.
pub fn parse_ports(flag: &'static str, s: &str) -> Result<Selection<u16>, ParseError> {
    parse_list(s, |item| {
        item.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| ParseError::Port {
                flag,
                value: item.to_string(),
            })
    })
}

/// Parses a comma-separated CIDR list; `*` is everything, empty is nothing. A bare address
/// is a single host.
pub fn parse_cidrs(flag: &'static str, s: &str) -> Result<Selection<Cidr>, ParseError> {
    parse_list(s, |item| {
        let bad = || ParseError::Cidr {
            flag,
            value: item.to_string(),
        };
        let (addr, prefix) = match item.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    })
}

fn parse_list<T>(
    s: &str,
    item: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<Selection<T>, ParseError> {
    let s = s.trim();
    if s == "*" {
        return Ok(Selection::All);
    }
    s.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(item)
        .collect::<Result<_, _>>()
        .map(Selection::Only)
}

/// What to intercept; the defaults are Istio's sidecar injection defaults.
#[derive(Debug, Clone)]
pub struct Interception {
    pub proxy_port: u16,
    pub inbound_capture_port: u16,
    pub proxy_uid: u32,
    pub proxy_gid: u32,
    pub include_inbound_ports: Selection<u16>,
    pub exclude_inbound_ports: Vec<u16>,
    pub include_outbound_ip_ranges: Selection<Cidr>,
    pub exclude_outbound_ip_ranges: Vec<Cidr>,
    pub include_outbound_ports: Vec<u16>,
    pub exclude_outbound_ports: Vec<u16>,
}

impl Interception {
    fn captures_inbound(&self) -> bool {
        !self.include_inbound_ports.is_empty()
    }

    /// The `iptables-restore --noflush` input that installs the rules for one family, given
    /// the `nat` table as `iptables-save` prints it now. Declaring a chain flushes it, and a
    /// jump rule already present is not added again, so running this twice leaves the same
    /// table as running it once.
    pub fn install(&self, family: Family, saved: &str) -> String {
        let mut out = String::from("*nat\n");
        for chain in CHAINS {
            let _ = writeln!(out, ":{chain} - [0:0]");
        }
        let rule = |out: &mut String, r: String| {
            out.push_str(&r);
            out.push('\n');
        };
        rule(
            &mut out,
            format!(
                "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {}",
                self.proxy_port
            ),
        );
        rule(
            &mut out,
            format!(
                "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {}",
                self.inbound_capture_port
            ),
        );

        // Inbound: everything (but the excluded ports) or only the listed ports.
        if self.captures_inbound() {
            match &self.include_inbound_ports {
                Selection::All => {
                    for port in &self.exclude_inbound_ports {
                        rule(
                            &mut out,
                            format!("-A ISTIO_INBOUND -p tcp --dport {port} -j RETURN"),
                        );
                    }
                    rule(
                        &mut out,
                        "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT".into(),
                    );
                }
                Selection::Only(ports) => {
                    for port in ports {
                        rule(
                            &mut out,
                            format!("-A ISTIO_INBOUND -p tcp --dport {port} -j ISTIO_IN_REDIRECT"),
                        );
                    }
                }
            }
            if !saved_has(saved, INBOUND_JUMP) {
                rule(&mut out, INBOUND_JUMP.into());
            }
        }

        // Outbound.
        for port in &self.exclude_outbound_ports {
            rule(
                &mut out,
                format!("-A ISTIO_OUTPUT -p tcp --dport {port} -j RETURN"),
            );
        }
        // The proxy's passthrough connections to the local app come from 127.0.0.6.
        rule(
            &mut out,
            format!(
                "-A ISTIO_OUTPUT -s {} -o lo -j RETURN",
                family.passthrough_source()
            ),
        );
        let localhost = family.localhost();
        for (what, id) in [("uid", self.proxy_uid), ("gid", self.proxy_gid)] {
            if self.captures_inbound() {
                // The proxy calling this pod's own service address over lo is inbound traffic.
                rule(
                    &mut out,
                    format!(
                        "-A ISTIO_OUTPUT ! -d {localhost} -o lo -m owner --{what}-owner {id} -j ISTIO_IN_REDIRECT"
                    ),
                );
            }
            // The app talking to itself over lo is left alone; the proxy's own traffic too.
            rule(
                &mut out,
                format!("-A ISTIO_OUTPUT -o lo -m owner ! --{what}-owner {id} -j RETURN"),
            );
            rule(
                &mut out,
                format!("-A ISTIO_OUTPUT -m owner --{what}-owner {id} -j RETURN"),
            );
        }
        rule(
            &mut out,
            format!("-A ISTIO_OUTPUT -d {localhost} -j RETURN"),
        );
        for cidr in self
            .exclude_outbound_ip_ranges
            .iter()
            .filter(|c| c.family() == family)
        {
            rule(&mut out, format!("-A ISTIO_OUTPUT -d {cidr} -j RETURN"));
        }
        for port in &self.include_outbound_ports {
            rule(
                &mut out,
                format!("-A ISTIO_OUTPUT -p tcp --dport {port} -j ISTIO_REDIRECT"),
            );
        }
        match &self.include_outbound_ip_ranges {
            Selection::All => rule(&mut out, "-A ISTIO_OUTPUT -j ISTIO_REDIRECT".into()),
            Selection::Only(cidrs) => {
                for cidr in cidrs.iter().filter(|c| c.family() == family) {
                    rule(
                        &mut out,
                        format!("-A ISTIO_OUTPUT -d {cidr} -j ISTIO_REDIRECT"),
                    );
                }
            }
        }
        if !saved_has(saved, OUTBOUND_JUMP) {
            rule(&mut out, OUTBOUND_JUMP.into());
        }
        out.push_str("COMMIT\n");
        out
    }
}

/// The `iptables-restore --noflush` input that removes exactly what [`Interception::install`]
/// added, given the saved `nat` table; `None` when none of it is there.
pub fn clean(saved: &str) -> Option<String> {
    let jumps: Vec<&str> = [INBOUND_JUMP, OUTBOUND_JUMP]
        .into_iter()
        .filter(|j| saved_has(saved, j))
        .collect();
    let chains: Vec<&str> = CHAINS
        .into_iter()
        .filter(|c| saved.lines().any(|l| l.starts_with(&format!(":{c} "))))
        .collect();
    if jumps.is_empty() && chains.is_empty() {
        return None;
    }
    let mut out = String::from("*nat\n");
    for chain in &chains {
        // Declaring flushes it, so its rules no longer reference the others when deleted.
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    for jump in jumps {
        let _ = writeln!(out, "-D{}", &jump[2..]);
    }
    for chain in &chains {
        let _ = writeln!(out, "-X {chain}");
    }
    out.push_str("COMMIT\n");
    Some(out)
}

fn saved_has(saved: &str, rule: &str) -> bool {
    saved.lines().any(|l| l.trim_end() == rule)
}

#[cfg(test)]
mod tests;
