//! Opening TCP connections to upstream hosts.

use crate::config::{EndpointAddress, TcpKeepalive};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connection timeout")]
    Timeout,
    #[error("connection failure: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Resolve(#[from] super::dns::DnsError),
    #[error("protocol handshake failed: {0}")]
    Handshake(hyper::Error),
    /// The outcome of a connection attempt several requests waited on together.
    #[error(transparent)]
    Shared(std::sync::Arc<ConnectError>),
}

impl ConnectError {
    pub fn is_timeout(&self) -> bool {
        match self {
            ConnectError::Timeout => true,
            ConnectError::Shared(e) => e.is_timeout(),
            _ => false,
        }
    }
}

pub async fn connect(
    address: &EndpointAddress,
    timeout: Duration,
    keepalive: Option<TcpKeepalive>,
) -> Result<TcpStream, ConnectError> {
    connect_from(address, None, timeout, keepalive).await
}

/// [`connect`] from the local address `source` (`upstream_bind_config`), when given.
pub async fn connect_from(
    address: &EndpointAddress,
    source: Option<IpAddr>,
    timeout: Duration,
    keepalive: Option<TcpKeepalive>,
) -> Result<TcpStream, ConnectError> {
    let attempt = async {
        let addr = match address {
            EndpointAddress::Socket(addr) => *addr,
            EndpointAddress::Dns { host, port } => {
                // The name's last good addresses, refreshed off the request path (see `dns`).
                super::dns::global().lookup(host, *port).await?
            }
        };
        let stream = match source {
            None => TcpStream::connect(addr).await?,
            Some(source) => {
                let socket = match addr {
                    SocketAddr::V4(_) => TcpSocket::new_v4()?,
                    SocketAddr::V6(_) => TcpSocket::new_v6()?,
                };
                socket.bind(SocketAddr::new(source, 0))?;
                socket.connect(addr).await?
            }
        };
        // Requests are small and latency matters more than packet count.
        stream.set_nodelay(true)?;
        if let Some(k) = keepalive {
            set_keepalive(&stream, k)?;
        }
        Ok::<_, ConnectError>(stream)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

/// `upstream_connection_options.tcp_keepalive`: what is unset keeps the system's value.
fn set_keepalive(stream: &TcpStream, k: TcpKeepalive) -> std::io::Result<()> {
    let mut ka = socket2::TcpKeepalive::new();
    if let Some(t) = k.time {
        ka = ka.with_time(t);
    }
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        if let Some(i) = k.interval {
            ka = ka.with_interval(i);
        }
        if let Some(p) = k.probes {
            ka = ka.with_retries(p);
        }
    }
    socket2::SockRef::from(stream).set_tcp_keepalive(&ka)
}
