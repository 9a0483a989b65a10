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
