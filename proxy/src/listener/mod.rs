//! Listeners: bind the addresses that LDS names, accept connections, and hand each to what its
//! filter chain says (see `dispatch`). A listener with `bind_to_port: false` binds nothing: it
//! only serves connections a `use_original_dst` listener hands to it.
//!
//! Binding happens while an LDS update is being validated, so an address that cannot be bound
//! makes the update's NACK, not a silent gap. A listener removed by LDS stops accepting; the
//! connections it already accepted finish on their own.

mod accept;
pub mod detect;
mod dispatch;
pub mod fd_limit;
mod limit;
mod original_dst;

pub use dispatch::serve_accepted;

use crate::config::ListenerConfig;
use crate::context::ProxyContext;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

struct Bound {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

pub struct ListenerManager {
    ctx: Arc<ProxyContext>,
    bound: HashMap<String, Bound>,
}

impl ListenerManager {
    pub fn new(ctx: Arc<ProxyContext>) -> Self {
        ListenerManager {
            ctx,
            bound: HashMap::new(),
        }
    }

    /// Binds every listener not yet bound at its address, and stops the ones that are gone or
    /// moved. Returns a reason for each listener that could not be bound.
    pub fn reconcile(&mut self, listeners: &BTreeMap<String, Arc<ListenerConfig>>) -> Vec<String> {
        let mut errors = Vec::new();
        self.bound.retain(|name, b| {
            let keep = listeners
                .get(name)
                .is_some_and(|l| l.binds() == Some(b.addr));
            if !keep {
                info!(listener = %name, addr = %b.addr, "listener removed, no longer accepting");
                let _ = b.stop.send(true);
            }
            keep
        });
        for (name, cfg) in listeners {
            let Some(addr) = cfg.binds() else { continue };
            if self.bound.contains_key(name) {
                continue;
            }
            match bind(addr) {
                Ok(listener) => {
                    let (stop, stop_rx) = watch::channel(false);
                    info!(listener = %name, %addr, "listening");
                    let accept = accept::AcceptLoop {
                        ctx: self.ctx.clone(),
                        name: Arc::from(name.as_str()),
                        listener,
                        stats: self.ctx.listener_stats.for_address(addr),
                    };
                    tokio::spawn(accept.run(stop_rx));
                    self.bound.insert(name.clone(), Bound { addr, stop });
                }
                Err(e) => {
                    warn!(listener = %name, %addr, error = %e, "cannot bind listener");
                    errors.push(format!("Listener {name}: address: cannot bind {addr}: {e}"));
                }
            }
        }
        errors
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // A restarted proxy must be able to bind again while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests;
