//! In-process upstream servers: an HTTP echo server (HTTP/1.1 and HTTP/2) that says who it is.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An echo server: answers every request with JSON naming itself, the request line and the
/// headers it received, and the header `x-served-by`.
pub struct Echo {
    pub name: String,
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    pub async fn start(name: &str) -> Echo {
        let me = name.to_string();
        let (addr, requests, task) = serve(move |_, req| echo(me.clone(), req)).await;
        Echo {
            name: name.to_string(),
            addr,
            requests,
            task,
        }
    }

    /// An echo server on `addr` (port 0 for a free one), e.g. another loopback address with
    /// the port of a first server, as a second address of one DNS name.
    pub async fn start_at(name: &str, addr: SocketAddr) -> std::io::Result<Echo> {
        let me = name.to_string();
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let (addr, requests, task) = serve_on(listener, move |_, req| echo(me.clone(), req));
        Ok(Echo {
            name: name.to_string(),
            addr,
            requests,
            task,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves HTTP/1.1 and HTTP/2 on a free loopback port, handing `handle` each request with the
/// number of requests received before it; returns the address, the request count and the
/// accept task.
async fn serve<F, Fut>(handle: F) -> (SocketAddr, Arc<AtomicU64>, tokio::task::JoinHandle<()>)
where
    F: Fn(u64, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, hyper::Error>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    serve_on(listener, handle)
}

/// [`serve`] on a listener already bound.
fn serve_on<F, Fut>(
    listener: tokio::net::TcpListener,
    handle: F,
) -> (SocketAddr, Arc<AtomicU64>, tokio::task::JoinHandle<()>)
where
    F: Fn(u64, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, hyper::Error>> + Send + 'static,
{
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(AtomicU64::new(0));
    let count = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let count = count.clone();
            let handle = handle.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let n = count.fetch_add(1, Ordering::Relaxed);
                    handle(n, req)
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, requests, task)
}

async fn echo(me: String, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    // `?delay_ms=N` holds the answer back, for tests of in-flight requests.
    if let Some(ms) = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("delay_ms=")))
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let body = body.collect().await?.to_bytes();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
        .collect();
    let json = serde_json::json!({
        "served_by": me,
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body.len(),
    });
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())));
    resp.headers_mut()
        .insert("x-served-by", me.parse().expect("header value"));
    // `?close=1` closes the connection after the answer, so the next request through a proxy
    // needs a new upstream connection.
    if parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "close=1"))
    {
        resp.headers_mut()
            .insert("connection", "close".parse().expect("header value"));
    }
    resp.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("header value"),
    );
    Ok(resp)
}

/// What a [`Scripted`] upstream does: fail the first `fail_first` requests with
/// `fail_status`, then answer like [`Echo`] (which honours `?delay_ms=N`, so a request can be
/// made to hang past a timeout).
#[derive(Debug, Clone, Copy)]
pub struct Script {
    pub fail_first: u64,
    pub fail_status: u16,
}

impl Script {
    /// Answers every request like [`Echo`].
    pub const ECHO: Script = Script {
        fail_first: 0,
        fail_status: 200,
    };

    /// Fails the first `n` requests with 503, then echoes.
    pub fn unavailable_first(n: u64) -> Script {
        Script {
            fail_first: n,
            fail_status: 503,
        }
    }
}

/// An upstream for retry, fault and header tests: it counts every request it receives
/// (failed ones included), fails as its [`Script`] says, and its echo adds `header_values`:
/// every value of every request header, in order (so an appended header shows both values).
pub struct Scripted {
    pub name: String,
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    pub async fn start(name: &str, script: Script) -> Scripted {
        let me = name.to_string();
        let (addr, requests, task) =
            serve(move |n, req| scripted(me.clone(), script, n, req)).await;
        Scripted {
            name: name.to_string(),
            addr,
            requests,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn scripted(
    me: String,
    script: Script,
    seen_before: u64,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if seen_before < script.fail_first {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"scripted failure")));
        *resp.status_mut() =
            hyper::StatusCode::from_u16(script.fail_status).expect("valid status in script");
        resp.headers_mut()
            .insert("x-served-by", me.parse().expect("header value"));
        return Ok(resp);
    }
    let mut values = serde_json::Map::new();
    for (k, v) in req.headers() {
        let entry = values
            .entry(k.to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(list) = entry {
            list.push(v.to_str().unwrap_or("").into());
        }
    }
    let resp = echo(me, req).await?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    json["header_values"] = serde_json::Value::Object(values);
    Ok(Response::from_parts(
        parts,
        Full::new(Bytes::from(json.to_string())),
    ))
}
