//! HTTP/2 seen from a client that writes raw frames, where a client library would hide what
//! matters:
//! - rapid reset (CVE-2023-44487): a client that opens streams and resets them at once gets
//!   GOAWAY(ENHANCE_YOUR_CALM) and its connection closed; the flood does not reach the
//!   upstream, and other clients are served as before. The flood is written the way an
//!   attacker's tool does (HEADERS then RST_STREAM, back to back) while a reader parses what the
//!   proxy sends: a library would stop at its first failed write and never show the GOAWAY.
//! - resets after acceptance (Envoy's premature-reset rule): a client that waits until each
//!   stream has reached the upstream and only then resets it has its connection closed after
//!   half of 500 streams.
//! - keepalive: a peer that never answers the proxy's PINGs is closed after `interval` +
//!   `timeout`.

use super::harness::*;
use http::StatusCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xds_protos::pb::envoy::config::core::v3::{Http2ProtocolOptions, KeepaliveSettings};
use xds_protos::pb::google::protobuf::Duration as ProtoDuration;

const FLOOD: u32 = 5000;
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;
const END_STREAM_AND_HEADERS: u8 = 0x1 | 0x4;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap();
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// `GET http://svc/` in HPACK: static-table `:method GET`, `:scheme http`, `:path /`, and
/// `:authority svc` as a literal that is not indexed (so every block is the same).
const GET_SVC: &[u8] = &[0x82, 0x86, 0x84, 0x01, 0x03, b's', b'v', b'c'];

/// Reads frames until the connection ends; the error code of a GOAWAY, if one came.
async fn goaway_code(mut read: tokio::net::tcp::OwnedReadHalf) -> Option<u32> {
    let mut head = [0u8; 9];
    loop {
        read.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        read.read_exact(&mut payload).await.ok()?;
        if head[3] == GOAWAY && len >= 8 {
            return Some(u32::from_be_bytes([
                payload[4], payload[5], payload[6], payload[7],
            ]));
        }
    }
}

#[tokio::test]
async fn a_rapid_reset_flood_is_cut_with_goaway_and_spares_the_upstream() {
    let up = Upstream::fixed(200, "ok").await;
    let vh = vhost(vec![route_to("svc", |_, _| {})]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[up.addr])]).await;

    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (read, mut write) = tcp.into_split();
    let reader = tokio::spawn(goaway_code(read));
    let mut start = PREFACE.to_vec();
    frame(&mut start, SETTINGS, 0, 0, &[]);
    write.write_all(&start).await.unwrap();
    let mut written = 0;
    for batch in 0..FLOOD / 100 {
        let mut bytes = Vec::new();
        for i in 0..100 {
            let stream = 2 * (batch * 100 + i) + 1;
            frame(&mut bytes, HEADERS, END_STREAM_AND_HEADERS, stream, GET_SVC);
            frame(&mut bytes, RST_STREAM, 0, stream, &CANCEL.to_be_bytes());
        }
        if write.write_all(&bytes).await.is_err() {
            break;
        }
        written += 100;
    }
    // Bounded so a proxy that never reacts fails the test instead of hanging it.
    let code = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the proxy ends the connection")
        .unwrap();
    assert_eq!(code, Some(ENHANCE_YOUR_CALM), "GOAWAY(ENHANCE_YOUR_CALM)");
    let reached = up.requests();
    assert!(
        reached * 10 < written as usize,
        "{reached} of {written} reset streams reached the upstream"
    );

    // Everyone else is served as before, on both protocols.
    assert_eq!(proxy.get("/").await.status, StatusCode::OK);
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let (response, _) = client
        .send_request(http::Request::get("http://svc/").body(()).unwrap(), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
}

/// Answers the proxy's SETTINGS but never its PINGs; the number of PINGs seen before the
/// connection ended.
async fn deaf_to_pings(stream: tokio::net::TcpStream) -> usize {
    let (mut read, mut write) = stream.into_split();
    let mut start = PREFACE.to_vec();
    frame(&mut start, SETTINGS, 0, 0, &[]);
    write.write_all(&start).await.unwrap();
    let mut pings = 0;
    let mut head = [0u8; 9];
    loop {
        if read.read_exact(&mut head).await.is_err() {
            return pings;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if read.read_exact(&mut payload).await.is_err() {
            return pings;
        }
        match (head[3], head[4] & ACK) {
            (SETTINGS, 0) => {
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                let _ = write.write_all(&ack).await;
            }
            (PING, 0) => pings += 1,
            _ => {}
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_does_not_answer_keepalive_pings_is_closed() {
    let up = Upstream::fixed(200, "ok").await;
    let vh = vhost(vec![route_to("svc", |_, _| {})]);
    let secs = |s| {
        Some(ProtoDuration {
            seconds: s,
            nanos: 0,
        })
    };
    let proxy = TestProxy::start_with(vh, vec![], vec![cluster("svc", &[up.addr])], |hcm| {
        hcm.http2_protocol_options = Some(Http2ProtocolOptions {
            connection_keepalive: Some(KeepaliveSettings {
                interval: secs(10),
                timeout: secs(5),
                ..Default::default()
            }),
            ..Default::default()
        })
    })
    .await;
    let start = tokio::time::Instant::now();
    let deaf = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let pings = deaf_to_pings(deaf).await;
    let closed_after = start.elapsed();
    assert!(pings >= 1, "the proxy pinged");
    assert!(
        closed_after >= Duration::from_secs(15) && closed_after < Duration::from_secs(20),
        "{closed_after:?}"
    );

    // A peer that answers (h2 acks PINGs itself) keeps its connection well past that.
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    tokio::time::sleep(Duration::from_secs(120)).await;
    let mut client = client.ready().await.unwrap();
    let (response, _) = client
        .send_request(http::Request::get("http://svc/").body(()).unwrap(), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn streams_reset_after_reaching_the_upstream_close_the_connection_after_250() {
    let up = Upstream::start(|_, _| async move {
        std::future::pending::<()>().await;
        respond(200, "never")
    })
    .await;
    let vh = vhost(vec![route_to("svc", |_, _| {})]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[up.addr])]).await;
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut reset = 0;
    let flood = async {
        while reset < 1000 {
            let Ok(ready) = client.ready().await else {
                break;
            };
            client = ready;
            let req = http::Request::get("http://svc/").body(()).unwrap();
            let Ok((_response, mut stream)) = client.send_request(req, true) else {
                break;
            };
            // Only once the proxy has accepted the stream and forwarded it.
            while up.requests() < reset + 1 && !conn.is_finished() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if conn.is_finished() {
                break;
            }
            stream.send_reset(h2::Reason::CANCEL);
            reset += 1;
        }
    };
    // Bounded so a proxy that never reacts fails the test instead of hanging it.
    tokio::time::timeout(Duration::from_secs(60), flood)
        .await
        .expect("the flood ends");
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the proxy closes the connection")
        .unwrap()
        .ok();
    assert_eq!(reset, 250, "closed at half of Envoy's 500-stream window");
    assert_eq!(
        up.requests(),
        250,
        "no stream past that reached the upstream"
    );
    // A request on a fresh connection is not affected (it waits on the hung upstream, so only
    // its arrival is checked).
    let fresh = proxy.addr;
    tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(fresh).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let (response, _) = client
            .send_request(http::Request::get("http://svc/").body(()).unwrap(), true)
            .unwrap();
        let _ = response.await;
    });
    let arrived = async {
        while up.requests() < 251 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), arrived)
        .await
        .expect("a fresh connection's request reaches the upstream");
}
