//! Trace context on the wire: W3C Trace Context (`traceparent`, `tracestate`) and Zipkin's B3
//! (the `x-b3-*` headers and the single `b3` header).
//!
//! Extraction prefers a valid `traceparent`, then `b3`, then the `x-b3-*` set; a malformed
//! header counts as absent, and a `tracestate` without a valid `traceparent` is dropped, as the
//! W3C spec asks. Injection always writes `traceparent` (with the proxy's span as parent) and
//! rewrites whichever B3 form the request came with, so B3-only applications downstream keep
//! their trace. 64-bit B3 trace ids are widened to 128 bits with leading zeros for W3C and
//! OpenTelemetry, and written back in their original width.

use http::{HeaderMap, HeaderName, HeaderValue};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub static B3: HeaderName = HeaderName::from_static("b3");
pub static X_B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub static X_B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub static X_B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub static X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub static X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Which propagation format an incoming context came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    W3c,
    B3Single,
    B3Multi,
}

/// What an incoming request says about its trace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Incoming {
    /// The trace and the caller's span, when the request carries both.
    pub parent: Option<Parent>,
    /// The caller's sampling decision, when it made one.
    pub sampled: Option<bool>,
    /// The B3 form the request used, so the same form goes upstream.
    pub b3: Option<B3Form>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: u128,
    pub span_id: u64,
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct B3Form {
    pub single: bool,
    /// The trace id was 64 bits wide.
    pub short_trace_id: bool,
    /// `x-b3-flags: 1` or `b3: …-d`: debug, which implies sampled.
    pub debug: bool,
}

/// Reads the trace context of a request.
pub fn extract(headers: &HeaderMap) -> Incoming {
    if let Some(parent) = headers
        .get(&TRACEPARENT)
        .and_then(|v| parse_traceparent(v.as_bytes()))
    {
        return Incoming {
            parent: Some(parent.0),
            sampled: Some(parent.1),
            b3: b3_form_only(headers),
        };
    }
    if let Some(found) = headers.get(&B3).and_then(|v| parse_b3_single(v.as_bytes())) {
        return found;
    }
    parse_b3_multi(headers).unwrap_or_default()
}

/// What the proxy sends upstream: its own span as the parent of whatever comes next.
pub struct Outgoing {
    pub trace_id: u128,
    pub span_id: u64,
    /// The span the proxy's span is a child of (written as B3's parent span id).
    pub parent_span_id: Option<u64>,
    pub sampled: bool,
    pub b3: Option<B3Form>,
}

/// Writes the proxy's context into the request headers that go upstream.
pub fn inject(headers: &mut HeaderMap, out: &Outgoing) {
    let flags = if out.sampled { "01" } else { "00" };
    let traceparent = format!("00-{:032x}-{:016x}-{flags}", out.trace_id, out.span_id);
    if let Ok(v) = HeaderValue::from_str(&traceparent) {
        headers.insert(TRACEPARENT.clone(), v);
    }
    let Some(b3) = out.b3 else {
        return;
    };
    let trace_id = if b3.short_trace_id && out.trace_id >> 64 == 0 {
        format!("{:016x}", out.trace_id)
    } else {
        format!("{:032x}", out.trace_id)
    };
    let span_id = format!("{:016x}", out.span_id);
    let sampling = match (b3.debug, out.sampled) {
        (true, _) => "d",
        (false, true) => "1",
        (false, false) => "0",
    };
    if b3.single {
        let mut v = format!("{trace_id}-{span_id}-{sampling}");
        if let Some(p) = out.parent_span_id {
            v.push_str(&format!("-{p:016x}"));
        }
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(B3.clone(), v);
        }
        return;
    }
    set(headers, &X_B3_TRACE_ID, &trace_id);
    set(headers, &X_B3_SPAN_ID, &span_id);
    match out.parent_span_id {
        Some(p) => set(headers, &X_B3_PARENT_SPAN_ID, &format!("{p:016x}")),
        None => {
            headers.remove(&X_B3_PARENT_SPAN_ID);
        }
    }
    if b3.debug {
        set(headers, &X_B3_FLAGS, "1");
        headers.remove(&X_B3_SAMPLED);
    } else {
        set(headers, &X_B3_SAMPLED, if out.sampled { "1" } else { "0" });
    }
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name.clone(), v);
    }
}

/// `version-traceid-parentid-flags`. Version 00 has exactly four fields; a later version may
/// append fields after another `-`, and `ff` is invalid. All-zero ids are invalid.
fn parse_traceparent(v: &[u8]) -> Option<(Parent, bool)> {
    if v.len() < 55 {
        return None;
    }
    let version = hex_u64(&v[0..2])?;
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let trace_id = hex_u128(&v[3..35])?;
    let span_id = hex_u64(&v[36..52])?;
    let flags = hex_u64(&v[53..55])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some((
        Parent {
            trace_id,
            span_id,
            format: Format::W3c,
        },
        flags & 1 == 1,
    ))
}

/// `b3: {trace}-{span}[-{sampling}[-{parent}]]`, or a bare sampling state `0`, `1` or `d`.
fn parse_b3_single(v: &[u8]) -> Option<Incoming> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let form = |short, debug| {
        Some(B3Form {
            single: true,
            short_trace_id: short,
            debug,
        })
    };
    if let Some(sampled) = sampling_state(v) {
        return Some(Incoming {
            parent: None,
            sampled: Some(sampled.0),
            b3: form(false, sampled.1),
        });
    }
    let mut parts = v.split('-');
    let (trace, short) = b3_trace_id(parts.next()?)?;
    let span = b3_span_id(parts.next()?)?;
    let sampling = match parts.next() {
        None => None,
        Some(s) => Some(sampling_state(s)?),
    };
    if let Some(parent) = parts.next() {
        b3_span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Incoming {
        parent: Some(Parent {
            trace_id: trace,
            span_id: span,
            format: Format::B3Single,
        }),
        sampled: sampling.map(|s| s.0),
        b3: form(short, sampling.is_some_and(|s| s.1)),
    })
}

fn parse_b3_multi(h: &HeaderMap) -> Option<Incoming> {
    let get = |n: &HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let debug = get(&X_B3_FLAGS) == Some("1");
    let sampled = match get(&X_B3_SAMPLED) {
        Some("1") | Some("true") => Some(true),
        Some("0") | Some("false") => Some(false),
        _ => None,
    };
    let sampled = if debug { Some(true) } else { sampled };
    let ids = match (get(&X_B3_TRACE_ID), get(&X_B3_SPAN_ID)) {
        (Some(t), Some(s)) => Some((b3_trace_id(t)?, b3_span_id(s)?)),
        _ => None,
    };
    if ids.is_none() && sampled.is_none() {
        return None;
    }
    Some(Incoming {
        parent: ids.map(|((trace_id, _), span_id)| Parent {
            trace_id,
            span_id,
            format: Format::B3Multi,
        }),
        sampled,
        b3: Some(B3Form {
            single: false,
            short_trace_id: ids.is_some_and(|((_, short), _)| short),
            debug,
        }),
    })
}

/// The B3 form of a request that also carries a valid `traceparent`, so both stay in step.
fn b3_form_only(h: &HeaderMap) -> Option<B3Form> {
    if let Some(i) = h.get(&B3).and_then(|v| parse_b3_single(v.as_bytes())) {
        return i.b3;
    }
    parse_b3_multi(h).and_then(|i| i.b3)
}

/// `(sampled, debug)` of a B3 sampling state.
fn sampling_state(s: &str) -> Option<(bool, bool)> {
    match s {
        "0" => Some((false, false)),
        "1" => Some((true, false)),
        "d" => Some((true, true)),
        _ => None,
    }
}

fn b3_trace_id(s: &str) -> Option<(u128, bool)> {
    let id = match s.len() {
        16 => (u128::from(hex_u64(s.as_bytes())?), true),
        32 => (hex_u128(s.as_bytes())?, false),
        _ => return None,
    };
    (id.0 != 0).then_some(id)
}

fn b3_span_id(s: &str) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    hex_u64(s.as_bytes()).filter(|id| *id != 0)
}

/// Lowercase hex only: W3C forbids uppercase, and B3 ids are written lowercase.
fn hex_u128(s: &[u8]) -> Option<u128> {
    if s.len() > 32 {
        return None;
    }
    s.iter()
        .try_fold(0u128, |acc, &b| Some(acc << 4 | u128::from(hex_digit(b)?)))
}

fn hex_u64(s: &[u8]) -> Option<u64> {
    if s.len() > 16 {
        return None;
    }
    s.iter()
        .try_fold(0u64, |acc, &b| Some(acc << 4 | u64::from(hex_digit(b)?)))
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
