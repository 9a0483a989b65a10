//! Copies bytes both ways between two connections until both directions have ended, or until
//! neither side has sent anything for the idle timeout.
//!
//! A half-close is passed on: when one side finishes sending, the other side's write half is
//! shut down and the opposite direction keeps flowing (a client that sends a request and then
//! `shutdown(SHUT_WR)` still gets its whole answer). The idle timer covers writes too, so a
//! peer that stops reading cannot hold the relay forever.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

const BUFFER: usize = 16 * 1024;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Bytes from the downstream (client) side to the upstream.
    pub downstream_to_upstream: u64,
    /// Bytes from the upstream to the downstream.
    pub upstream_to_downstream: u64,
    pub end: RelayEnd,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both sides finished sending.
    #[default]
    Closed,
    /// Nothing moved for the idle timeout.
    IdleTimeout,
    /// A read or write failed (reset by a peer, most often).
    Error,
}

pub async fn relay<D, U>(downstream: D, upstream: U, idle: Option<Duration>) -> Relayed
where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut d_read, mut d_write) = tokio::io::split(downstream);
    let (mut u_read, mut u_write) = tokio::io::split(upstream);
    let mut d_buf = vec![0u8; BUFFER];
    let mut u_buf = vec![0u8; BUFFER];
    let mut out = Relayed::default();
    let (mut d_open, mut u_open) = (true, true);
    // Far enough to never fire when there is no idle timeout.
    let idle = idle.unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600));
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);

    while d_open || u_open {
        tokio::select! {
            r = d_read.read(&mut d_buf), if d_open => match r {
                Ok(0) => {
                    d_open = false;
                    let _ = u_write.shutdown().await;
                }
                Ok(n) => {
                    timer.as_mut().reset(Instant::now() + idle);
                    match tokio::time::timeout(idle, u_write.write_all(&d_buf[..n])).await {
                        Ok(Ok(())) => out.downstream_to_upstream += n as u64,
                        Ok(Err(_)) => { out.end = RelayEnd::Error; break; }
                        Err(_) => { out.end = RelayEnd::IdleTimeout; break; }
                    }
                }
                Err(_) => { out.end = RelayEnd::Error; break; }
            },
            r = u_read.read(&mut u_buf), if u_open => match r {
                Ok(0) => {
                    u_open = false;
                    let _ = d_write.shutdown().await;
                }
                Ok(n) => {
                    timer.as_mut().reset(Instant::now() + idle);
                    match tokio::time::timeout(idle, d_write.write_all(&u_buf[..n])).await {
                        Ok(Ok(())) => out.upstream_to_downstream += n as u64,
                        Ok(Err(_)) => { out.end = RelayEnd::Error; break; }
                        Err(_) => { out.end = RelayEnd::IdleTimeout; break; }
                    }
                }
                Err(_) => { out.end = RelayEnd::Error; break; }
            },
            () = &mut timer => { out.end = RelayEnd::IdleTimeout; break; }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn bytes_flow_both_ways_and_a_half_close_is_passed_on() {
        let (client, proxy_down) = duplex(64);
        let (proxy_up, server) = duplex(64);
        let relay = tokio::spawn(relay(proxy_down, proxy_up, Some(Duration::from_secs(5))));
        let (mut c_read, mut c_write) = tokio::io::split(client);
        let (mut s_read, mut s_write) = tokio::io::split(server);
        c_write.write_all(b"request").await.unwrap();
        c_write.shutdown().await.unwrap();
        let mut got = Vec::new();
        s_read.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        // The server answers after the client's half-close, and the answer still arrives.
        let reader = tokio::spawn(async move {
            let mut answer = Vec::new();
            c_read.read_to_end(&mut answer).await.unwrap();
            answer.len()
        });
        s_write.write_all(&vec![7u8; 100_000]).await.unwrap();
        s_write.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), 100_000);
        let done = relay.await.unwrap();
        assert_eq!(
            done,
            Relayed {
                downstream_to_upstream: 7,
                upstream_to_downstream: 100_000,
                end: RelayEnd::Closed
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_at_the_idle_timeout() {
        let (client, proxy_down) = duplex(64);
        let (proxy_up, _server) = duplex(64);
        let relay = tokio::spawn(relay(proxy_down, proxy_up, Some(Duration::from_secs(30))));
        let (_c_read, mut c_write) = tokio::io::split(client);
        tokio::time::sleep(Duration::from_secs(20)).await;
        // Activity pushes the deadline back.
        c_write.write_all(b"x").await.unwrap();
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(!relay.is_finished());
        let start = Instant::now();
        let done = relay.await.unwrap();
        assert_eq!(done.end, RelayEnd::IdleTimeout);
        assert_eq!(done.downstream_to_upstream, 1);
        // It fired 30 s after the last byte, not 30 s after the start.
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_costs_a_timer_not_a_task() {
        let (client, proxy_down) = duplex(1024);
        // The upstream never reads: its buffer fills and writes block.
        let (proxy_up, _server) = duplex(16);
        let relay = tokio::spawn(relay(proxy_down, proxy_up, Some(Duration::from_secs(30))));
        let (_c_read, mut c_write) = tokio::io::split(client);
        c_write.write_all(&[1u8; 512]).await.unwrap();
        let done = relay.await.unwrap();
        assert_eq!(done.end, RelayEnd::IdleTimeout);
    }
}
