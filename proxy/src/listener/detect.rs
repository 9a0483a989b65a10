//! What a new connection speaks, from its first bytes — Envoy's `tls_inspector` and
//! `http_inspector` listener filters: TLS (with the ClientHello's server name and ALPN list),
//! HTTP/2 with prior knowledge (the connection preface), HTTP/1.x (a request line), or
//! anything else (opaque TCP).
//!
//! The bytes are read, not peeked: waiting for "more than what is there" with `peek` would spin.
//! They are handed on in front of the connection ([`Prefixed`]), so whatever serves it next
//! reads the stream from its first byte. Reading stops as soon as the answer is known, at a
//! size cap, or at the timeout (a client that waits for the server to speak first, as MySQL
//! and SMTP clients do, is opaque TCP once the timeout passes).

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::downstream::Prefixed;

/// Enough for any ClientHello Envoy's inspector accepts, and far more than a request line.
const MAX_INSPECT: usize = 16 * 1024 + 5;
/// How long inspection with no timeout configured waits: the TCP proxy's default idle timeout.
pub const UNBOUNDED_INSPECTION_CAP: Duration = crate::config::DEFAULT_TCP_IDLE_TIMEOUT;
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    Tls {
        server_name: Option<String>,
        alpn: Vec<String>,
    },
    /// HTTP/2 prior knowledge: `h2c` in Envoy's application protocols.
    Http2,
    /// HTTP/1.0 or 1.1: `http/1.0` or `http/1.1`.
    Http1 {
        minor: u8,
    },
    Opaque,
}

impl Detected {
    /// Envoy's `transport_protocol` for filter chain matching.
    pub fn transport_protocol(&self) -> &'static str {
        match self {
            Detected::Tls { .. } => "tls",
            _ => "raw_buffer",
        }
    }

    /// Envoy's `application_protocols` for filter chain matching.
    pub fn application_protocols(&self) -> Vec<String> {
        match self {
            Detected::Tls { alpn, .. } => alpn.clone(),
            Detected::Http2 => vec!["h2c".into()],
            Detected::Http1 { minor: 0 } => vec!["http/1.0".into()],
            Detected::Http1 { .. } => vec!["http/1.1".into()],
            Detected::Opaque => Vec::new(),
        }
    }

    pub fn server_name(&self) -> Option<&str> {
        match self {
            Detected::Tls { server_name, .. } => server_name.as_deref(),
            _ => None,
        }
    }
}

/// Which inspectors run: what is not asked for is not waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspect {
    /// `tls_inspector`: a ClientHello is read for its SNI and ALPN.
    pub tls: bool,
    /// `http_inspector`: a plaintext connection's request line or HTTP/2 preface is read.
    pub http: bool,
}

/// What the inspectors found, and the connection with the bytes they read put back.
pub struct Inspection<T> {
    pub detected: Detected,
    /// The client sent too little to decide before the timeout (a server-first protocol).
    pub timed_out: bool,
    pub io: Prefixed<T>,
}

/// Reads from `io` until the protocol is known, `timeout` passes, the peer stops sending, or
/// [`MAX_INSPECT`] bytes are in.
pub async fn detect<T: AsyncRead + Unpin>(
    mut io: T,
    inspect: Inspect,
    timeout: Option<Duration>,
) -> Inspection<T> {
    let mut buf = Vec::with_capacity(1024);
    // `None` is Envoy's "no timeout" (Istio's default): a client that never speaks costs what an
    // idle TCP connection would, then is treated as a server-first protocol.
    let deadline = tokio::time::Instant::now() + timeout.unwrap_or(UNBOUNDED_INSPECTION_CAP);
    let mut timed_out = false;
    let detected = loop {
        match classify_for(&buf, inspect) {
            Verdict::Known(d) => break d,
            Verdict::NeedMore if buf.len() < MAX_INSPECT => {}
            Verdict::NeedMore => break Detected::Opaque,
        }
        let mut chunk = [0u8; 2048];
        let room = (MAX_INSPECT - buf.len()).min(chunk.len());
        match tokio::time::timeout_at(deadline, io.read(&mut chunk[..room])).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            // Closed or failed: what we have is all there is to judge by.
            Ok(_) => break final_verdict(&buf, inspect),
            Err(_) => {
                timed_out = true;
                break final_verdict(&buf, inspect);
            }
        }
    };
    Inspection {
        detected,
        timed_out,
        io: Prefixed::new(buf, io),
    }
}

/// [`classify`], limited to the inspectors that run.
fn classify_for(buf: &[u8], inspect: Inspect) -> Verdict {
    let Some(&first) = buf.first() else {
        return Verdict::NeedMore;
    };
    let looks_tls = first == 0x16;
    if (looks_tls && !inspect.tls) || (!looks_tls && !inspect.http) {
        return Verdict::Known(Detected::Opaque);
    }
    classify(buf)
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Known(Detected),
    NeedMore,
}

/// When no more bytes will come: HTTP/1 needs a whole request line, TLS a whole ClientHello.
fn final_verdict(buf: &[u8], inspect: Inspect) -> Detected {
    match classify_for(buf, inspect) {
        Verdict::Known(d) => d,
        Verdict::NeedMore => Detected::Opaque,
    }
}

fn classify(buf: &[u8]) -> Verdict {
    if buf.is_empty() {
        return Verdict::NeedMore;
    }
    if buf[0] == 0x16 {
        return tls(buf);
    }
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return if n == H2_PREFACE.len() {
            Verdict::Known(Detected::Http2)
        } else {
            Verdict::NeedMore
        };
    }
    http1(buf)
}

/// A request line: `TOKEN SP target SP HTTP/1.x CRLF`.
fn http1(buf: &[u8]) -> Verdict {
    let method_len = buf.iter().take_while(|b| is_tchar(**b)).count();
    if method_len == buf.len() {
        // Still inside the method (or nothing else yet); give up on absurd lengths.
        return if method_len < 32 {
            Verdict::NeedMore
        } else {
            Verdict::Known(Detected::Opaque)
        };
    }
    if method_len == 0 || buf[method_len] != b' ' {
        return Verdict::Known(Detected::Opaque);
    }
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Verdict::NeedMore;
    };
    let line = &buf[..eol];
    match line.rsplit(|b| *b == b' ').next() {
        Some(b"HTTP/1.1") => Verdict::Known(Detected::Http1 { minor: 1 }),
        Some(b"HTTP/1.0") => Verdict::Known(Detected::Http1 { minor: 0 }),
        _ => Verdict::Known(Detected::Opaque),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A TLS record holding a ClientHello: its server name and ALPN protocols.
fn tls(buf: &[u8]) -> Verdict {
    if buf.len() < 5 {
        return Verdict::NeedMore;
    }
    // content type 22 (handshake), a 3.x record version.
    if buf[1] != 3 {
        return Verdict::Known(Detected::Opaque);
    }
    let record_len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if buf.len() < 5 + record_len {
        return Verdict::NeedMore;
    }
    match client_hello(&buf[5..5 + record_len]) {
        Some((server_name, alpn)) => Verdict::Known(Detected::Tls { server_name, alpn }),
        // A handshake record that is not a readable ClientHello is still TLS.
        None => Verdict::Known(Detected::Tls {
            server_name: None,
            alpn: Vec::new(),
        }),
    }
}

/// Reads big-endian fields off a byte slice; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn client_hello(handshake: &[u8]) -> Option<(Option<String>, Vec<String>)> {
    let mut r = Reader(handshake);
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let len = r.take(3)?;
    let len = (usize::from(len[0]) << 16) | (usize::from(len[1]) << 8) | usize::from(len[2]);
    let mut r = Reader(r.take(len)?);
    r.take(2 + 32)?; // client version, random
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    let mut server_name = None;
    let mut alpn = Vec::new();
    let mut exts = Reader(r.vec16().unwrap_or_default());
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let mut body = Reader(exts.vec16()?);
        match kind {
            0 => {
                let mut names = Reader(body.vec16()?);
                while !names.0.is_empty() {
                    let name_type = names.u8()?;
                    let name = names.vec16()?;
                    if name_type == 0 {
                        server_name = std::str::from_utf8(name).ok().map(str::to_ascii_lowercase);
                    }
                }
            }
            16 => {
                let mut list = Reader(body.vec16()?);
                while !list.0.is_empty() {
                    if let Ok(p) = std::str::from_utf8(list.vec8()?) {
                        alpn.push(p.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Some((server_name, alpn))
}

#[cfg(test)]
mod tests;
