//! `weft-demo-app`: one service of a BookInfo in miniature, so `weftctl up` can show a
//! working mesh without anything installed.
//!
//! Every call to another service goes through the sidecar given by `--proxy`, as an HTTP
//! proxy request, carrying the user and trace headers of the inbound request: that is what
//! lets the mesh route by `end-user` and what tests observe. Every answer names the version
//! that produced it (`x-weft-demo` header and `served_by` field), so a test can count which
//! subset a request reached.

mod books;

use crate::proxy_client::ProxyClient;
use anyhow::Context as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Per outbound call: a demo page must answer (with an error field) rather than hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug, Clone)]
pub struct DemoAppArgs {
    /// Which service to play: productpage, details, reviews, ratings; any other name echoes.
    #[arg(long)]
    pub service: String,
    /// The version it reports (reviews v2 shows black stars, v3 red, v1 none).
    #[arg(long, default_value = "v1")]
    pub version: String,
    /// Where the app listens (HTTP/1.1 and HTTP/2 cleartext).
    #[arg(long)]
    pub listen: SocketAddr,
    /// The sidecar's outbound listener, used as an HTTP proxy for calls to other services.
    #[arg(long)]
    pub proxy: Option<SocketAddr>,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// The port other services are called on (`http://reviews:<port>/...`).
    #[arg(long, default_value_t = 9080)]
    pub peer_port: u16,
}

pub struct App {
    service: String,
    version: String,
    namespace: String,
    served_by: String,
    served_by_header: HeaderValue,
    peer_port: u16,
    client: Option<ProxyClient>,
}

impl App {
    pub fn new(args: &DemoAppArgs) -> anyhow::Result<App> {
        let served_by = format!("{}-{}", args.service, args.version);
        let served_by_header = HeaderValue::from_str(&served_by)
            .with_context(|| format!("service and version must be header-safe: {served_by}"))?;
        Ok(App {
            service: args.service.clone(),
            version: args.version.clone(),
            namespace: args.namespace.clone(),
            served_by,
            served_by_header,
            peer_port: args.peer_port,
            client: args.proxy.map(|p| ProxyClient::new(p, CALL_TIMEOUT)),
        })
    }
}

pub async fn run(args: DemoAppArgs) -> anyhow::Result<()> {
    let app = Arc::new(App::new(&args)?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        service = %app.service,
        version = %app.version,
        listen = %args.listen,
        proxy = ?args.proxy,
        "demo app listening"
    );
    serve(listener, app).await;
    Ok(())
}

/// Accepts forever; one task per connection.
pub async fn serve(listener: tokio::net::TcpListener, app: Arc<App>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

/// Request bodies are never read, so any body type will do (tests pass `()`).
pub async fn handle<B>(app: &App, req: Request<B>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == "/health" {
        return app.reply(StatusCode::OK, json!({ "status": "ok" }));
    }
    if req.method() != Method::GET && app.service_is_bookinfo() {
        return app.reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "error": "only GET is served" }),
        );
    }
    let headers = req.headers();
    match (app.service.as_str(), segments(path).as_slice()) {
        ("productpage", [] | ["productpage"]) => app.productpage(headers).await,
        ("details", ["details", id]) => {
            app.with_id(id, |id| async move { Ok(books::details(id)) })
                .await
        }
        ("reviews", ["reviews", id]) => app.with_id(id, |id| app.reviews(id, headers)).await,
        ("ratings", ["ratings", id]) => {
            app.with_id(id, |id| async move { Ok(books::ratings(id)) })
                .await
        }
        _ if app.service_is_bookinfo() => app.reply(
            StatusCode::NOT_FOUND,
            json!({ "error": "not found", "path": path }),
        ),
        _ => app.echo(&req),
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

impl App {
    fn service_is_bookinfo(&self) -> bool {
        matches!(
            self.service.as_str(),
            "productpage" | "details" | "reviews" | "ratings"
        )
    }

    /// Every answer is pretty JSON naming who served it.
    fn reply(&self, status: StatusCode, mut body: Value) -> Response<Full<Bytes>> {
        if let Value::Object(map) = &mut body {
            map.insert("served_by".into(), json!(self.served_by));
        }
        let text = serde_json::to_string_pretty(&body).unwrap_or_else(|_| "{}".to_string());
        let mut response = Response::new(Full::new(Bytes::from(text + "\n")));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-weft-demo", self.served_by_header.clone());
        response
    }

    async fn with_id<F, Fut>(&self, id: &str, answer: F) -> Response<Full<Bytes>>
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = Result<Value, Value>>,
    {
        let Ok(id) = id.parse::<u64>() else {
            return self.reply(
                StatusCode::BAD_REQUEST,
                json!({ "error": "the id must be a number", "id": id }),
            );
        };
        match answer(id).await {
            Ok(body) | Err(body) => self.reply(StatusCode::OK, self.identify(body)),
        }
    }

    fn identify(&self, mut body: Value) -> Value {
        if let Value::Object(map) = &mut body {
            map.insert("service".into(), json!(self.service));
            map.insert("version".into(), json!(self.version));
        }
        body
    }

    async fn productpage(&self, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let id = 0;
        // The two calls are independent; a user waits for the slower one, not the sum.
        let (details_path, reviews_path) = (format!("/details/{id}"), format!("/reviews/{id}"));
        let (details, reviews) = tokio::join!(
            self.call("details", &details_path, headers),
            self.call("reviews", &reviews_path, headers),
        );
        let body = json!({
            "namespace": self.namespace,
            "product": { "id": id, "title": books::title(id) },
            "details": details.unwrap_or_else(|e| e),
            "reviews": reviews.unwrap_or_else(|e| e),
        });
        self.reply(StatusCode::OK, self.identify(body))
    }

    async fn reviews(&self, id: u64, headers: &HeaderMap) -> Result<Value, Value> {
        let color = books::star_color(&self.version);
        if color.is_none() {
            return Ok(books::reviews(id, None, None));
        }
        let ratings = self
            .call("ratings", &format!("/ratings/{id}"), headers)
            .await;
        let mut body = books::reviews(id, color, Some(&ratings));
        body["ratings"] = ratings.unwrap_or_else(|e| e);
        Ok(body)
    }

    /// Calls `http://<service>:<peer_port><path>` through the sidecar. `Ok` holds the peer's
    /// JSON answer; `Err` an object with an `error` field, never a hang or a panic.
    async fn call(&self, service: &str, path: &str, inbound: &HeaderMap) -> Result<Value, Value> {
        let Some(client) = &self.client else {
            return Err(json!({ "error": format!("cannot call {service}: no --proxy given") }));
        };
        let url: Uri = format!("http://{service}:{}{path}", self.peer_port)
            .parse()
            .map_err(|e| json!({ "error": format!("bad URL for {service}: {e}") }))?;
        let answer = client
            .get(&url, &books::propagated_headers(inbound))
            .await
            .map_err(|e| json!({ "error": format!("{service}: {e}") }))?;
        let body: Option<Value> = serde_json::from_slice(&answer.body).ok();
        if answer.status.is_success() {
            if let Some(body) = body {
                return Ok(body);
            }
        }
        let text = String::from_utf8_lossy(&answer.body).trim().to_string();
        Err(json!({
            "error": format!("{service} answered {}", answer.status),
            "status": answer.status.as_u16(),
            "body": body.unwrap_or(Value::String(text)),
        }))
    }

    fn echo<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        let mut headers = serde_json::Map::new();
        for name in req.headers().keys() {
            let values: Vec<String> = req
                .headers()
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            headers.insert(name.to_string(), json!(values.join(", ")));
        }
        let body = json!({
            "method": req.method().as_str(),
            "path": req.uri().path(),
            "query": req.uri().query(),
            "headers": headers,
        });
        self.reply(StatusCode::OK, self.identify(body))
    }
}

#[cfg(test)]
mod tests;
