//! The destination a connection had before iptables redirected it to the proxy
//! (`SO_ORIGINAL_DST`, and its IPv6 twin), as Envoy's `original_dst` listener filter and
//! `use_original_dst` read it.

use std::io;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// The original destination, or `None` when the connection was not redirected (it reached the
/// listener's own address, or the kernel has no NAT record of it).
pub fn original_destination(stream: &TcpStream) -> io::Result<Option<SocketAddr>> {
    let local = stream.local_addr()?;
    let sock = socket2::SockRef::from(stream);
    let recovered = match local {
        SocketAddr::V4(_) => sock.original_dst(),
        SocketAddr::V6(_) => sock.original_dst_ipv6(),
    };
    match recovered {
        Ok(addr) => Ok(addr.as_socket().filter(|dst| *dst != local)),
        // No conntrack entry (the connection was not NATed, or conntrack is not loaded).
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOPROTOOPT)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_that_was_not_redirected_has_no_original_destination() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        assert_eq!(original_destination(&server).unwrap(), None);
    }
}
