//! A request body's end reaches an HTTP/2 upstream on its last DATA frame, as the client sent
//! it, not as an empty DATA frame after it (h2 peers count small non-final DATA frames against
//! a flood budget; gRPC calls used to exhaust it).

use super::*;
use crate::body::ReplayBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use std::convert::Infallible;

/// An HTTP/2 upstream that answers each request with whether its first DATA frame ended the
/// stream (`x-ended-with-data: true|false`).
async fn end_stream_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = ::h2::server::handshake(socket).await else {
                    return;
                };
                // Streams are answered in tasks of their own: the connection makes progress
                // only while `accept` is polled.
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        let first = body.data().await;
                        let ended = matches!(first, Some(Ok(_))) && body.is_end_stream();
                        let response = http::Response::builder()
                            .header("x-ended-with-data", ended.to_string())
                            .body(())
                            .unwrap();
                        let _ = respond.send_response(response, true);
                    });
                }
            });
        }
    });
    addr
}

/// A downstream HTTP/2 hop whose request bodies go upstream through `pool` as replayable
/// bodies, as the router sends them; answers with the upstream's header.
async fn hop(pool: Arc<HostPool>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let pool = pool.clone();
            let service = service_fn(move |req: http::Request<Incoming>| {
                let pool = pool.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = ProxyBody::Replay(ReplayBody::new(body, 1024));
                    let up = pool
                        .send(
                            http::Request::from_parts(parts, body),
                            Duration::from_secs(5),
                        )
                        .await
                        .expect("upstream exchange");
                    Ok::<_, Infallible>(up.map(|_| Full::new(Bytes::new())))
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service),
            );
        }
    });
    addr
}

#[tokio::test]
async fn a_body_the_client_ended_with_its_data_frame_ends_upstream_with_it_too() {
    let upstream = end_stream_upstream().await;
    let pool = HostPool::new(
        EndpointAddress::Socket(upstream),
        UpstreamProtocol::Http2,
        Arc::new(Limits::new(
            crate::config::CircuitBreakers::default(),
            ConnectionOptions::default(),
            Arc::default(),
        )),
    );
    let hop = hop(pool).await;
    let io = tokio::net::TcpStream::connect(hop).await.unwrap();
    let (mut client, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    // A gRPC unary request's shape: one length-prefixed message, END_STREAM on its frame.
    let req = http::Request::post("http://up/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let resp = client.send_request(req).await.unwrap();
    assert_eq!(resp.headers()["x-ended-with-data"], "true");
    let _ = resp.into_body().collect().await;
}
