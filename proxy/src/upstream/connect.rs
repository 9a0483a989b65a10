//! Opening TCP connections to upstream hosts.

use crate::config::EndpointAddress;
use std::time::Duration;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connection timeout")]
    Timeout,
    #[error("connection failure: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("protocol handshake failed: {0}")]
    Handshake(hyper::Error),
}

pub async fn connect(
    address: &EndpointAddress,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let attempt = async {
        let stream = match address {
            EndpointAddress::Socket(addr) => TcpStream::connect(addr).await?,
            EndpointAddress::Dns { host, port } => {
                // Resolved per connection: a DNS cluster follows its name's records as they
                // change, without a resolver cache of our own.
                let mut addrs = tokio::net::lookup_host((host.as_str(), *port)).await?;
                let addr = addrs
                    .next()
                    .ok_or_else(|| ConnectError::Resolve(host.clone()))?;
                TcpStream::connect(addr).await?
            }
        };
        // Requests are small and latency matters more than packet count.
        stream.set_nodelay(true)?;
        Ok::<_, ConnectError>(stream)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ConnectError::Timeout)?
}
