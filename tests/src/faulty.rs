//! An HTTP/1.1 upstream that misbehaves on command, written on raw TCP so each fault is
//! exactly the bytes (or silence) it says: answer, hang after the request, send the headers
//! and part of the body then close, or die with requests in flight.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the upstream does with the next request it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 200 with a small body and `x-served-by`; `?delay_ms=N` holds the answer back.
    Answer = 0,
    /// Reads the request and never answers (the connection stays open).
    Hang = 1,
    /// Sends 200 headers promising 1000 bytes, sends 7, and closes the connection.
    HeadersThenClose = 2,
}

pub struct Faulty {
    pub name: String,
    pub addr: SocketAddr,
    fault: Arc<AtomicU8>,
    /// Requests read (whatever became of them).
    received: Arc<AtomicU64>,
    kill: watch::Sender<bool>,
}

impl Faulty {
    pub async fn start(name: &str) -> Faulty {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let fault = Arc::new(AtomicU8::new(Fault::Answer as u8));
        let received = Arc::new(AtomicU64::new(0));
        let (kill, killed) = watch::channel(false);
        tokio::spawn(accept_loop(
            listener,
            name.to_string(),
            fault.clone(),
            received.clone(),
            killed,
        ));
        Faulty {
            name: name.to_string(),
            addr,
            fault,
            received,
            kill,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every open connection, requests in flight included, as a
    /// process that is killed does.
    pub fn kill(&self) {
        let _ = self.kill.send(true);
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn accept_loop(
    listener: TcpListener,
    name: String,
    fault: Arc<AtomicU8>,
    received: Arc<AtomicU64>,
    killed: watch::Receiver<bool>,
) {
    let mut stop = killed.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (name, fault, received, mut killed) =
                    (name.clone(), fault.clone(), received.clone(), killed.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = serve(stream, &name, &fault, &received) => {}
                        _ = killed.wait_for(|k| *k) => {}
                    }
                });
            }
            _ = stop.wait_for(|k| *k) => return,
        }
    }
}

/// Serves one keep-alive connection until the client closes it or a fault ends it.
async fn serve(mut stream: TcpStream, name: &str, fault: &AtomicU8, received: &AtomicU64) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        received.fetch_add(1, Ordering::SeqCst);
        match fault.load(Ordering::SeqCst) {
            x if x == Fault::Hang as u8 => std::future::pending::<()>().await,
            x if x == Fault::HeadersThenClose as u8 => {
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nx-served-by: {name}\r\n\r\npartial"
                        )
                        .as_bytes(),
                    )
                    .await;
                return;
            }
            _ => {
                if let Some(ms) = delay_ms(&head) {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                let body = format!("{{\"served_by\":\"{name}\"}}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-served-by: {name}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads one request head (requests here carry no body); `None` when the client closed.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `?delay_ms=N` in the request line.
fn delay_ms(head: &str) -> Option<u64> {
    let target = head.lines().next()?.split(' ').nth(1)?;
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("delay_ms="))?
        .parse()
        .ok()
}
