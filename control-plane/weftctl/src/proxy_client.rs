//! A tiny HTTP/1.1 client that sends every request to one forward proxy (a sidecar's outbound
//! listener) in absolute form: `GET http://reviews:9080/reviews/0 HTTP/1.1`, as `curl -x` does.
//!
//! Why not hyper-util's legacy `Client`: it writes absolute form only when its connector marks
//! the connection as proxied, and a connector is a `tower_service::Service`, which this crate
//! cannot implement without another dependency. hyper's own connection API writes the URI
//! exactly as given, so a small pool over it is all that is needed. Connections are kept alive
//! and reused, like the legacy client does.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;

/// Idle connections kept per client; a demo app never needs more.
const MAX_IDLE: usize = 16;
/// Bodies larger than this are refused: the demo services answer a few hundred bytes.
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect to the proxy at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP exchange with the proxy at {addr} failed: {source}")]
    Http {
        addr: SocketAddr,
        source: hyper::Error,
    },
    #[error("response body unreadable or larger than {MAX_BODY} bytes: {0}")]
    Body(String),
    #[error("invalid request: {0}")]
    Request(String),
}

/// What came back: the body is read in full so the connection can be reused.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct ProxyClient {
    proxy: SocketAddr,
    timeout: Duration,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl ProxyClient {
    pub fn new(proxy: SocketAddr, timeout: Duration) -> ProxyClient {
        ProxyClient {
            proxy,
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy
    }

    /// `GET url` through the proxy. The whole exchange, body included, is bounded by the
    /// client's timeout so a caller never hangs on a stuck upstream.
    pub async fn get(&self, url: &Uri, headers: &HeaderMap) -> Result<Answer, CallError> {
        match tokio::time::timeout(self.timeout, self.exchange(url, headers)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(self.timeout)),
        }
    }

    async fn exchange(&self, url: &Uri, headers: &HeaderMap) -> Result<Answer, CallError> {
        // A pooled connection may have been closed by the proxy while idle. Every request
        // here is a GET, which is idempotent, so after a failure on a reused connection it is
        // safe to send it again on a fresh one.
        while let Some(mut sender) = self.take_idle() {
            // Right after a response the connection may not have signalled readiness yet;
            // waiting for it is cheap, and an error here means it closed while idle.
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(build_request(url, headers)?).await {
                Ok(response) => return self.finish(sender, response).await,
                Err(err) => {
                    tracing::debug!(error = %err.error(), "reused proxy connection failed, retrying");
                    break;
                }
            }
        }
        let request = build_request(url, headers)?;
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|source| CallError::Http {
                addr: self.proxy,
                source,
            })?;
        self.finish(sender, response).await
    }

    async fn finish(
        &self,
        sender: SendRequest<Full<Bytes>>,
        response: http::Response<hyper::body::Incoming>,
    ) -> Result<Answer, CallError> {
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| CallError::Body(e.to_string()))?
            .to_bytes();
        self.put_idle(sender);
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(sender);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, CallError> {
        let stream = TcpStream::connect(self.proxy)
            .await
            .map_err(|source| CallError::Connect {
                addr: self.proxy,
                source,
            })?;
        // Small request/response pairs: waiting for Nagle only adds latency.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| CallError::Http {
                addr: self.proxy,
                source,
            })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection to proxy ended");
            }
        });
        Ok(sender)
    }
}

fn build_request(url: &Uri, headers: &HeaderMap) -> Result<Request<Full<Bytes>>, CallError> {
    let authority = url
        .authority()
        .ok_or_else(|| CallError::Request(format!("{url} has no host")))?;
    let host =
        HeaderValue::from_str(authority.as_str()).map_err(|e| CallError::Request(e.to_string()))?;
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(url.clone())
        .body(Full::new(Bytes::new()))
        .map_err(|e| CallError::Request(e.to_string()))?;
    let target = request.headers_mut();
    for (name, value) in headers {
        target.append(name.clone(), value.clone());
    }
    // HTTP/1.1 requires Host even in absolute form; a proxy that prefers Host over the
    // request target then still sees the same destination.
    target.insert(http::header::HOST, host);
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A fake proxy that records the request head it receives and answers twice on one
    /// connection, so the test sees both the absolute form and the connection reuse.
    #[tokio::test]
    async fn sends_absolute_form_and_reuses_the_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut heads = Vec::new();
            let mut buf = Vec::new();
            while heads.len() < 2 {
                let mut chunk = [0u8; 1024];
                let n = socket.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    heads.push(String::from_utf8_lossy(&buf[..end]).to_string());
                    buf.drain(..end + 4);
                    socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await
                        .unwrap();
                }
            }
            heads
        });
        let client = ProxyClient::new(addr, Duration::from_secs(5));
        let mut headers = HeaderMap::new();
        headers.insert("end-user", HeaderValue::from_static("jason"));
        let url: Uri = "http://reviews:9080/reviews/0".parse().unwrap();
        for _ in 0..2 {
            let answer = client.get(&url, &headers).await.unwrap();
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(&answer.body[..], b"ok");
        }
        let heads = server.await.unwrap();
        assert!(heads[0].starts_with("GET http://reviews:9080/reviews/0 HTTP/1.1\r\n"));
        assert!(heads[0].to_ascii_lowercase().contains("host: reviews:9080"));
        assert!(heads[1].to_ascii_lowercase().contains("end-user: jason"));
    }

    #[tokio::test]
    async fn unreachable_proxy_is_an_error_not_a_hang() {
        // Bind then drop to get a port nobody listens on.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = ProxyClient::new(addr, Duration::from_secs(5));
        let url: Uri = "http://details:9080/details/0".parse().unwrap();
        let err = client.get(&url, &HeaderMap::new()).await.unwrap_err();
        assert!(matches!(err, CallError::Connect { .. }), "{err}");
    }
}
