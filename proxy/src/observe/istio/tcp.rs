//! Istio's TCP metrics: `istio_tcp_connections_opened_total`,
//! `istio_tcp_connections_closed_total`, `istio_tcp_sent_bytes_total` and
//! `istio_tcp_received_bytes_total`, with the labels of `istio_requests_total` less the
//! HTTP-only ones (`response_code`, `grpc_response_status`) and `request_protocol="tcp"`, as
//! Istio's stats filter reports a TCP connection.
//!
//! Istio's filter reports a connection's bytes periodically and at its close, each time under
//! the response flags the connection has then: `-` while it is open, its final flags at the
//! close. Weft counts bytes as they flow (a report interval of zero), so they all land under
//! `-`, and only the closing counter carries the flags. The opened counter and both byte
//! counters are registered when the [`TcpMetrics`] is created; a closing flag set is
//! registered the first time a connection closes with it and read from a small map after
//! that, under an uncontended read lock, never by building a label string.

use super::labels::Reporter;
use super::PackedKeyHasher;
use metrics::{Counter, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::PrometheusRecorder;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, PoisonError, RwLock};

pub const CONNECTIONS_OPENED: &str = "istio_tcp_connections_opened_total";
pub const CONNECTIONS_CLOSED: &str = "istio_tcp_connections_closed_total";
pub const SENT_BYTES: &str = "istio_tcp_sent_bytes_total";
pub const RECEIVED_BYTES: &str = "istio_tcp_received_bytes_total";

/// Envoy's `-`: no response flag.
const NO_FLAGS: &str = "-";

pub(super) fn describe(recorder: &PrometheusRecorder) {
    for (name, help) in [
        (CONNECTIONS_OPENED, "TCP connections opened."),
        (CONNECTIONS_CLOSED, "TCP connections closed."),
        (
            SENT_BYTES,
            "Bytes sent to the downstream peer of a TCP connection (the response direction).",
        ),
        (
            RECEIVED_BYTES,
            "Bytes received from the downstream peer of a TCP connection (the request direction).",
        ),
    ] {
        recorder.describe_counter(name.into(), None, help.into());
    }
}

/// The TCP series of one (cluster, workload, reporter), created once and kept across reloads
/// like the cluster's other state. Every method is a counter increment, except a connection's
/// first close with a flag set never seen before, which registers its series.
pub struct TcpMetrics {
    recorder: Arc<PrometheusRecorder>,
    /// Every label up to `destination_cluster`, in Istio's order.
    labels: Vec<Label>,
    security_policy: &'static str,
    opened: Counter,
    sent: Counter,
    received: Counter,
    /// Closing counters by response-flag bits.
    closed: RwLock<HashMap<u64, Counter, BuildHasherDefault<PackedKeyHasher>>>,
}

impl TcpMetrics {
    pub(super) fn new(
        recorder: Arc<PrometheusRecorder>,
        reporter: Reporter,
        labels: Vec<Label>,
    ) -> Self {
        let security_policy = reporter.security_policy();
        let register = |name: &'static str| {
            register_counter(&recorder, name, &labels, NO_FLAGS, security_policy)
        };
        let (opened, sent, received) = (
            register(CONNECTIONS_OPENED),
            register(SENT_BYTES),
            register(RECEIVED_BYTES),
        );
        TcpMetrics {
            opened,
            sent,
            received,
            closed: RwLock::new(HashMap::default()),
            labels,
            security_policy,
            recorder,
        }
    }

    /// A connection was accepted (destination) or is being proxied upstream (source).
    pub fn opened(&self) {
        self.opened.increment(1);
    }

    /// Bytes moved since the last call: `sent` to the downstream peer (what the upstream
    /// answered), `received` from it (what goes upstream). Call it as bytes flow or once at
    /// the close; either way the totals are exact.
    pub fn bytes(&self, sent: u64, received: u64) {
        if sent > 0 {
            self.sent.increment(sent);
        }
        if received > 0 {
            self.received.increment(received);
        }
    }

    /// The connection ended, with Envoy's response flags as a bit set and how to spell a set
    /// for the `response_flags` label (called only the first time that set closes a
    /// connection): pass `ResponseFlags::bits()` and `ResponseFlags::label_of_bits`.
    pub fn closed(&self, flags: u16, flags_label: fn(u16) -> String) {
        let key = u64::from(flags);
        {
            let closed = self.closed.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = closed.get(&key) {
                c.increment(1);
                return;
            }
        }
        // Two threads racing here register the same series twice, which the recorder
        // resolves to one.
        let counter = register_counter(
            &self.recorder,
            CONNECTIONS_CLOSED,
            &self.labels,
            &flags_label(flags),
            self.security_policy,
        );
        counter.increment(1);
        self.closed
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert(counter);
    }
}

fn register_counter(
    recorder: &PrometheusRecorder,
    name: &'static str,
    fixed: &[Label],
    flags: &str,
    security_policy: &'static str,
) -> Counter {
    let mut labels = Vec::with_capacity(fixed.len() + 3);
    labels.extend_from_slice(fixed);
    labels.extend([
        Label::new("request_protocol", "tcp"),
        Label::new("response_flags", flags.to_string()),
        Label::new("connection_security_policy", security_policy),
    ]);
    let meta = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
    recorder.register_counter(&Key::from_parts(name, labels), &meta)
}

#[cfg(test)]
mod tests;
