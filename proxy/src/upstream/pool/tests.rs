use super::*;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that answers one request per connection and then closes it, without saying
/// so (no `Connection: close`): the pooled connection looks reusable but is dead.
async fn one_shot_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    addr
}

fn test_limits() -> Arc<Limits> {
    Arc::new(Limits::new(
        crate::config::CircuitBreakers::default(),
        ConnectionOptions::default(),
        Arc::default(),
    ))
}

fn request() -> http::Request<ProxyBody> {
    http::Request::get("/")
        .header("host", "up")
        .body(ProxyBody::Empty)
        .unwrap()
}

#[tokio::test]
async fn keep_alive_connections_the_server_closed_are_not_reused() {
    let addr = one_shot_server().await;
    let pool = HostPool::new(
        EndpointAddress::Socket(addr),
        UpstreamProtocol::Http1,
        test_limits(),
    );
    for _ in 0..5 {
        let resp = pool
            .send(request(), Duration::from_secs(1))
            .await
            .expect("sent");
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }
}

#[tokio::test]
async fn connections_return_to_the_pool_when_the_body_is_read() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from_static(b"hello"),
                )))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc),
            );
        }
    });
    let pool = HostPool::new(
        EndpointAddress::Socket(addr),
        UpstreamProtocol::Http1,
        test_limits(),
    );
    for _ in 0..10 {
        let resp = pool
            .send(request(), Duration::from_secs(1))
            .await
            .expect("sent");
        resp.into_body().collect().await.unwrap();
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one keep-alive connection"
    );
    assert_eq!(pool.idle_connections(), 1);
}

/// HTTP/2 connection setup.
mod h2 {
    use super::*;

    /// A listener whose accept queue is full, so a new connection to it hangs (its SYN is
    /// dropped) until the connect timeout.
    fn blackhole() -> (
        socket2::Socket,
        Vec<std::net::TcpStream>,
        std::net::SocketAddr,
    ) {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        s.listen(0).unwrap();
        let addr = s.local_addr().unwrap().as_socket().unwrap();
        // Fill the queue (backlog 0 holds one; a second for good measure, without blocking).
        let fill = (0..2)
            .filter_map(|_| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
            })
            .collect();
        (s, fill, addr)
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_for_an_http2_connection_share_one_attempt() {
        let (_listener, _fill, addr) = blackhole();
        let limits = Arc::new(Limits::new(
            crate::config::CircuitBreakers::default(),
            ConnectionOptions::default(),
            Arc::default(),
        ));
        let pool = HostPool::new(
            EndpointAddress::Socket(addr),
            UpstreamProtocol::Http2,
            limits,
        );
        let start = Instant::now();
        let timeout = Duration::from_secs(5);
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let req = http::Request::get("http://up/")
                        .body(ProxyBody::Empty)
                        .unwrap();
                    let r = pool.send(req, timeout).await;
                    (
                        r.err()
                            .map(|e| matches!(e, SendError::Connect(ref c) if c.is_timeout())),
                        Instant::now(),
                    )
                })
            })
            .collect();
        for w in waiters {
            let (timed_out, at) = w.await.unwrap();
            assert_eq!(timed_out, Some(true));
            // Each waiter saw the one attempt's timeout, not its own after the others'.
            assert_eq!(at - start, timeout);
        }
    }
}

/// The cluster's HTTP/2 settings as the upstream sees them on the wire.
mod h2_settings {
    use super::*;
    use crate::config::{Http2Keepalive, UpstreamHttp2};
    use tokio::io::AsyncReadExt;

    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    const WINDOW_UPDATE: u8 = 0x8;

    /// One frame: its type, flags, stream id and payload.
    async fn frame(s: &mut tokio::net::TcpStream) -> (u8, u8, u32, Vec<u8>) {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).await.expect("a frame header");
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.expect("a frame payload");
        (head[3], head[4], stream, payload)
    }

    #[tokio::test]
    async fn settings_windows_and_keepalive_pings_follow_the_cluster() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let options = ConnectionOptions {
            http2: UpstreamHttp2 {
                max_concurrent_streams: 7,
                initial_stream_window_size: Some(1 << 20),
                initial_connection_window_size: Some(4 << 20),
                hpack_table_size: 0,
                keepalive: Some(Http2Keepalive {
                    interval: Duration::from_millis(200),
                    timeout: Duration::from_secs(60),
                }),
            },
            ..Default::default()
        };
        let limits = Arc::new(Limits::new(Default::default(), options, Arc::default()));
        let pool = HostPool::new(
            EndpointAddress::Socket(addr),
            UpstreamProtocol::Http2,
            limits,
        );
        let exchange = tokio::spawn(async move {
            let _ = pool.send(request(), Duration::from_secs(5)).await;
        });
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("the pool connects")
            .unwrap();
        let mut preface = [0u8; 24];
        s.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let (kind, _, stream, payload) = frame(&mut s).await;
        assert_eq!((kind, stream), (SETTINGS, 0));
        let settings: std::collections::HashMap<u16, u32> = payload
            .chunks_exact(6)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect();
        // HEADER_TABLE_SIZE, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE.
        assert_eq!(settings.get(&0x1), Some(&0));
        assert_eq!(settings.get(&0x3), Some(&7));
        assert_eq!(settings.get(&0x4), Some(&(1 << 20)));
        // The connection window is raised from the protocol's 65535 to the cluster's, and
        // PINGs follow (no SETTINGS of ours is sent, so nothing else answers them).
        let (mut window, mut pinged) = (None, false);
        tokio::time::timeout(Duration::from_secs(10), async {
            while window.is_none() || !pinged {
                match frame(&mut s).await {
                    (WINDOW_UPDATE, _, 0, p) => {
                        window = Some(u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff)
                    }
                    (PING, flags, 0, _) if flags & 0x1 == 0 => pinged = true,
                    _ => {}
                }
            }
        })
        .await
        .expect("a connection WINDOW_UPDATE and a PING");
        assert_eq!(window, Some((4 << 20) - 65_535));
        exchange.abort();
    }
}

/// A keep-alive upstream that counts the connections it accepts.
async fn counting_server() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from_static(b"hello"),
                )))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc),
            );
        }
    });
    (addr, accepted)
}

fn pool_with(addr: std::net::SocketAddr, options: ConnectionOptions) -> Arc<HostPool> {
    let limits = Arc::new(Limits::new(
        crate::config::CircuitBreakers::default(),
        options,
        Arc::default(),
    ));
    HostPool::new(
        EndpointAddress::Socket(addr),
        UpstreamProtocol::Http1,
        limits,
    )
}

async fn exchange(pool: &Arc<HostPool>) {
    let resp = pool
        .send(request(), Duration::from_secs(1))
        .await
        .expect("sent");
    resp.into_body().collect().await.unwrap();
}

#[tokio::test]
async fn a_connection_carries_at_most_max_requests_per_connection() {
    let (addr, accepted) = counting_server().await;
    let pool = pool_with(
        addr,
        ConnectionOptions {
            max_requests_per_connection: Some(2),
            ..Default::default()
        },
    );
    for _ in 0..5 {
        exchange(&pool).await;
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn idle_connections_past_the_idle_timeout_are_not_reused() {
    let (addr, accepted) = counting_server().await;
    let pool = pool_with(
        addr,
        ConnectionOptions {
            idle_timeout: Some(Duration::from_millis(50)),
            ..Default::default()
        },
    );
    exchange(&pool).await;
    exchange(&pool).await;
    assert_eq!(accepted.load(Ordering::Relaxed), 1, "reused while fresh");
    // Longer than the idle timeout: the connection has expired.
    tokio::time::sleep(Duration::from_millis(100)).await;
    exchange(&pool).await;
    assert_eq!(accepted.load(Ordering::Relaxed), 2);
    assert_eq!(pool.idle_connections(), 1);
}
