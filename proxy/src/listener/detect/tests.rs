use super::*;
use tokio::io::AsyncWriteExt;

/// A ClientHello record as TLS 1.2/1.3 clients send it, with the given SNI and ALPN.
fn client_hello(sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
    let vec16 = |body: &[u8]| {
        let mut v = (body.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    };
    let mut exts = Vec::new();
    // An unrelated extension first (supported_versions), as real clients send many.
    exts.extend_from_slice(&43u16.to_be_bytes());
    exts.extend(vec16(&[2, 3, 4]));
    if let Some(name) = sni {
        let mut entry = vec![0u8];
        entry.extend(vec16(name.as_bytes()));
        exts.extend_from_slice(&0u16.to_be_bytes());
        exts.extend(vec16(&vec16(&entry)));
    }
    if !alpn.is_empty() {
        let mut list = Vec::new();
        for p in alpn {
            list.push(p.len() as u8);
            list.extend_from_slice(p.as_bytes());
        }
        exts.extend_from_slice(&16u16.to_be_bytes());
        exts.extend(vec16(&vec16(&list)));
    }
    let mut hello = vec![3, 3];
    hello.extend_from_slice(&[7u8; 32]); // random
    hello.push(32);
    hello.extend_from_slice(&[1u8; 32]); // session id
    hello.extend(vec16(&[0x13, 0x01, 0x13, 0x02])); // cipher suites
    hello.extend_from_slice(&[1, 0]); // compression: null
    hello.extend(vec16(&exts));
    let mut handshake = vec![1u8];
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut record = vec![0x16, 3, 1];
    record.extend(vec16(&handshake));
    record
}

#[test]
fn a_client_hello_gives_tls_its_server_name_and_alpn() {
    let hello = client_hello(Some("Reviews.Default.svc"), &["h2", "http/1.1"]);
    let want = Detected::Tls {
        server_name: Some("reviews.default.svc".into()),
        alpn: vec!["h2".into(), "http/1.1".into()],
    };
    assert_eq!(classify(&hello), Verdict::Known(want.clone()));
    assert_eq!(want.transport_protocol(), "tls");
    assert_eq!(want.application_protocols(), ["h2", "http/1.1"]);
    // Every shorter prefix needs more bytes; none is misread.
    for n in 1..hello.len() {
        assert_eq!(classify(&hello[..n]), Verdict::NeedMore, "at {n}");
    }
    let bare = client_hello(None, &[]);
    assert_eq!(
        classify(&bare),
        Verdict::Known(Detected::Tls {
            server_name: None,
            alpn: vec![]
        })
    );
}

#[test]
fn http_request_lines_and_the_h2_preface() {
    assert_eq!(
        classify(b"GET /reviews/1 HTTP/1.1\r\nHost: x\r\n"),
        Verdict::Known(Detected::Http1 { minor: 1 })
    );
    assert_eq!(
        classify(b"POST / HTTP/1.0\r\n"),
        Verdict::Known(Detected::Http1 { minor: 0 })
    );
    assert_eq!(classify(b"GET /reviews/1 HT"), Verdict::NeedMore);
    assert_eq!(classify(b"PRI * HTTP/2.0\r\n"), Verdict::NeedMore);
    assert_eq!(
        classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00"),
        Verdict::Known(Detected::Http2)
    );
    assert_eq!(Detected::Http2.application_protocols(), ["h2c"]);
    // Not HTTP: binary, a bad method, another protocol's banner-like line.
    assert_eq!(classify(b"\x00\x01\x02"), Verdict::Known(Detected::Opaque));
    assert_eq!(classify(b"GET\t/"), Verdict::Known(Detected::Opaque));
    assert_eq!(
        classify(b"EHLO mail.example.com\r\n"),
        Verdict::Known(Detected::Opaque)
    );
    assert_eq!(
        classify(b"SSH-2.0-OpenSSH_9.6\r\n"),
        Verdict::Known(Detected::Opaque)
    );
}

#[tokio::test]
async fn detection_reads_only_until_it_knows_and_puts_the_bytes_back() {
    let (mut client, server) = tokio::io::duplex(4096);
    // The request line arrives in pieces.
    let writer = tokio::spawn(async move {
        client.write_all(b"GET /a HT").await.unwrap();
        tokio::task::yield_now().await;
        client
            .write_all(b"TP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        client
    });
    let found = detect(server, BOTH, Some(Duration::from_secs(5))).await;
    assert_eq!(found.detected, Detected::Http1 { minor: 1 });
    assert!(!found.timed_out);
    let _client = writer.await.unwrap();
    let sent = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut head = vec![0u8; sent.len()];
    let mut io = found.io;
    io.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, sent);
}

const BOTH: Inspect = Inspect {
    tls: true,
    http: true,
};

#[tokio::test]
async fn only_the_configured_inspectors_are_waited_for() {
    // tls_inspector alone: a plaintext first byte settles it at once, even mid request line.
    let (mut client, server) = tokio::io::duplex(64);
    client.write_all(b"GET /a HT").await.unwrap();
    let tls_only = Inspect {
        tls: true,
        http: false,
    };
    let found = detect(server, tls_only, Some(Duration::from_secs(5))).await;
    assert_eq!(found.detected, Detected::Opaque);
    assert!(!found.timed_out);
    // http_inspector alone: a ClientHello is just bytes.
    let (mut client, server) = tokio::io::duplex(4096);
    client
        .write_all(&client_hello(Some("a.example"), &["h2"]))
        .await
        .unwrap();
    let http_only = Inspect {
        tls: false,
        http: true,
    };
    let found = detect(server, http_only, Some(Duration::from_secs(5))).await;
    assert_eq!(found.detected, Detected::Opaque);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_waits_for_the_server_is_opaque_at_the_timeout() {
    let (_client, server) = tokio::io::duplex(64);
    let start = tokio::time::Instant::now();
    let found = detect(server, BOTH, Some(Duration::from_secs(15))).await;
    assert_eq!(found.detected, Detected::Opaque);
    assert!(found.timed_out);
    assert_eq!(start.elapsed(), Duration::from_secs(15));
}

#[tokio::test]
async fn a_client_that_closes_early_is_judged_on_what_it_sent() {
    let (mut client, server) = tokio::io::duplex(64);
    client.write_all(b"hello").await.unwrap();
    drop(client);
    let found = detect(server, BOTH, Some(Duration::from_secs(5))).await;
    assert_eq!(found.detected, Detected::Opaque);
    assert!(!found.timed_out);
    let mut all = Vec::new();
    let mut io = found.io;
    io.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"hello");
}
