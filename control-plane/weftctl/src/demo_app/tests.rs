use super::*;
use http_body_util::BodyExt;
use std::collections::HashMap;

fn app(service: &str, version: &str, proxy: Option<SocketAddr>) -> App {
    App::new(&DemoAppArgs {
        service: service.into(),
        version: version.into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        proxy,
        namespace: "default".into(),
        peer_port: 9080,
    })
    .unwrap()
}

async fn get(app: &App, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = handle(app, req.body(()).unwrap()).await;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap(),
    )
}

/// Stands in for a sidecar: answers absolute-form requests by handing them to the in-process
/// app named by the URL's host, and remembers the `end-user` header each call carried.
async fn fake_mesh(apps: Vec<App>) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let apps: Arc<HashMap<String, App>> =
        Arc::new(apps.into_iter().map(|a| (a.service.clone(), a)).collect());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let apps = apps.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let apps = apps.clone();
                    let seen = seen.clone();
                    async move {
                        let host = req.uri().host().unwrap_or("").to_string();
                        let user = req
                            .headers()
                            .get("end-user")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_string();
                        seen.lock().unwrap().push(format!("{host} {user}"));
                        let response = match apps.get(&host) {
                            Some(app) => handle(app, req).await,
                            None => {
                                let mut r = Response::new(Full::new(Bytes::from("no route")));
                                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                                r
                            }
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn every_answer_names_its_version() {
    let details = app("details", "v1", None);
    let (status, headers, body) = get(&details, "/details/0", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-weft-demo"], "details-v1");
    assert_eq!(body["served_by"], "details-v1");
    assert_eq!(body["author"], "William Shakespeare");

    let (status, headers, body) = get(&details, "/health", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-weft-demo"], "details-v1");
    assert_eq!(body["status"], "ok");

    let (status, _, body) = get(&details, "/nowhere", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["served_by"], "details-v1");
}

#[tokio::test]
async fn unknown_service_echoes() {
    let echo = app("httpbin", "v7", None);
    let (status, headers, body) = get(&echo, "/anything?x=1", &[("end-user", "jason")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-weft-demo"], "httpbin-v7");
    assert_eq!(body["method"], "GET");
    assert_eq!(body["path"], "/anything");
    assert_eq!(body["query"], "x=1");
    assert_eq!(body["headers"]["end-user"], "jason");
}

#[tokio::test]
async fn productpage_nests_details_reviews_and_ratings_through_the_proxy() {
    // The fake mesh needs to know its own address before reviews can call ratings through
    // it, so reviews gets a second fake mesh holding only ratings.
    let (ratings_mesh, _) = fake_mesh(vec![app("ratings", "v1", None)]).await;
    let (mesh, seen) = fake_mesh(vec![
        app("details", "v1", None),
        app("reviews", "v3", Some(ratings_mesh)),
    ])
    .await;
    let page = app("productpage", "v1", Some(mesh));
    let (status, headers, body) = get(&page, "/productpage", &[("end-user", "jason")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-weft-demo"], "productpage-v1");
    assert_eq!(body["served_by"], "productpage-v1");
    assert_eq!(body["details"]["served_by"], "details-v1");
    assert_eq!(body["reviews"]["served_by"], "reviews-v3");
    assert_eq!(body["reviews"]["ratings"]["served_by"], "ratings-v1");
    assert_eq!(body["reviews"]["reviews"][0]["rating"]["color"], "red");
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, vec!["details jason", "reviews jason"]);
}

#[tokio::test]
async fn failed_calls_become_error_fields() {
    // A mesh that knows no service answers 503 for everything.
    let (mesh, _) = fake_mesh(vec![]).await;
    let page = app("productpage", "v1", Some(mesh));
    let (status, _, body) = get(&page, "/productpage", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["details"]["status"], 503);
    assert!(body["reviews"]["error"].as_str().unwrap().contains("503"));

    let reviews = app("reviews", "v2", Some(mesh));
    let (_, _, body) = get(&reviews, "/reviews/0", &[]).await;
    assert_eq!(body["served_by"], "reviews-v2");
    assert!(body["reviews"][0]["rating"]["error"].is_string());
}

#[tokio::test]
async fn no_proxy_is_an_error_field_too() {
    let page = app("productpage", "v1", None);
    let (_, _, body) = get(&page, "/productpage", &[]).await;
    assert!(body["details"]["error"]
        .as_str()
        .unwrap()
        .contains("--proxy"));
}
