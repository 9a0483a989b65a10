//! The ADS server against a raw xDS client: versions, nonces, ACK/NACK tracking, push order,
//! and delta removals, over a real gRPC stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use weft_control_plane::xds::{
    AdsService, ConfigVersion, ResourceGenerator, Resources, StatusRegistry,
};
use xds_protos::node::NodeIdentity;
use xds_protos::pb::google::protobuf::Any;
use xds_protos::pb::google::rpc::Status;
use xds_protos::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use xds_protos::{AggregatedDiscoveryServiceClient, DeltaDiscoveryRequest, DiscoveryRequest};

/// Serves a fixed set of named resources per type (their content is just the name's bytes
/// plus a generation, enough to tell versions apart).
struct Fixed(BTreeMap<&'static str, Vec<String>>, u8);

impl ResourceGenerator for Fixed {
    fn generate(&self, _: &NodeIdentity) -> Resources {
        let mut r = Resources::default();
        for (t, names) in &self.0 {
            for n in names {
                let mut value = n.as_bytes().to_vec();
                value.push(self.1);
                r.insert(
                    t,
                    n.clone(),
                    Any {
                        type_url: t.to_string(),
                        value,
                    },
                );
            }
        }
        r
    }
}

fn config(version: &str, clusters: &[&str], generation: u8) -> Arc<ConfigVersion> {
    let mut m = BTreeMap::new();
    m.insert(CLUSTER, clusters.iter().map(|s| s.to_string()).collect());
    m.insert(ENDPOINT, clusters.iter().map(|s| s.to_string()).collect());
    m.insert(LISTENER, vec!["virtualOutbound".to_string()]);
    m.insert(ROUTE, vec!["http_proxy".to_string()]);
    Arc::new(ConfigVersion::new(version, Arc::new(Fixed(m, generation))))
}

async fn server(
    initial: Arc<ConfigVersion>,
) -> (
    String,
    watch::Sender<Arc<ConfigVersion>>,
    Arc<StatusRegistry>,
) {
    server_with_slots(initial, weft_control_plane::xds::PUSH_SLOTS).await
}

async fn server_with_slots(
    initial: Arc<ConfigVersion>,
    slots: usize,
) -> (
    String,
    watch::Sender<Arc<ConfigVersion>>,
    Arc<StatusRegistry>,
) {
    let (tx, rx) = watch::channel(initial);
    let status = Arc::new(StatusRegistry::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let ads = AdsService::with_push_slots(rx, status.clone(), slots);
    tokio::spawn(weft_control_plane::xds::serve(
        listener,
        ads,
        std::future::pending(),
    ));
    (format!("http://{addr}"), tx, status)
}

/// A state-of-the-world ADS stream to `url`: what to send on, what comes back.
async fn open_sotw(
    url: &str,
) -> (
    mpsc::Sender<DiscoveryRequest>,
    tonic::Streaming<xds_protos::DiscoveryResponse>,
) {
    let mut client = AggregatedDiscoveryServiceClient::connect(url.to_string())
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(16);
    let responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    (tx, responses)
}

/// A delta ADS stream to `url`.
async fn open_delta(
    url: &str,
) -> (
    mpsc::Sender<DeltaDiscoveryRequest>,
    tonic::Streaming<xds_protos::DeltaDiscoveryResponse>,
) {
    let mut client = AggregatedDiscoveryServiceClient::connect(url.to_string())
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(16);
    let responses = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    (tx, responses)
}

/// The next message on a stream, failing the test if none comes in time.
async fn next<T>(stream: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a response in time")
        .expect("no stream error")
        .expect("stream still open")
}

fn node() -> Option<xds_protos::pb::envoy::config::core::v3::Node> {
    Some(
        NodeIdentity {
            id: "test-proxy".into(),
            ..Default::default()
        }
        .to_node("test"),
    )
}

#[tokio::test]
async fn sotw_versions_acks_nacks_and_push_order() {
    let (url, publish, status) = server(config("v1", &["a", "b"], 1)).await;
    let (tx, mut responses) = open_sotw(&url).await;

    tx.send(DiscoveryRequest {
        node: node(),
        type_url: CLUSTER.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let cds: xds_protos::DiscoveryResponse = next(&mut responses).await;
    assert_eq!(
        (
            cds.type_url.as_str(),
            cds.version_info.as_str(),
            cds.resources.len()
        ),
        (CLUSTER, "v1", 2)
    );
    // Endpoints by name: only what is asked for.
    tx.send(DiscoveryRequest {
        type_url: ENDPOINT.into(),
        resource_names: vec!["a".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let eds: xds_protos::DiscoveryResponse = next(&mut responses).await;
    assert_eq!(eds.resources.len(), 1);
    // ACK both.
    for r in [&cds, &eds] {
        let names = if r.type_url == ENDPOINT {
            vec!["a".to_string()]
        } else {
            vec![]
        };
        tx.send(DiscoveryRequest {
            type_url: r.type_url.clone(),
            version_info: r.version_info.clone(),
            response_nonce: r.nonce.clone(),
            resource_names: names,
            ..Default::default()
        })
        .await
        .unwrap();
    }

    // Both ACKs recorded before the config changes (a later ACK would be stale).
    for _ in 0..200 {
        let acked = status.snapshot().first().is_some_and(|p| {
            [CLUSTER, ENDPOINT].iter().all(|t| {
                p.types
                    .get(*t)
                    .and_then(|s| s.last_acked_version.as_deref())
                    == Some("v1")
            })
        });
        if acked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A new config: clusters first; endpoints only once clusters are answered.
    publish.send(config("v2", &["a", "c"], 2)).unwrap();
    let cds2: xds_protos::DiscoveryResponse = next(&mut responses).await;
    assert_eq!(
        (cds2.type_url.as_str(), cds2.version_info.as_str()),
        (CLUSTER, "v2")
    );
    // Make before break: until routes no longer use it, the dropped cluster is sent too.
    assert_eq!(sorted_names(&cds2), ["a", "b", "c"]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), responses.message())
            .await
            .is_err(),
        "nothing before the CDS answer"
    );
    // NACK the clusters: recorded with the reason, and the push moves on.
    tx.send(DiscoveryRequest {
        type_url: CLUSTER.into(),
        version_info: "v1".into(),
        response_nonce: cds2.nonce.clone(),
        error_detail: Some(Status {
            code: 3,
            message: "Cluster c: lb_policy: unsupported".into(),
            details: vec![],
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let eds2: xds_protos::DiscoveryResponse = next(&mut responses).await;
    assert_eq!(
        (eds2.type_url.as_str(), eds2.version_info.as_str()),
        (ENDPOINT, "v2")
    );
    let proxies = status.snapshot();
    let t = &proxies[0].types[CLUSTER];
    assert_eq!(t.last_acked_version.as_deref(), Some("v1"));
    assert_eq!(
        t.last_nack.as_ref().map(|n| n.error_detail.as_str()),
        Some("Cluster c: lb_policy: unsupported")
    );

    // A stale nonce is ignored: no response to it.
    tx.send(DiscoveryRequest {
        type_url: ENDPOINT.into(),
        response_nonce: "stale".into(),
        resource_names: vec!["c".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), responses.message())
            .await
            .is_err()
    );

    // Once the endpoints are answered, the clusters are sent again without the dropped one.
    tx.send(DiscoveryRequest {
        type_url: ENDPOINT.into(),
        version_info: eds2.version_info.clone(),
        response_nonce: eds2.nonce.clone(),
        resource_names: vec!["a".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let cds3: xds_protos::DiscoveryResponse = next(&mut responses).await;
    assert_eq!(cds3.type_url, CLUSTER);
    assert_eq!(sorted_names(&cds3), ["a", "c"]);
}

/// The names of a response of [`config`]'s resources (each value is its name and a generation
/// byte).
fn sorted_names(r: &xds_protos::DiscoveryResponse) -> Vec<String> {
    let mut names: Vec<String> = names_of(r)
        .into_iter()
        .map(|mut n| {
            n.pop();
            n
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn delta_sends_changes_and_removals_only() {
    let (url, publish, _status) = server(config("v1", &["a", "b"], 1)).await;
    let (tx, mut responses) = open_delta(&url).await;

    // Reconnecting with "b" already held at its current version: only "a" is sent.
    let held_b = Fixed(BTreeMap::from([(CLUSTER, vec!["b".to_string()])]), 1)
        .generate(&NodeIdentity::default());
    let b_version = held_b.get(CLUSTER, "b").expect("b").version.clone();
    tx.send(DeltaDiscoveryRequest {
        node: node(),
        type_url: CLUSTER.into(),
        initial_resource_versions: [("b".to_string(), b_version)].into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let first = next(&mut responses).await;
    let names: Vec<_> = first.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a"]);
    tx.send(DeltaDiscoveryRequest {
        type_url: CLUSTER.into(),
        response_nonce: first.nonce.clone(),
        ..Default::default()
    })
    .await
    .unwrap();

    // "a" changes, "b" goes, "c" comes: additions first...
    publish.send(config("v2", &["a", "c"], 2)).unwrap();
    let update = next(&mut responses).await;
    let mut names: Vec<_> = update.resources.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["a", "c"]);
    assert!(
        update.removed_resources.is_empty(),
        "removals wait for the new routes"
    );
    assert_eq!(update.system_version_info, "v2");
    tx.send(DeltaDiscoveryRequest {
        type_url: CLUSTER.into(),
        response_nonce: update.nonce.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    // ...then the removal.
    let removal = next(&mut responses).await;
    assert!(removal.resources.is_empty());
    assert_eq!(removal.removed_resources, ["b"]);

    // Subscribing by name to something that does not exist is answered, as removed.
    tx.send(DeltaDiscoveryRequest {
        type_url: ENDPOINT.into(),
        resource_names_subscribe: vec!["nope".into(), "a".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let eds = next(&mut responses).await;
    assert_eq!(
        eds.resources
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(eds.removed_resources, ["nope"]);
}

/// A delta proxy's first request of a type is answered even when there is nothing to send:
/// weft-proxy counts a type as received on its first answer, so an empty mesh must still get
/// one. A reconnecting proxy that subscribes by name to what it holds is sent only what it
/// holds in an old version, or lacks.
#[tokio::test]
async fn delta_answers_every_first_request_and_resends_only_stale_subscriptions() {
    let (url, _publish, _status) = server(config("v1", &[], 1)).await;
    let (tx, mut responses) = open_delta(&url).await;
    tx.send(DeltaDiscoveryRequest {
        node: node(),
        type_url: CLUSTER.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let empty = next(&mut responses).await;
    assert_eq!(empty.type_url, CLUSTER);
    assert!(empty.resources.is_empty() && empty.removed_resources.is_empty());

    let (url, _publish, _status) = server(config("v1", &["a", "b"], 1)).await;
    let (tx, mut responses) = open_delta(&url).await;
    let current = Fixed(BTreeMap::from([(ENDPOINT, vec!["a".to_string()])]), 1)
        .generate(&NodeIdentity::default());
    let a_version = current.get(ENDPOINT, "a").expect("a").version.clone();
    // "a" held at its current version, "b" at an old one, "gone" no longer exists.
    tx.send(DeltaDiscoveryRequest {
        node: node(),
        type_url: ENDPOINT.into(),
        resource_names_subscribe: vec!["a".into(), "b".into(), "gone".into()],
        initial_resource_versions: [
            ("a".to_string(), a_version),
            ("b".to_string(), "old".to_string()),
            ("gone".to_string(), "old".to_string()),
        ]
        .into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let eds = next(&mut responses).await;
    let names: Vec<_> = eds.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["b"], "a is held at its current version");
    // "gone" is reported removed, in this answer or, while a push runs, in its removal step.
    let mut removed = eds.removed_resources.clone();
    let mut nonce = eds.nonce.clone();
    while removed.is_empty() {
        tx.send(DeltaDiscoveryRequest {
            type_url: ENDPOINT.into(),
            response_nonce: nonce,
            ..Default::default()
        })
        .await
        .unwrap();
        let r = next(&mut responses).await;
        assert_eq!(r.type_url, ENDPOINT);
        removed = r.removed_resources;
        nonce = r.nonce;
    }
    assert_eq!(removed, ["gone"]);
}

/// A delta proxy subscribes to a new cluster's endpoints in the middle of a push (before it
/// ACKs the clusters, as Envoy and weft-proxy do): the answer adds them, and does not remove
/// the endpoints of a dropped cluster that the routes not yet replaced still use.
#[tokio::test]
async fn a_delta_subscription_during_a_push_removes_nothing_before_the_routes_change() {
    let (url, publish, _status) = server(config("v1", &["a", "b"], 1)).await;
    let (tx, mut responses) = open_delta(&url).await;
    let ack = |r: &xds_protos::DeltaDiscoveryResponse| DeltaDiscoveryRequest {
        type_url: r.type_url.clone(),
        response_nonce: r.nonce.clone(),
        ..Default::default()
    };
    tx.send(DeltaDiscoveryRequest {
        node: node(),
        type_url: CLUSTER.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let cds = next(&mut responses).await;
    tx.send(DeltaDiscoveryRequest {
        type_url: ENDPOINT.into(),
        resource_names_subscribe: vec!["a".into(), "b".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    tx.send(ack(&cds)).await.unwrap();
    let eds = next(&mut responses).await;
    assert_eq!(eds.resources.len(), 2);
    tx.send(ack(&eds)).await.unwrap();

    publish.send(config("v2", &["a", "c"], 2)).unwrap();
    let cds = next(&mut responses).await;
    assert_eq!(
        (cds.type_url.as_str(), cds.removed_resources.len()),
        (CLUSTER, 0)
    );
    tx.send(DeltaDiscoveryRequest {
        type_url: ENDPOINT.into(),
        resource_names_subscribe: vec!["c".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let eds = next(&mut responses).await;
    let names: Vec<_> = eds.resources.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&"c"), "{names:?}");
    assert!(
        eds.removed_resources.is_empty(),
        "b's endpoints went before the routes changed: {:?}",
        eds.removed_resources
    );
    tx.send(ack(&eds)).await.unwrap();
    tx.send(ack(&cds)).await.unwrap();
    // The rest of the push: the removals come last, clusters before endpoints.
    let mut removals = Vec::new();
    while removals.len() < 2 {
        let r = next(&mut responses).await;
        if !r.removed_resources.is_empty() {
            assert_eq!(r.removed_resources, ["b"]);
            removals.push(r.type_url.clone());
        }
        tx.send(ack(&r)).await.unwrap();
    }
    assert_eq!(removals, [CLUSTER, ENDPOINT]);
}

/// Opens a sotw stream and asks for the clusters.
async fn cds_stream(
    url: &str,
) -> (
    mpsc::Sender<DiscoveryRequest>,
    tonic::Streaming<xds_protos::DiscoveryResponse>,
) {
    let (tx, responses) = open_sotw(url).await;
    tx.send(DiscoveryRequest {
        node: node(),
        type_url: CLUSTER.into(),
        ..Default::default()
    })
    .await
    .expect("send");
    (tx, responses)
}

/// Whether `b` is answered within a short wait (used to show it is not, while another
/// stream holds the only push slot).
async fn answered_soon<T>(b: &mut tonic::Streaming<T>) -> bool {
    tokio::time::timeout(Duration::from_millis(300), b.message())
        .await
        .is_ok()
}

#[tokio::test]
async fn a_proxy_waits_for_a_push_slot_until_the_one_holding_it_is_configured() {
    let (url, _publish, _) = server_with_slots(config("v1", &["a"], 1), 1).await;
    let (a_tx, mut a) = cds_stream(&url).await;
    let cds = next(&mut a).await;
    let (_b_tx, mut b) = cds_stream(&url).await;
    // The only slot is a's until a answers: b gets nothing meanwhile.
    assert!(
        !answered_soon(&mut b).await,
        "b was answered while a held the only slot"
    );
    let ack =
        |r: &xds_protos::DiscoveryResponse, type_url: &str, names: &[&str]| DiscoveryRequest {
            type_url: type_url.into(),
            version_info: r.version_info.clone(),
            response_nonce: r.nonce.clone(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        };
    a_tx.send(ack(&cds, CLUSTER, &[])).await.expect("ack");
    // a answered everything it was sent, but it was sent clusters whose endpoints it has not
    // asked for yet: connecting, it keeps the slot for them.
    assert!(
        !answered_soon(&mut b).await,
        "b was answered before a asked for endpoints"
    );
    a_tx.send(DiscoveryRequest {
        type_url: ENDPOINT.into(),
        resource_names: vec!["a".into()],
        ..Default::default()
    })
    .await
    .expect("eds request");
    let eds = next(&mut a).await;
    assert_eq!(eds.type_url, ENDPOINT);
    a_tx.send(ack(&eds, ENDPOINT, &["a"])).await.expect("ack");
    let cds = next(&mut b).await;
    assert_eq!((cds.type_url.as_str(), cds.resources.len()), (CLUSTER, 1));
}

/// Serves clusters and endpoints whose content is set per name, so that one can change alone.
struct PerName(BTreeMap<&'static str, u8>);

impl ResourceGenerator for PerName {
    fn generate(&self, _: &NodeIdentity) -> Resources {
        let mut r = Resources::default();
        for (name, content) in &self.0 {
            for t in [CLUSTER, ENDPOINT] {
                let value = if t == CLUSTER {
                    name.as_bytes().to_vec()
                } else {
                    vec![*content]
                };
                let any = Any {
                    type_url: t.to_string(),
                    value,
                };
                r.insert(t, name.to_string(), any);
            }
        }
        r
    }
}

fn per_name(version: &str, endpoints: &[(&'static str, u8)]) -> Arc<ConfigVersion> {
    let g = PerName(endpoints.iter().copied().collect());
    Arc::new(ConfigVersion::new(version, Arc::new(g)))
}

fn names_of(r: &xds_protos::DiscoveryResponse) -> Vec<String> {
    r.resources
        .iter()
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
        .collect()
}

#[tokio::test]
async fn sotw_resends_only_the_endpoints_that_changed_or_are_newly_subscribed() {
    let (url, publish, _) = server(per_name("v1", &[("a", 1), ("b", 1)])).await;
    let (tx, mut responses) = open_sotw(&url).await;
    let request =
        |type_url: &str, names: &[&str], answered: Option<&xds_protos::DiscoveryResponse>| {
            DiscoveryRequest {
                node: node(),
                type_url: type_url.into(),
                resource_names: names.iter().map(|n| n.to_string()).collect(),
                version_info: answered.map(|r| r.version_info.clone()).unwrap_or_default(),
                response_nonce: answered.map(|r| r.nonce.clone()).unwrap_or_default(),
                ..Default::default()
            }
        };
    tx.send(request(CLUSTER, &[], None)).await.unwrap();
    let cds: xds_protos::DiscoveryResponse = next(&mut responses).await;
    tx.send(request(ENDPOINT, &["a", "b"], None)).await.unwrap();
    let eds: xds_protos::DiscoveryResponse = next(&mut responses).await;
    assert_eq!(
        names_of(&eds),
        ["\u{1}", "\u{1}"],
        "a new subscription gets everything"
    );
    tx.send(request(CLUSTER, &[], Some(&cds))).await.unwrap();
    tx.send(request(ENDPOINT, &["a", "b"], Some(&eds)))
        .await
        .unwrap();

    // Only a's endpoints change, and c appears (its cluster too; its endpoints are not
    // subscribed): clusters are sent whole, the endpoints response carries a alone.
    publish
        .send(per_name("v2", &[("a", 2), ("b", 1), ("c", 1)]))
        .unwrap();
    let cds2: xds_protos::DiscoveryResponse = next(&mut responses).await;
    assert_eq!((cds2.type_url.as_str(), cds2.resources.len()), (CLUSTER, 3));
    tx.send(request(CLUSTER, &[], Some(&cds2))).await.unwrap();
    let eds2: xds_protos::DiscoveryResponse = next(&mut responses).await;
    assert_eq!(
        (eds2.type_url.as_str(), eds2.version_info.as_str()),
        (ENDPOINT, "v2")
    );
    assert_eq!(names_of(&eds2), ["\u{2}"], "only the changed assignment");

    // Subscribing to c as well: only c is sent, a and b are held already.
    tx.send(request(ENDPOINT, &["a", "b", "c"], Some(&eds2)))
        .await
        .unwrap();
    let eds3: xds_protos::DiscoveryResponse = next(&mut responses).await;
    assert_eq!(names_of(&eds3), ["\u{1}"]);
    assert_eq!(eds3.resources.len(), 1);

    // The same names in another order, one repeated, are the same subscription: no response.
    // (Were one sent, the next request would carry a stale nonce, be ignored, and the wait
    // for its answer fail.)
    tx.send(request(ENDPOINT, &["c", "a", "b", "a"], Some(&eds3)))
        .await
        .unwrap();
    tx.send(request(ENDPOINT, &["c", "a"], Some(&eds3)))
        .await
        .unwrap();
    let dropped: xds_protos::DiscoveryResponse = next(&mut responses).await;
    let nonce = |r: &xds_protos::DiscoveryResponse| r.nonce.parse::<u64>().expect("a number");
    assert_eq!(nonce(&dropped), nonce(&eds3) + 1, "answers the change only");
    assert!(dropped.resources.is_empty(), "a and c are held already");
    // b was dropped: subscribing to it again sends it again.
    tx.send(request(ENDPOINT, &["a", "b", "c"], Some(&dropped)))
        .await
        .unwrap();
    let again: xds_protos::DiscoveryResponse = next(&mut responses).await;
    assert_eq!(again.resources.len(), 1);
    assert_eq!(names_of(&again), ["\u{1}"]);
}

const SCOPED_MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: greeter, namespace: prod}
spec:
  hosts: [greeter.prod.svc.cluster.local]
  ports: [{number: 80, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: internal, namespace: prod}
spec:
  hosts: [internal.prod.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.3}]
  exportTo: ["."]
"#;

const RATINGS_SIDECAR: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings, namespace: default}
spec:
  workloadSelector: {labels: {app: ratings}}
  egress:
  - hosts: ["prod/*"]
"#;

/// The mesh of `files`, translated as weftd does, published as `version`.
fn mesh_config(version: &str, files: &[&str]) -> Arc<ConfigVersion> {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, text) in files.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.yaml")), text).expect("write");
    }
    let (config, diagnostics) = weft_control_plane::source::load_dir(dir.path());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let mesh = weft_control_plane::translate::MeshSnapshot::new(config, Default::default());
    Arc::new(ConfigVersion::new(version, Arc::new(mesh)))
}

/// The names of translated clusters or load assignments in a sotw response.
fn translated_names(r: &xds_protos::DiscoveryResponse) -> Vec<String> {
    use prost::Message;
    use xds_protos::pb::envoy::config::cluster::v3::Cluster;
    use xds_protos::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    r.resources
        .iter()
        .map(|a| match a.type_url.as_str() {
            CLUSTER => Cluster::decode(a.value.as_slice()).expect("a cluster").name,
            _ => {
                ClusterLoadAssignment::decode(a.value.as_slice())
                    .expect("an assignment")
                    .cluster_name
            }
        })
        .collect()
}

fn ratings_node() -> Option<xds_protos::pb::envoy::config::core::v3::Node> {
    Some(
        NodeIdentity {
            id: "ratings-1".into(),
            namespace: "default".into(),
            labels: [("app".to_string(), "ratings".to_string())].into(),
            outbound_addr: Some("127.0.0.1:15001".into()),
            ..Default::default()
        }
        .to_node("test"),
    )
}

const SCOPED_CLUSTERS: [&str; 1] = ["outbound|80||greeter.prod.svc.cluster.local"];
const ALL_VISIBLE_CLUSTERS: [&str; 2] = [
    "outbound|80||greeter.prod.svc.cluster.local",
    "outbound|9080||reviews.default.svc.cluster.local",
];

#[tokio::test]
async fn a_proxy_with_an_egress_sidecar_gets_only_the_allowed_clusters_over_sotw() {
    let (url, publish, _status) = server(mesh_config("v1", &[SCOPED_MESH, RATINGS_SIDECAR])).await;
    let (tx, mut responses) = open_sotw(&url).await;
    tx.send(DiscoveryRequest {
        node: ratings_node(),
        type_url: CLUSTER.into(),
        ..Default::default()
    })
    .await
    .expect("send");
    let cds = next(&mut responses).await;
    assert_eq!(translated_names(&cds), SCOPED_CLUSTERS);
    // Endpoints asked by name: those outside the scope are not sent.
    tx.send(DiscoveryRequest {
        type_url: ENDPOINT.into(),
        resource_names: ALL_VISIBLE_CLUSTERS.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .expect("send");
    let eds = next(&mut responses).await;
    assert_eq!(translated_names(&eds), SCOPED_CLUSTERS);
    for (t, r) in [(CLUSTER, &cds), (ENDPOINT, &eds)] {
        tx.send(DiscoveryRequest {
            type_url: t.into(),
            version_info: r.version_info.clone(),
            response_nonce: r.nonce.clone(),
            resource_names: if t == ENDPOINT {
                SCOPED_CLUSTERS.iter().map(|s| s.to_string()).collect()
            } else {
                vec![]
            },
            ..Default::default()
        })
        .await
        .expect("ack");
    }

    // Without the Sidecar the same proxy reaches what is exported to its namespace.
    publish.send(mesh_config("v2", &[SCOPED_MESH])).unwrap();
    let cds = next(&mut responses).await;
    assert_eq!(cds.type_url, CLUSTER);
    assert_eq!(translated_names(&cds), ALL_VISIBLE_CLUSTERS);
}

#[tokio::test]
async fn a_proxy_with_an_egress_sidecar_gets_only_the_allowed_clusters_over_delta() {
    let (url, publish, _status) = server(mesh_config("v1", &[SCOPED_MESH, RATINGS_SIDECAR])).await;
    let (tx, mut responses) = open_delta(&url).await;
    tx.send(DeltaDiscoveryRequest {
        node: ratings_node(),
        type_url: CLUSTER.into(),
        ..Default::default()
    })
    .await
    .expect("send");
    let cds = next(&mut responses).await;
    let names: Vec<_> = cds.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, SCOPED_CLUSTERS);
    tx.send(DeltaDiscoveryRequest {
        type_url: CLUSTER.into(),
        response_nonce: cds.nonce.clone(),
        ..Default::default()
    })
    .await
    .expect("ack");
    // Asking by name for an endpoint outside the scope: it is answered as removed.
    tx.send(DeltaDiscoveryRequest {
        type_url: ENDPOINT.into(),
        resource_names_subscribe: ALL_VISIBLE_CLUSTERS.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .expect("send");
    let eds = next(&mut responses).await;
    let names: Vec<_> = eds.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, SCOPED_CLUSTERS);
    assert_eq!(
        eds.removed_resources,
        ["outbound|9080||reviews.default.svc.cluster.local"]
    );
    tx.send(DeltaDiscoveryRequest {
        type_url: ENDPOINT.into(),
        response_nonce: eds.nonce.clone(),
        ..Default::default()
    })
    .await
    .expect("ack");

    // Without the Sidecar, only the newly reachable cluster is sent.
    publish.send(mesh_config("v2", &[SCOPED_MESH])).unwrap();
    let cds = next(&mut responses).await;
    assert_eq!(cds.type_url, CLUSTER);
    let names: Vec<_> = cds.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["outbound|9080||reviews.default.svc.cluster.local"]);
}
