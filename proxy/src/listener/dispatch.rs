//! From an accepted socket to what serves it, in Envoy's order: recover the original
//! destination (`original_dst`, `use_original_dst`), hand the connection to the listener for
//! that destination, run that listener's inspectors (`tls_inspector`, `http_inspector`), pick
//! its filter chain by `filter_chain_match`, run the chain's `connection_limit` filters, and give
//! the connection to the chain's HTTP connection manager or TCP proxy.
//!
//! The snapshot is read once per connection: a connection keeps the chain it was given for its
//! whole life, as in Envoy, while routes (RDS) and clusters are still read per request.

use super::detect::{detect, Detected, Inspect, Inspection};
use super::original_dst::original_destination;
use crate::config::filter_chain_match::Connection;
use crate::config::{ChainAction, ListenerConfig};
use crate::downstream::{DownstreamConnection, OpenConnection, Prefixed};
use crate::snapshot::Snapshot;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tracing::debug;

/// Serves a connection accepted by the listener named `accepted_by` until it ends.
pub async fn serve_accepted(
    open: OpenConnection,
    accepted_by: Arc<str>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let snapshot = open.ctx().snapshot.load_full();
    let Some(accepting) = snapshot.listeners.get(&*accepted_by).cloned() else {
        // Removed by an update between the accept and now.
        return;
    };
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let original_dst = if accepting.use_original_dst
        || accepting
            .listener_filters
            .original_dst_enabled(local.port())
    {
        original_destination(&stream).unwrap_or_else(|e| {
            debug!(listener = %accepted_by, %peer, error = %e, "cannot read the original destination");
            None
        })
    } else {
        None
    };
    let destination = original_dst.unwrap_or(local);
    let listener = match original_dst {
        Some(dst) if accepting.use_original_dst => handoff_target(&snapshot, &accepting, dst),
        _ => accepting,
    };
    let port = destination.port();
    let inspect = Inspect {
        tls: listener.listener_filters.tls_enabled(port),
        http: listener.listener_filters.http_enabled(port),
    };
    let inspection = if inspect.tls || inspect.http {
        detect(stream, inspect, listener.listener_filters.timeout).await
    } else {
        Inspection {
            detected: Detected::Opaque,
            timed_out: false,
            io: Prefixed::new(Vec::new(), stream),
        }
    };
    if inspection.timed_out
        && listener.listener_filters.timeout.is_some()
        && !listener.listener_filters.continue_on_timeout
    {
        debug!(listener = %listener.name, %peer, "listener filters timed out, closing the connection");
        return;
    }
    let found = &inspection.detected;
    let application_protocols = match found {
        Detected::Tls { .. } if inspect.tls => found.application_protocols(),
        Detected::Http1 { .. } | Detected::Http2 if inspect.http => found.application_protocols(),
        _ => Vec::new(),
    };
    let conn = Connection {
        destination,
        source: peer,
        direct_source: peer,
        server_name: found.server_name().filter(|_| inspect.tls),
        transport_protocol: if inspect.tls {
            found.transport_protocol()
        } else {
            "raw_buffer"
        },
        application_protocols: &application_protocols,
    };
    let Some(chain) = listener.chain_for(&conn).cloned() else {
        // Envoy closes it and counts `no_filter_chain_match`.
        debug!(listener = %listener.name, %peer, %destination, "no filter chain matches, closing the connection");
        return;
    };
    let Some(_admitted) = super::limit::admit(open.ctx(), &listener.name, &chain, peer).await
    else {
        return;
    };
    let downstream = DownstreamConnection {
        listener: Arc::from(listener.name.as_str()),
        peer,
        local: destination,
        original_dst,
        inbound: listener.inbound,
    };
    match &chain.action {
        ChainAction::Http(hcm) => {
            crate::http::serve_http(open, hcm.clone(), inspection.io, downstream).await
        }
        ChainAction::Tcp(tcp) => {
            crate::tcp::serve_connection(open, tcp.clone(), inspection.io, downstream).await
        }
    }
}

/// `use_original_dst`: the listener whose address is the original destination, else the one on
/// the wildcard address of its family and port, else the accepting listener itself.
fn handoff_target(
    snapshot: &Snapshot,
    accepting: &Arc<ListenerConfig>,
    dst: SocketAddr,
) -> Arc<ListenerConfig> {
    snapshot
        .listener_at(dst)
        .filter(|l| l.name != accepting.name)
        .cloned()
        .unwrap_or_else(|| accepting.clone())
}
