//! Access log lines and Istio metrics from the one completion record: response flags with
//! Envoy's response code details for each kind of failure, byte counts read from the frames
//! (chunked and gRPC), durations to the last byte, and a client that leaves (`DC`).

use super::harness::*;
use crate::test_fixtures::istio_default_retry;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use xds_protos::pb::envoy::config::accesslog::v3::{access_log, AccessLog};
use xds_protos::pb::envoy::config::cluster::v3::{circuit_breakers::Thresholds, CircuitBreakers};
use xds_protos::pb::envoy::config::core::v3::{
    data_source, substitution_format_string::Format, DataSource, Http2ProtocolOptions,
    SubstitutionFormatString,
};
use xds_protos::pb::envoy::config::route::v3::RetryPolicy;
use xds_protos::pb::envoy::extensions::access_loggers::stream::v3::{
    stdout_access_log, StdoutAccessLog,
};
use xds_protos::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, FaultAbort, HttpFault,
};
use xds_protos::pb::envoy::extensions::filters::http::router::v3::Router;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use xds_protos::pb::envoy::r#type::v3::FractionalPercent;
use xds_protos::pb::google::protobuf::{
    value, Duration as ProtoDuration, Struct, UInt32Value, Value,
};
use xds_protos::type_url;

const CLUSTER: &str = "outbound|9080||reviews.default.svc.cluster.local";

/// A stdout logger writing these keys and operators as JSON.
fn json_log() -> AccessLog {
    let fields = [
        ("id", "%REQ(X-REQUEST-ID)%"),
        ("code", "%RESPONSE_CODE%"),
        ("flags", "%RESPONSE_FLAGS%"),
        ("details", "%RESPONSE_CODE_DETAILS%"),
        ("failure", "%UPSTREAM_TRANSPORT_FAILURE_REASON%"),
        ("received", "%BYTES_RECEIVED%"),
        ("sent", "%BYTES_SENT%"),
        ("duration", "%DURATION%"),
        ("host", "%UPSTREAM_HOST%"),
        ("cluster", "%UPSTREAM_CLUSTER%"),
        ("route", "%ROUTE_NAME%"),
        ("grpc", "%GRPC_STATUS_NUMBER%"),
        ("attempts", "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"),
    ];
    let fields = fields
        .into_iter()
        .map(|(k, v)| {
            let v = Value {
                kind: Some(value::Kind::StringValue(v.into())),
            };
            (k.to_string(), v)
        })
        .collect();
    stdout_log(Format::JsonFormat(Struct { fields }))
}

fn stdout_log(format: Format) -> AccessLog {
    let config = StdoutAccessLog {
        access_log_format: Some(stdout_access_log::AccessLogFormat::LogFormat(
            SubstitutionFormatString {
                format: Some(format),
                ..Default::default()
            },
        )),
    };
    AccessLog {
        name: "envoy.access_loggers.stdout".into(),
        config_type: Some(access_log::ConfigType::TypedConfig(any(
            type_url::STDOUT_ACCESS_LOG,
            &config,
        ))),
        ..Default::default()
    }
}

/// The JSON line of the request with this `x-request-id`.
async fn entry(lines: &LogLines, id: &str) -> serde_json::Value {
    let line = lines.line(&format!("\"id\":\"{id}\"")).await;
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn request(path: &str, id: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://svc{path}"))
        .header("host", "svc")
        .header("x-request-id", id)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn filter<M: prost::Message>(name: &str, url: &str, m: &M) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(url, m))),
        ..Default::default()
    }
}

fn fault_and_router() -> Vec<HttpFilter> {
    vec![
        filter(
            "envoy.filters.http.fault",
            type_url::HTTP_FAULT,
            &HttpFault::default(),
        ),
        filter(
            "envoy.filters.http.router",
            type_url::ROUTER,
            &Router::default(),
        ),
    ]
}

fn millis(ms: i64) -> ProtoDuration {
    ProtoDuration {
        seconds: ms / 1000,
        nanos: (ms % 1000) as i32 * 1_000_000,
    }
}

fn n(v: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value: v })
}

#[tokio::test]
async fn every_local_answer_names_its_flag_and_details() {
    let ok = Upstream::fixed(200, "ok").await;
    let unavailable = Upstream::fixed(503, "busy").await;
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let held = Upstream::start(move |_, _| {
        let g = g.clone();
        async move {
            g.acquire().await.unwrap().forget();
            respond(200, "late")
        }
    })
    .await;
    let dead = dead_address().await;
    let path = |p: &str| {
        let p = p.to_string();
        move |r: &mut xds_protos::pb::envoy::config::route::v3::Route| {
            r.name = format!("route{p}");
            r.r#match.as_mut().unwrap().path_specifier = Some(
                xds_protos::pb::envoy::config::route::v3::route_match::PathSpecifier::Prefix(p),
            );
        }
    };
    let abort = HttpFault {
        abort: Some(FaultAbort {
            percentage: Some(FractionalPercent {
                numerator: 100,
                denominator: 0,
            }),
            error_type: Some(ErrorType::HttpStatus(418)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let routes = vec![
        route_to("dead", {
            let p = path("/uf");
            move |r, _| p(r)
        }),
        route_to("empty", {
            let p = path("/uh");
            move |r, _| p(r)
        }),
        route_to("held", {
            let p = path("/held");
            move |r, ra| {
                p(r);
                ra.timeout = Some(millis(20_000));
            }
        }),
        route_to("unavailable", {
            let p = path("/urx");
            move |r, ra| {
                p(r);
                ra.retry_policy = Some(RetryPolicy {
                    retry_on: "5xx".into(),
                    num_retries: n(1),
                    ..Default::default()
                });
            }
        }),
        route_to("hung", {
            let p = path("/ut");
            move |r, ra| {
                p(r);
                ra.timeout = Some(millis(50));
            }
        }),
        route_to("hung", {
            let p = path("/pertry");
            move |r, ra| {
                p(r);
                ra.retry_policy = Some(RetryPolicy {
                    retry_on: "5xx".into(),
                    num_retries: n(1),
                    per_try_timeout: Some(millis(30)),
                    ..Default::default()
                });
            }
        }),
        route_to("ok", {
            let p = path("/fi");
            move |r, _| {
                p(r);
                r.typed_per_filter_config = HashMap::from([(
                    "envoy.filters.http.fault".to_string(),
                    any(type_url::HTTP_FAULT, &abort),
                )]);
            }
        }),
        route_to(CLUSTER, {
            let p = path("/ok");
            move |r, ra| {
                p(r);
                ra.retry_policy = Some(istio_default_retry());
            }
        }),
    ];
    let hung = Upstream::start(|_, _| async move {
        std::future::pending::<()>().await;
        respond(200, "never")
    })
    .await;
    let mut held_cluster = cluster("held", &[held.addr]);
    held_cluster.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_requests: n(1),
            ..Default::default()
        }],
        ..Default::default()
    });
    let clusters = vec![
        cluster("dead", &[dead]),
        cluster("empty", &[]),
        held_cluster,
        cluster("unavailable", &[unavailable.addr]),
        cluster("hung", &[hung.addr]),
        cluster("ok", &[ok.addr]),
        cluster(CLUSTER, &[ok.addr]),
    ];
    let (proxy, lines) =
        TestProxy::start_logged(vhost(routes), fault_and_router(), clusters, json_log()).await;
    let proxy = Arc::new(proxy);

    assert_eq!(proxy.send(request("/ok", "ok")).await.status, 200);
    assert_eq!(proxy.send(request("/none", "nr")).await.status, 404);
    assert_eq!(proxy.send(request("/uf", "uf")).await.status, 503);
    assert_eq!(proxy.send(request("/uh", "uh")).await.status, 503);
    assert_eq!(proxy.send(request("/urx", "urx")).await.status, 503);
    assert_eq!(proxy.send(request("/ut", "ut")).await.status, 504);
    assert_eq!(proxy.send(request("/pertry", "pertry")).await.status, 504);
    assert_eq!(proxy.send(request("/fi", "fi")).await.status, 418);
    // The one request the breaker allows is held; the next overflows.
    let p = proxy.clone();
    let first = tokio::spawn(async move { p.send(request("/held", "held")).await });
    while held.requests() == 0 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(proxy.send(request("/held", "uo")).await.status, 503);
    gate.add_permits(1);
    assert_eq!(first.await.unwrap().status, 200);

    let ok_line = entry(&lines, "ok").await;
    assert_eq!(ok_line["code"], 200);
    assert_eq!(ok_line["flags"], "-");
    assert_eq!(ok_line["details"], "via_upstream");
    assert_eq!(ok_line["sent"], 2);
    assert_eq!(ok_line["host"], ok.addr.to_string());
    assert_eq!(ok_line["cluster"], CLUSTER);
    assert_eq!(ok_line["route"], "route/ok");
    assert_eq!(ok_line["attempts"], 1);
    assert_eq!(ok_line["failure"], serde_json::Value::Null);

    let expect = |v: &serde_json::Value, code: u16, flags: &str, details: &str| {
        assert_eq!(v["code"], code, "{v}");
        assert_eq!(v["flags"], flags, "{v}");
        assert_eq!(v["details"], details, "{v}");
    };
    expect(&entry(&lines, "nr").await, 404, "NR", "route_not_found");
    let uf = entry(&lines, "uf").await;
    expect(
        &uf,
        503,
        "UF",
        "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
    );
    assert_eq!(uf["failure"], "delayed_connect_error:_Connection_refused");
    assert_eq!(uf["host"], dead.to_string());
    expect(&entry(&lines, "uh").await, 503, "UH", "no_healthy_upstream");
    let urx = entry(&lines, "urx").await;
    expect(&urx, 503, "URX", "via_upstream");
    assert_eq!(urx["attempts"], 2);
    expect(&entry(&lines, "ut").await, 504, "UT", "response_timeout");
    expect(
        &entry(&lines, "pertry").await,
        504,
        "UT,URX",
        "upstream_per_try_timeout",
    );
    let fi = entry(&lines, "fi").await;
    expect(&fi, 418, "FI", "fault_filter_abort");
    assert_eq!(fi["host"], serde_json::Value::Null);
    assert_eq!(fi["cluster"], "ok");
    expect(
        &entry(&lines, "uo").await,
        503,
        "UO",
        "upstream_reset_before_response_started{overflow}",
    );
    expect(&entry(&lines, "held").await, 200, "-", "via_upstream");
}

/// Istio's default text format, through a real request.
#[tokio::test]
async fn istios_default_text_format() {
    let dead = dead_address().await;
    let format = Format::TextFormatSource(DataSource {
        specifier: Some(data_source::Specifier::InlineString(
            crate::config::ISTIO_DEFAULT_TEXT_FORMAT.into(),
        )),
        ..Default::default()
    });
    let (proxy, lines) = TestProxy::start_logged(
        vhost(vec![route_to("dead", |_, _| {})]),
        vec![],
        vec![cluster("dead", &[dead])],
        stdout_log(format),
    )
    .await;
    assert_eq!(proxy.send(request("/x", "text-1")).await.status, 503);
    let line = lines.line("text-1").await;
    let expected = "\"GET /x HTTP/1.1\" 503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - \"delayed_connect_error:_Connection_refused\" 0 91 ";
    assert!(line.contains(expected), "{line}");
    assert!(
        line.contains(&format!(
            "\"text-1\" \"svc\" \"{dead}\" dead - {} 127.0.0.1:",
            proxy.addr
        )),
        "{line}"
    );
    assert!(line.ends_with(" test-route"), "{line}");
}

/// One upstream response, told part by part.
#[derive(Clone)]
enum Part {
    Data(&'static str),
    Pause(Duration),
    Trailers(&'static str, &'static str),
}

/// An upstream that reads each request, then answers with `parts` (no `content-length`, so
/// HTTP/1.1 sends it chunked), over HTTP/2 when `h2`.
async fn streaming_upstream(
    h2: bool,
    headers: &'static [(&'static str, &'static str)],
    parts: Vec<Part>,
) -> SocketAddr {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            let parts = parts.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let parts = parts.clone();
                async move {
                    // Read the request first, as a server does.
                    let _ = req.into_body().collect().await;
                    let frames = futures::stream::unfold(parts.into_iter(), |mut it| async {
                        loop {
                            match it.next()? {
                                Part::Pause(d) => tokio::time::sleep(d).await,
                                Part::Data(d) => {
                                    return Some((
                                        Ok::<_, std::convert::Infallible>(Frame::data(
                                            Bytes::from_static(d.as_bytes()),
                                        )),
                                        it,
                                    ))
                                }
                                Part::Trailers(k, v) => {
                                    let mut t = HeaderMap::new();
                                    t.insert(k, v.parse().unwrap());
                                    return Some((Ok(Frame::trailers(t)), it));
                                }
                            }
                        }
                    });
                    let mut resp = Response::new(StreamBody::new(frames));
                    for (k, v) in headers {
                        resp.headers_mut().insert(*k, v.parse().unwrap());
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let io = TokioIo::new(stream);
            if h2 {
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, svc),
                );
            } else {
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, svc));
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_chunked_body_is_counted_and_timed_to_its_last_byte() {
    let pause = Duration::from_millis(300);
    let up = streaming_upstream(
        false,
        &[],
        vec![
            Part::Data("hello"),
            Part::Pause(pause),
            Part::Data("world!"),
        ],
    )
    .await;
    let (proxy, lines) = TestProxy::start_logged(
        vhost(vec![route_to(CLUSTER, |_, _| {})]),
        vec![],
        vec![cluster(CLUSTER, &[up])],
        json_log(),
    )
    .await;
    let upload = Request::post("http://svc/upload")
        .header("host", "svc")
        .header("x-request-id", "chunked")
        .body(Full::new(Bytes::from_static(b"0123456789")))
        .unwrap();
    let reply = proxy.send(upload).await;
    assert_eq!(reply.body, "helloworld!");
    assert!(!reply.headers.contains_key("content-length"));
    let e = entry(&lines, "chunked").await;
    assert_eq!(e["sent"], 11);
    assert_eq!(e["received"], 10);
    // The body's pause is inside the duration: it runs to the last byte, not the headers.
    let duration = e["duration"].as_u64().expect("a number");
    assert!(duration >= pause.as_millis() as u64, "{e}");

    let page = crate::admin::prometheus(&proxy.ctx);
    let sum = |name: &str| -> f64 {
        page.lines()
            .find(|l| l.starts_with(&format!("{name}_sum{{")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{page}"))
    };
    assert_eq!(sum("istio_response_bytes"), 11.0);
    assert_eq!(sum("istio_request_bytes"), 10.0);
    assert!(sum("istio_request_duration_milliseconds") >= pause.as_millis() as f64);
}

#[tokio::test]
async fn grpc_status_comes_from_the_trailers() {
    let up = streaming_upstream(
        true,
        &[("content-type", "application/grpc")],
        vec![
            Part::Data("\0\0\0\0\x03abc"),
            Part::Trailers("grpc-status", "14"),
        ],
    )
    .await;
    let mut c = cluster(CLUSTER, &[up]);
    #[allow(deprecated)] // The cluster's own field, which control planes still send.
    {
        c.http2_protocol_options = Some(Http2ProtocolOptions::default());
    }
    let (proxy, lines) = TestProxy::start_logged(
        vhost(vec![route_to(CLUSTER, |_, _| {})]),
        vec![],
        vec![c],
        json_log(),
    )
    .await;
    // A gRPC client: HTTP/2 with prior knowledge.
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::post("http://svc/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-request-id", "grpc-1")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "14");
    assert_eq!(collected.to_bytes().len(), 8);

    let e = entry(&lines, "grpc-1").await;
    assert_eq!(e["code"], 200);
    assert_eq!(e["grpc"], 14);
    assert_eq!(e["sent"], 8);
    assert_eq!(e["received"], 7);
    let page = crate::admin::prometheus(&proxy.ctx);
    assert!(
        page.lines().any(|l| l.starts_with("istio_requests_total{")
            && l.contains("request_protocol=\"grpc\"")
            && l.contains("grpc_response_status=\"14\"")
            && l.ends_with(" 1")),
        "{page}"
    );
}

#[tokio::test]
async fn a_client_that_leaves_before_the_answer_is_logged_and_counted_dc() {
    let up = Upstream::start(|_, _| async move {
        std::future::pending::<()>().await;
        respond(200, "never")
    })
    .await;
    let (proxy, lines) = TestProxy::start_logged(
        vhost(vec![route_to(CLUSTER, |_, _| {})]),
        vec![],
        vec![cluster(CLUSTER, &[up.addr])],
        json_log(),
    )
    .await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let pending = tokio::spawn(async move { sender.send_request(request("/", "gone")).await });
    while up.requests() == 0 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The client goes away while the upstream thinks.
    pending.abort();
    conn.abort();

    let e = entry(&lines, "gone").await;
    assert_eq!(e["code"], 0);
    assert_eq!(e["flags"], "DC");
    assert_eq!(e["details"], "downstream_remote_disconnect");
    assert_eq!(e["host"], up.addr.to_string());
    assert_eq!(e["cluster"], CLUSTER);
    let page = crate::admin::prometheus(&proxy.ctx);
    assert!(
        page.lines().any(|l| l.starts_with("istio_requests_total{")
            && l.contains("response_code=\"0\"")
            && l.contains("response_flags=\"DC\"")
            && l.ends_with(" 1")),
        "{page}"
    );
}

#[tokio::test]
async fn a_client_that_leaves_mid_body_is_logged_dc_with_the_bytes_sent() {
    let up = streaming_upstream(
        false,
        &[],
        vec![
            Part::Data("first"),
            Part::Pause(Duration::from_secs(3600)),
            Part::Data("never"),
        ],
    )
    .await;
    let (proxy, lines) = TestProxy::start_logged(
        vhost(vec![route_to(CLUSTER, |_, _| {})]),
        vec![],
        vec![cluster(CLUSTER, &[up])],
        json_log(),
    )
    .await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let resp = sender.send_request(request("/", "midway")).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    assert_eq!(first.into_data().unwrap(), "first");
    drop(body);
    conn.abort();

    let e = entry(&lines, "midway").await;
    assert_eq!(e["code"], 200);
    assert_eq!(e["flags"], "DC");
    assert_eq!(e["details"], "via_upstream");
    assert_eq!(e["sent"], 5);
}

/// Responses that have no body to send (HEAD, 204, 304) end with their head: not `DC`.
#[tokio::test]
async fn responses_without_a_body_end_with_their_head() {
    let up = Upstream::start(|_, seen| async move {
        if seen.path == "/empty" {
            respond(204, "")
        } else {
            respond(200, "body")
        }
    })
    .await;
    let (proxy, lines) = TestProxy::start_logged(
        vhost(vec![route_to(CLUSTER, |_, _| {})]),
        vec![],
        vec![cluster(CLUSTER, &[up.addr])],
        json_log(),
    )
    .await;
    let head = Request::head("http://svc/")
        .header("host", "svc")
        .header("x-request-id", "head")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(proxy.send(head).await.status, 200);
    assert_eq!(proxy.send(request("/empty", "empty")).await.status, 204);
    for id in ["head", "empty"] {
        let e = entry(&lines, id).await;
        assert_eq!(e["flags"], "-", "{e}");
        assert_eq!(e["sent"], 0, "{e}");
    }
    // The proxy's own 404 has a text body, which a HEAD answer leaves unsent.
    let head_nr = Request::head("http://nowhere/")
        .header("host", "nowhere")
        .header("x-request-id", "head-nr")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (proxy, lines) = TestProxy::start_logged(
        xds_protos::pb::envoy::config::route::v3::VirtualHost {
            domains: vec!["svc".into()],
            ..vhost(vec![])
        },
        vec![],
        vec![],
        json_log(),
    )
    .await;
    assert_eq!(proxy.send(head_nr).await.status, 404);
    let e = entry(&lines, "head-nr").await;
    assert_eq!(e["flags"], "NR", "{e}");
    assert_eq!(e["sent"], 0, "{e}");
}
