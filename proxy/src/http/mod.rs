//! The HTTP connection manager: serves downstream connections (HTTP/1.1 and HTTP/2 with prior
//! knowledge) and runs each request through the proxy.

mod connection;
pub mod filter;
pub mod forward;
pub mod headers;
pub mod local_reply;
pub mod mirror;
pub mod plan;
pub mod redirect;
pub mod stream;
pub mod upgrade;
pub mod upstream_request;

pub use connection::serve_http;

/// Resolves once the watched flag is true. (The guard `wait_for` returns must not be held
/// across an await, so it is dropped here.)
pub async fn wait_true(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await.map(|_| ());
}

#[cfg(test)]
pub(crate) mod tests;
