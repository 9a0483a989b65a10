//! An HTTP/2 upstream of our own (the `h2` crate's server, so every frame is ours to script)
//! that misbehaves on command: limits its streams, sends GOAWAY, refuses a stream.

use bytes::Bytes;
use h2::server::SendResponse;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// What the upstream does.
#[derive(Clone, Copy, Debug)]
pub enum Script {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` of this value. A request with `x-wait-for: N` is
    /// held until N such requests are in the server at once (or 5 s), then answered
    /// `together` or `alone`; others are answered `ok` at once.
    MaxStreams(u32),
    /// The first request is held until [`H2Upstream::release`]; the second makes the server
    /// send GOAWAY (graceful: in-flight streams finish) and is answered `ok`.
    GoAwayOnSecond,
    /// The first stream is reset with `REFUSED_STREAM`; the rest are answered `ok`.
    RefuseFirst,
}

pub struct H2Upstream {
    pub addr: SocketAddr,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// (connection index, stream id) of every request received, in order.
    pub streams: Arc<Mutex<Vec<(usize, u32)>>>,
    release: Arc<Notify>,
}

/// How long a held request waits for company before it answers alone.
const COMPANY_WAIT: Duration = Duration::from_secs(5);

impl H2Upstream {
    pub async fn start(script: Script) -> H2Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let in_server = Arc::new(AtomicUsize::new(0));
        let (conns, seen, rel) = (connections.clone(), streams.clone(), release.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let index = conns.fetch_add(1, Ordering::SeqCst);
                let (seen, rel, in_server) = (seen.clone(), rel.clone(), in_server.clone());
                tokio::spawn(async move {
                    let mut builder = h2::server::Builder::new();
                    if let Script::MaxStreams(n) = script {
                        builder.max_concurrent_streams(n);
                    }
                    let Ok(mut conn) = builder.handshake::<_, Bytes>(socket).await else {
                        return;
                    };
                    while let Some(Ok((req, mut respond))) = conn.accept().await {
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push((index, respond.stream_id().as_u32()));
                            seen.len()
                        };
                        match script {
                            Script::RefuseFirst if n == 1 => {
                                respond.send_reset(h2::Reason::REFUSED_STREAM)
                            }
                            Script::GoAwayOnSecond if n == 1 => {
                                let rel = rel.clone();
                                tokio::spawn(async move {
                                    rel.notified().await;
                                    reply(respond, "first");
                                });
                            }
                            Script::GoAwayOnSecond if n == 2 => {
                                conn.graceful_shutdown();
                                reply(respond, "ok");
                            }
                            Script::MaxStreams(_) => {
                                let wait_for = req
                                    .headers()
                                    .get("x-wait-for")
                                    .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
                                match wait_for {
                                    Some(k) => {
                                        let in_server = in_server.clone();
                                        tokio::spawn(async move {
                                            in_server.fetch_add(1, Ordering::SeqCst);
                                            let company =
                                                tokio::time::timeout(COMPANY_WAIT, async {
                                                    while in_server.load(Ordering::SeqCst) < k {
                                                        tokio::time::sleep(Duration::from_millis(
                                                            5,
                                                        ))
                                                        .await;
                                                    }
                                                })
                                                .await;
                                            reply(
                                                respond,
                                                if company.is_ok() { "together" } else { "alone" },
                                            );
                                        });
                                    }
                                    None => reply(respond, "ok"),
                                }
                            }
                            _ => reply(respond, "ok"),
                        }
                    }
                });
            }
        });
        H2Upstream {
            addr,
            connections,
            streams,
            release,
        }
    }

    /// Lets the held first request of [`Script::GoAwayOnSecond`] answer.
    pub fn release(&self) {
        self.release.notify_one();
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn streams(&self) -> Vec<(usize, u32)> {
        self.streams.lock().unwrap().clone()
    }
}

fn reply(mut respond: SendResponse<Bytes>, body: &'static str) {
    if let Ok(mut stream) = respond.send_response(http::Response::new(()), false) {
        let _ = stream.send_data(Bytes::from_static(body.as_bytes()), true);
    }
}
