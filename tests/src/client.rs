//! An HTTP/1.1 client that talks to a proxy: absolute-form requests (`GET http://reviews:9080/x`)
//! on a keep-alive connection to the proxy's address.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Which upstream answered (the echo server's `x-served-by`), or "" for the proxy itself.
    pub fn served_by(&self) -> &str {
        self.headers
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub struct ProxyConn {
    proxy: SocketAddr,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl ProxyConn {
    pub fn new(proxy: SocketAddr) -> ProxyConn {
        ProxyConn {
            proxy,
            sender: None,
        }
    }

    async fn sender(&mut self) -> anyhow::Result<&mut http1::SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.proxy).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self
            .sender
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no connection"))?;
        sender.ready().await?;
        Ok(sender)
    }

    /// GET `url` (absolute: `http://reviews:9080/path`) through the proxy.
    pub async fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<Reply> {
        self.request(http::Method::GET, url, headers, true).await
    }

    /// Any method (absolute-form, no body) through the proxy, e.g. a CORS preflight.
    pub async fn send(
        &mut self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        self.request(method, url, headers, true).await
    }

    /// GET `url` in origin-form (`GET /path` with `Host`), as to a server rather than a proxy.
    pub async fn get_origin(
        &mut self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        self.request(http::Method::GET, url, headers, false).await
    }

    async fn request(
        &mut self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        absolute: bool,
    ) -> anyhow::Result<Reply> {
        let uri: http::Uri = url.parse()?;
        let target = if absolute {
            uri.clone()
        } else {
            uri.path_and_query().map_or("/", |p| p.as_str()).parse()?
        };
        let mut builder = Request::builder().method(method).uri(target);
        if let Some(a) = uri.authority() {
            builder = builder.header("host", a.as_str());
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder.body(Full::new(Bytes::new()))?;
        let result = async {
            let resp = self.sender().await?.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, anyhow::Error>(Reply {
                status: parts.status,
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

/// One request on a fresh connection.
pub async fn get_via(
    proxy: SocketAddr,
    url: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    ProxyConn::new(proxy).get(url, headers).await
}

/// A plain GET to an admin or debug endpoint.
pub async fn get_plain(url: &str) -> anyhow::Result<Reply> {
    let uri: http::Uri = url.parse()?;
    let addr = format!(
        "{}:{}",
        uri.host().unwrap_or("127.0.0.1"),
        uri.port_u16().unwrap_or(80)
    );
    let addr: SocketAddr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {url}"))?;
    let mut conn = ProxyConn::new(addr);
    conn.get_origin(url, &[]).await
}
