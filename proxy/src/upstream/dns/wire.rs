//! A DNS stub resolver over UDP (RFC 1035): one A query to the configured server, then an AAAA
//! query when the name has no IPv4 address, as Envoy's `AUTO` lookup family does in reverse
//! order (weft-proxy's upstreams are IPv4 first). Recursion is the server's job (the query asks
//! for it); the answer's A/AAAA records are the name's addresses, CNAMEs in front of them
//! included. A truncated answer counts as a failure: address answers fit in a datagram, and
//! there is no TCP fallback.
//!
//! Each query is sent up to [`ATTEMPTS`] times, [`ATTEMPT_TIMEOUT`] apart, from a fresh socket
//! with a random id; an answer that does not match both is ignored, so a stray or spoofed
//! datagram cannot stand in for the real one.

use super::{Resolution, Resolve};
use futures::future::{BoxFuture, FutureExt};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;

pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
pub const ATTEMPTS: usize = 2;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;
/// The classic DNS-over-UDP limit without EDNS.
const MAX_DATAGRAM: usize = 512;

/// Asks one DNS server.
pub struct UdpResolver {
    server: SocketAddr,
}

impl UdpResolver {
    pub fn new(server: SocketAddr) -> Self {
        UdpResolver { server }
    }
}

impl Resolve for UdpResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, Resolution> {
        let (server, host) = (self.server, host.to_string());
        async move {
            if let Ok(ip) = host.parse::<IpAddr>() {
                return Resolution::Found(vec![SocketAddr::new(ip, port)]);
            }
            let mut found = Vec::new();
            for qtype in [TYPE_A, TYPE_AAAA] {
                match ask(server, &host, qtype).await {
                    Ok(Answer::Addresses(ips)) => {
                        found.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port)));
                    }
                    // No such name: the AAAA question would get the same answer.
                    Ok(Answer::NoSuchName) => break,
                    Err(e) => return Resolution::Failed(e.to_string()),
                }
                if !found.is_empty() {
                    break;
                }
            }
            if found.is_empty() {
                Resolution::NoRecords
            } else {
                Resolution::Found(found)
            }
        }
        .boxed()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0:?} is not a valid DNS name")]
    BadName(String),
    #[error("DNS server {server}: {source}")]
    Io {
        server: SocketAddr,
        source: std::io::Error,
    },
    #[error("DNS server {0} did not answer")]
    Timeout(SocketAddr),
    #[error("DNS server answered with error code {0}")]
    Rcode(u8),
    #[error("DNS answer truncated")]
    Truncated,
    #[error("malformed DNS answer")]
    Malformed,
}

/// What the server said about one question.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The addresses of the asked type; empty when the name exists without any.
    Addresses(Vec<IpAddr>),
    NoSuchName,
}

async fn ask(server: SocketAddr, host: &str, qtype: u16) -> Result<Answer, WireError> {
    let io = |source| WireError::Io { server, source };
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    let mut buf = [0u8; MAX_DATAGRAM];
    for _ in 0..ATTEMPTS {
        let id: u16 = rand::random();
        let query = encode_query(id, host, qtype)?;
        socket.send(&query).await.map_err(io)?;
        let deadline = tokio::time::Instant::now() + ATTEMPT_TIMEOUT;
        loop {
            let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(read) => read.map_err(io)?,
            };
            match decode_answer(&buf[..n], id, qtype) {
                // Not the answer to this query: keep listening until the deadline.
                Err(WireError::Malformed) => continue,
                other => return other,
            }
        }
    }
    Err(WireError::Timeout(server))
}

/// A standard query for `host` with recursion desired.
pub fn encode_query(id: u16, host: &str, qtype: u16) -> Result<Vec<u8>, WireError> {
    let bad = || WireError::BadName(host.to_string());
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 || !label.is_ascii() {
            return Err(bad());
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

/// The answer to query `id`: its addresses of type `qtype`. `Malformed` also stands for a
/// datagram that is not a response to this query.
pub fn decode_answer(msg: &[u8], id: u16, qtype: u16) -> Result<Answer, WireError> {
    let mut r = Reader { msg, at: 0 };
    let got_id = r.u16()?;
    let flags = r.u16()?;
    let is_response = flags & 0x8000 != 0;
    if got_id != id || !is_response {
        return Err(WireError::Malformed);
    }
    if flags & 0x0200 != 0 {
        return Err(WireError::Truncated);
    }
    let rcode = (flags & 0x000f) as u8;
    let questions = r.u16()?;
    let answers = r.u16()?;
    r.skip(4)?; // authority and additional counts
    match rcode {
        0 => {}
        RCODE_NXDOMAIN => return Ok(Answer::NoSuchName),
        other => return Err(WireError::Rcode(other)),
    }
    for _ in 0..questions {
        r.skip_name()?;
        r.skip(4)?;
    }
    let mut ips = Vec::new();
    for _ in 0..answers {
        r.skip_name()?;
        let rtype = r.u16()?;
        let class = r.u16()?;
        r.skip(4)?; // TTL: refreshes follow the refresh interval, as Envoy's default does
        let len = usize::from(r.u16()?);
        let data = r.take(len)?;
        match (rtype, class, data.len()) {
            (TYPE_A, CLASS_IN, 4) if qtype == TYPE_A => {
                ips.push(IpAddr::from([data[0], data[1], data[2], data[3]]));
            }
            (TYPE_AAAA, CLASS_IN, 16) if qtype == TYPE_AAAA => {
                let mut a = [0u8; 16];
                a.copy_from_slice(data);
                ips.push(IpAddr::from(a));
            }
            // CNAMEs and anything else on the way to the addresses.
            _ => {}
        }
    }
    Ok(Answer::Addresses(ips))
}

struct Reader<'a> {
    msg: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).ok_or(WireError::Malformed)?;
        let bytes = self.msg.get(self.at..end).ok_or(WireError::Malformed)?;
        self.at = end;
        Ok(bytes)
    }

    fn skip(&mut self, n: usize) -> Result<(), WireError> {
        self.take(n).map(|_| ())
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Skips a name in place: labels up to the root, or up to a compression pointer (which
    /// ends the name here wherever it points).
    fn skip_name(&mut self) -> Result<(), WireError> {
        loop {
            let len = self.take(1)?[0];
            match len {
                0 => return Ok(()),
                l if l & 0xc0 == 0xc0 => return self.skip(1),
                l if l & 0xc0 == 0 => self.skip(usize::from(l))?,
                _ => return Err(WireError::Malformed),
            }
        }
    }
}

#[cfg(test)]
mod tests;
