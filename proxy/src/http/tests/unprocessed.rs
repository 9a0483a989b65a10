//! Streams an HTTP/2 upstream did not process (refused, or cut off by GOAWAY) are sent again
//! once on another connection, whatever the retry policy.

use super::harness::*;
use crate::test_h2_upstream::{H2Upstream, Script};
use xds_protos::pb::envoy::config::core::v3::Http2ProtocolOptions;

fn h2_cluster(up: &H2Upstream) -> xds_protos::pb::envoy::config::cluster::v3::Cluster {
    let mut c = cluster("svc", &[up.addr]);
    #[allow(deprecated)]
    {
        c.http2_protocol_options = Some(Http2ProtocolOptions::default());
    }
    c
}

#[tokio::test]
async fn a_refused_stream_is_sent_again_on_a_new_connection_without_a_retry_policy() {
    let up = H2Upstream::start(Script::RefuseFirst).await;
    let vh = vhost(vec![route_to("svc", |_, _| {})]);
    let proxy = TestProxy::start(vh, vec![], vec![h2_cluster(&up)]).await;
    let reply = proxy.get("/").await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "ok"));
    assert_eq!(up.streams(), [(0, 1), (1, 1)]);
}

#[tokio::test]
async fn a_request_arriving_as_the_connection_goes_away_is_not_lost() {
    let up = H2Upstream::start(Script::GoAwayOnSecond).await;
    let vh = vhost(vec![route_to("svc", |_, _| {})]);
    let proxy = std::sync::Arc::new(TestProxy::start(vh, vec![], vec![h2_cluster(&up)]).await);
    let held = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.get("/").await }
    });
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while up.streams().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first request reached the server");
    for _ in 0..4 {
        let reply = proxy.get("/").await;
        assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "ok"));
    }
    up.release();
    let first = held.await.unwrap();
    assert_eq!((first.status.as_u16(), first.body.as_str()), (200, "first"));
    assert_eq!(up.connections(), 2);
}
