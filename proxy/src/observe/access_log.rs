//! The access log: one line per request, in Envoy's default text format or as JSON.
//!
//! The request path only formats the line and hands it to a channel; one background thread
//! writes to stdout, batching whatever has queued up into one write. A slow terminal or pipe
//! then slows logging, not requests.

use crate::config::AccessLogFormat;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::SystemTime;

/// What one line says about a request.
pub struct LogRecord<'a> {
    pub start: SystemTime,
    pub method: &'a str,
    pub path: &'a str,
    pub protocol: &'a str,
    pub status: u16,
    pub flags: &'a str,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration_ms: u128,
    pub upstream_service_time_ms: Option<u128>,
    pub forwarded_for: &'a str,
    pub user_agent: &'a str,
    pub request_id: &'a str,
    pub authority: &'a str,
    pub upstream_host: &'a str,
    pub upstream_cluster: &'a str,
    pub route_name: &'a str,
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

    pub fn log(&self, format: AccessLogFormat, r: &LogRecord<'_>) {
        let line = match format {
            AccessLogFormat::EnvoyDefault => envoy_default(r),
            AccessLogFormat::Json => json(r),
        };
        if let Err(mpsc::TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the queue was full.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// Envoy's default format: start time, request line, code, flags, bytes, duration, upstream
/// service time, x-forwarded-for, user agent, request id, authority, upstream host.
pub fn envoy_default(r: &LogRecord<'_>) -> String {
    let mut s = String::with_capacity(256);
    let ust = r
        .upstream_service_time_ms
        .map_or_else(|| "-".to_string(), |v| v.to_string());
    let _ = writeln!(
        s,
        "[{}] \"{} {} {}\" {} {} {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\"",
        humantime::format_rfc3339_millis(r.start),
        r.method,
        r.path,
        r.protocol,
        r.status,
        r.flags,
        r.bytes_received,
        r.bytes_sent,
        r.duration_ms,
        ust,
        dash(r.forwarded_for),
        dash(r.user_agent),
        dash(r.request_id),
        dash(r.authority),
        dash(r.upstream_host),
    );
    s
}

pub fn json(r: &LogRecord<'_>) -> String {
    let v = serde_json::json!({
        "start_time": humantime::format_rfc3339_millis(r.start).to_string(),
        "method": r.method,
        "path": r.path,
        "protocol": r.protocol,
        "response_code": r.status,
        "response_flags": r.flags,
        "bytes_received": r.bytes_received,
        "bytes_sent": r.bytes_sent,
        "duration": r.duration_ms as u64,
        "upstream_service_time": r.upstream_service_time_ms.map(|v| v as u64),
        "x_forwarded_for": r.forwarded_for,
        "user_agent": r.user_agent,
        "request_id": r.request_id,
        "authority": r.authority,
        "upstream_host": r.upstream_host,
        "upstream_cluster": r.upstream_cluster,
        "route_name": r.route_name,
    });
    let mut s = v.to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_stalled_output_drops_and_counts_lines_instead_of_queueing_them() {
        let (_go, wait) = mpsc::channel();
        let writer = AccessLogWriter::new(Stalled(std::sync::Mutex::new(wait)), 3);
        let r = record();
        // One line is taken by the stalled writer thread (eventually), three wait in the
        // queue; everything past that is dropped.
        for _ in 0..20 {
            writer.log(AccessLogFormat::EnvoyDefault, &r);
        }
        let dropped = writer.dropped_lines();
        assert!((16..=17).contains(&dropped), "{dropped}");
    }

    fn record() -> LogRecord<'static> {
        LogRecord {
            start: SystemTime::UNIX_EPOCH,
            method: "GET",
            path: "/reviews/1",
            protocol: "HTTP/1.1",
            status: 503,
            flags: "UH",
            bytes_received: 0,
            bytes_sent: 19,
            duration_ms: 3,
            upstream_service_time_ms: None,
            forwarded_for: "",
            user_agent: "curl/8",
            request_id: "abc",
            authority: "reviews:9080",
            upstream_host: "",
            upstream_cluster: "outbound|9080||reviews.default.svc.cluster.local",
            route_name: "",
        }
    }

    #[test]
    fn default_format_matches_envoys_shape() {
        assert_eq!(
            envoy_default(&record()),
            "[1970-01-01T00:00:00.000Z] \"GET /reviews/1 HTTP/1.1\" 503 UH 0 19 3 - \"-\" \"curl/8\" \"abc\" \"reviews:9080\" \"-\"\n"
        );
    }

    #[test]
    fn json_format_has_the_fields() {
        let v: serde_json::Value = serde_json::from_str(json(&record()).trim()).unwrap();
        assert_eq!(v["response_code"], 503);
        assert_eq!(v["response_flags"], "UH");
        assert_eq!(v["authority"], "reviews:9080");
    }
}
