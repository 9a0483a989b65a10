//! The access log: one line per request, in the format each configured logger asks for
//! (Envoy's command operators, as text or JSON; see `config::LogFormat`).
//!
//! The request path only formats the line and hands it to a channel; one background thread
//! writes to stdout, batching whatever has queued up into one write. A slow terminal or pipe
//! then slows logging, not requests, and a stuck one costs dropped (and counted) lines.
//!
//! This module knows nothing of the request path's types: it renders a [`LogRecord`] of plain
//! values, which the request's record fills in once, however many loggers there are.

use crate::config::{FormatBody, JsonValue, LogFormat, Operator, Piece};
use http::HeaderValue;
use std::borrow::Cow;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::SystemTime;

/// What a line can say about a request. Empty strings are values the request does not have
/// (printed `-`, or `null` in JSON).
pub struct LogRecord<'a> {
    pub start: SystemTime,
    pub protocol: &'a str,
    /// 0 when no response was sent (the client went away first).
    pub status: u16,
    pub flags: &'a str,
    pub details: &'a str,
    pub transport_failure: &'a str,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// From the start of the request to the last byte of the response.
    pub duration_ms: u64,
    pub upstream_host: &'a str,
    pub upstream_cluster: &'a str,
    pub downstream_local: Option<SocketAddr>,
    pub downstream_remote: SocketAddr,
    pub route_name: &'a str,
    pub grpc_status: Option<u16>,
    pub attempts: u32,
    /// The format's request fields, by slot (`LogFormat::request_fields`).
    pub request: &'a [Option<HeaderValue>],
    /// The format's response headers, by slot (`LogFormat::response_headers`).
    pub response: &'a [Option<HeaderValue>],
}

/// Lines waiting for the writer thread. Past this, while stdout is blocked, lines are dropped
/// and counted rather than queued: a stuck pipe must cost log lines, not memory.
pub const ACCESS_LOG_QUEUE: usize = 4096;

#[derive(Clone)]
pub struct AccessLogWriter {
    tx: mpsc::SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl AccessLogWriter {
    /// Starts the writer thread. Lines go to stdout.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout(), ACCESS_LOG_QUEUE)
    }

    /// Starts a writer thread that writes to `out`, with room for `queue` waiting lines.
    pub fn new(mut out: impl Write + Send + 'static, queue: usize) -> Self {
        let (tx, rx) = mpsc::sync_channel::<String>(queue);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                while let Ok(line) = rx.recv() {
                    let _ = out.write_all(line.as_bytes());
                    for more in rx.try_iter() {
                        let _ = out.write_all(more.as_bytes());
                    }
                    let _ = out.flush();
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the access log thread"));
        AccessLogWriter {
            tx,
            dropped: Arc::default(),
        }
    }

    /// Formats one line and queues it; never waits.
    pub fn log(&self, format: &LogFormat, r: &LogRecord<'_>) {
        let line = render(format, r);
        if let Err(mpsc::TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the queue was full.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A command operator's value for one request.
enum Val<'a> {
    Text(Cow<'a, str>),
    Number(u64),
    Missing,
}

fn text(s: &str) -> Val<'_> {
    if s.is_empty() {
        Val::Missing
    } else {
        Val::Text(Cow::Borrowed(s))
    }
}

fn header<'a>(slots: &'a [Option<HeaderValue>], a: usize, b: Option<usize>) -> Val<'a> {
    let get = |i: usize| slots.get(i).and_then(Option::as_ref);
    match get(a).or_else(|| b.and_then(get)) {
        Some(v) => Val::Text(String::from_utf8_lossy(v.as_bytes())),
        None => Val::Missing,
    }
}

fn value<'a>(op: Operator, r: &'a LogRecord<'_>) -> Val<'a> {
    match op {
        Operator::StartTime => Val::Text(Cow::Owned(
            humantime::format_rfc3339_millis(r.start).to_string(),
        )),
        Operator::Protocol => text(r.protocol),
        Operator::ResponseCode => Val::Number(u64::from(r.status)),
        Operator::ResponseFlags => text(r.flags),
        Operator::ResponseCodeDetails => text(r.details),
        Operator::UpstreamTransportFailureReason => text(r.transport_failure),
        Operator::BytesReceived => Val::Number(r.bytes_received),
        Operator::BytesSent => Val::Number(r.bytes_sent),
        Operator::Duration => Val::Number(r.duration_ms),
        Operator::UpstreamHost => text(r.upstream_host),
        Operator::UpstreamCluster => text(r.upstream_cluster),
        Operator::ConnectionTerminationDetails
        | Operator::UpstreamLocalAddress
        | Operator::RequestedServerName => Val::Missing,
        Operator::DownstreamLocalAddress => r
            .downstream_local
            .map_or(Val::Missing, |a| Val::Text(Cow::Owned(a.to_string()))),
        Operator::DownstreamLocalAddressWithoutPort => r
            .downstream_local
            .map_or(Val::Missing, |a| Val::Text(Cow::Owned(a.ip().to_string()))),
        Operator::DownstreamRemoteAddress => Val::Text(Cow::Owned(r.downstream_remote.to_string())),
        Operator::DownstreamRemoteAddressWithoutPort => {
            Val::Text(Cow::Owned(r.downstream_remote.ip().to_string()))
        }
        Operator::RouteName => text(r.route_name),
        Operator::GrpcStatus => r.grpc_status.map_or(Val::Missing, |s| {
            Val::Text(Cow::Borrowed(grpc_status_name(s)))
        }),
        Operator::GrpcStatusNumber => r
            .grpc_status
            .map_or(Val::Missing, |s| Val::Number(u64::from(s))),
        Operator::UpstreamRequestAttemptCount => Val::Number(u64::from(r.attempts)),
        Operator::Request { a, b } => header(r.request, a, b),
        Operator::Response { a, b } => header(r.response, a, b),
    }
}

/// gRPC's names for its status codes, as Envoy prints `%GRPC_STATUS%`.
fn grpc_status_name(code: u16) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES.get(usize::from(code)).copied().unwrap_or("Unknown")
}

/// At most `max` characters of `s`.
fn truncate(s: &str, max: Option<usize>) -> &str {
    match max.and_then(|m| s.char_indices().nth(m)) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Appends the pieces as text: a missing value is `-` (nothing with `omit_empty_values`).
fn push_text(out: &mut String, pieces: &[Piece], r: &LogRecord<'_>, omit_empty: bool) {
    for piece in pieces {
        match piece {
            Piece::Literal(l) => out.push_str(l),
            Piece::Operator { op, max_len } => match value(*op, r) {
                Val::Text(t) => out.push_str(truncate(&t, *max_len)),
                Val::Number(n) => out.push_str(truncate(&n.to_string(), *max_len)),
                Val::Missing if omit_empty => {}
                Val::Missing => out.push('-'),
            },
        }
    }
}

pub fn render(format: &LogFormat, r: &LogRecord<'_>) -> String {
    match &format.body {
        FormatBody::Text(pieces) => {
            let mut s = String::with_capacity(256);
            push_text(&mut s, pieces, r, format.omit_empty_values);
            s
        }
        FormatBody::Json(fields) => {
            let mut s = json_object(fields, r, format.omit_empty_values).to_string();
            s.push('\n');
            s
        }
    }
}

fn json_object(
    fields: &[(String, JsonValue)],
    r: &LogRecord<'_>,
    omit_empty: bool,
) -> serde_json::Value {
    let mut map = serde_json::Map::with_capacity(fields.len());
    for (key, v) in fields {
        let value = match v {
            JsonValue::Literal(l) => l.clone(),
            JsonValue::Object(o) => json_object(o, r, omit_empty),
            // One operator alone keeps its type, as in Envoy.
            JsonValue::Format(pieces) => match pieces.as_slice() {
                [Piece::Operator { op, max_len }] => match value(*op, r) {
                    Val::Number(n) if max_len.is_none() => serde_json::Value::from(n),
                    Val::Number(n) => truncate(&n.to_string(), *max_len).into(),
                    Val::Text(t) => truncate(&t, *max_len).into(),
                    Val::Missing if omit_empty => continue,
                    Val::Missing => serde_json::Value::Null,
                },
                _ => {
                    let mut s = String::new();
                    push_text(&mut s, pieces, r, omit_empty);
                    if s.is_empty() && omit_empty {
                        continue;
                    }
                    serde_json::Value::String(s)
                }
            },
        };
        map.insert(key.clone(), value);
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ENVOY_DEFAULT_FORMAT, ISTIO_DEFAULT_TEXT_FORMAT};
    use xds_protos::pb::google::protobuf::{value, Struct, Value};

    /// A sink that blocks every write until told to go on, like a stalled pipe.
    struct Stalled(std::sync::Mutex<mpsc::Receiver<()>>);

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.lock().unwrap().recv();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text_format(f: &str) -> LogFormat {
        crate::config::LogFormat::text(f, false).expect("valid format")
    }

    #[test]
    fn a_stalled_output_drops_and_counts_lines_instead_of_queueing_them() {
        let (_go, wait) = mpsc::channel();
        let writer = AccessLogWriter::new(Stalled(std::sync::Mutex::new(wait)), 3);
        let format = text_format(ENVOY_DEFAULT_FORMAT);
        let request = request_values(&format);
        let r = record(&request, &[]);
        // One line is taken by the stalled writer thread (eventually), three wait in the
        // queue; everything past that is dropped.
        for _ in 0..20 {
            writer.log(&format, &r);
        }
        let dropped = writer.dropped_lines();
        assert!((16..=17).contains(&dropped), "{dropped}");
    }

    /// Values for the default formats' request fields: method, original path (absent), path,
    /// x-forwarded-for (absent), user agent, request id, authority.
    fn request_values(format: &LogFormat) -> Vec<Option<HeaderValue>> {
        use crate::config::RequestField;
        format
            .request_fields
            .iter()
            .map(|f| match f {
                RequestField::Method => Some(HeaderValue::from_static("GET")),
                RequestField::Path => Some(HeaderValue::from_static("/reviews/1")),
                RequestField::Authority => Some(HeaderValue::from_static("reviews:9080")),
                RequestField::Header(h) if h == "user-agent" => {
                    Some(HeaderValue::from_static("curl/8"))
                }
                RequestField::Header(h) if h == "x-request-id" => {
                    Some(HeaderValue::from_static("abc"))
                }
                _ => None,
            })
            .collect()
    }

    fn record<'a>(
        request: &'a [Option<HeaderValue>],
        response: &'a [Option<HeaderValue>],
    ) -> LogRecord<'a> {
        LogRecord {
            start: SystemTime::UNIX_EPOCH,
            protocol: "HTTP/1.1",
            status: 503,
            flags: "UH",
            details: "no_healthy_upstream",
            transport_failure: "",
            bytes_received: 0,
            bytes_sent: 19,
            duration_ms: 3,
            upstream_host: "",
            upstream_cluster: "outbound|9080||reviews.default.svc.cluster.local",
            downstream_local: Some("127.0.0.1:15001".parse().unwrap()),
            downstream_remote: "127.0.0.1:40000".parse().unwrap(),
            route_name: "",
            grpc_status: None,
            attempts: 0,
            request,
            response,
        }
    }

    #[test]
    fn envoys_default_format() {
        let format = text_format(ENVOY_DEFAULT_FORMAT);
        let request = request_values(&format);
        assert_eq!(
            render(&format, &record(&request, &[None])),
            "[1970-01-01T00:00:00.000Z] \"GET /reviews/1 HTTP/1.1\" 503 UH 0 19 3 - \"-\" \"curl/8\" \"abc\" \"reviews:9080\" \"-\"\n"
        );
    }

    #[test]
    fn istios_default_format_explains_the_503() {
        let format = text_format(ISTIO_DEFAULT_TEXT_FORMAT);
        let request = request_values(&format);
        assert_eq!(
            render(&format, &record(&request, &[None])),
            "[1970-01-01T00:00:00.000Z] \"GET /reviews/1 HTTP/1.1\" 503 UH no_healthy_upstream - \"-\" 0 19 3 - \"-\" \"curl/8\" \"abc\" \"reviews:9080\" \"-\" outbound|9080||reviews.default.svc.cluster.local - 127.0.0.1:15001 127.0.0.1:40000 - -\n"
        );
    }

    #[test]
    fn lengths_alternatives_and_empty_values() {
        let format = text_format("%REQ(:PATH):4% %RESP(X-A?X-B)% %GRPC_STATUS%");
        let request = [Some(HeaderValue::from_static("/reviews/1"))];
        let response = [None, Some(HeaderValue::from_static("b"))];
        assert_eq!(render(&format, &record(&request, &response)), "/rev b -");
        let mut omit = format.clone();
        omit.omit_empty_values = true;
        assert_eq!(render(&omit, &record(&request, &[None, None])), "/rev  ");
    }

    #[test]
    fn json_keeps_types_and_writes_null_for_missing_values() {
        let s = |v: &str| Value {
            kind: Some(value::Kind::StringValue(v.into())),
        };
        let fields = [
            ("code", s("%RESPONSE_CODE%")),
            ("code_text", s("c=%RESPONSE_CODE%")),
            ("details", s("%RESPONSE_CODE_DETAILS%")),
            ("host", s("%UPSTREAM_HOST%")),
            ("path", s("%REQ(:PATH)%")),
        ];
        let format = crate::config::LogFormat::json(
            &Struct {
                fields: fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            },
            false,
        )
        .expect("valid format");
        let request = [Some(HeaderValue::from_static("/reviews/1"))];
        let line = render(&format, &record(&request, &[]));
        assert!(line.ends_with('\n'));
        assert_eq!(
            line.trim_end(),
            r#"{"code":503,"code_text":"c=503","details":"no_healthy_upstream","host":null,"path":"/reviews/1"}"#
        );
    }
}
