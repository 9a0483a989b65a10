//! The listener layout istiod sends a BookInfo `productpage` sidecar (written here from the
//! shape of a real config dump, not copied): `virtualOutbound`, `virtualInbound` with its
//! blackhole, catch-all and per-port chains, the `0.0.0.0_9080` port listener, and TCP
//! listeners for cluster IPs. Istio's own extensions are refused by name unless they are marked
//! optional; the accepted layout routes traffic.

use super::*;
use xds_protos::pb::envoy::config::core::v3::CidrRange;

/// HTTP filters as istiod lists them; `optional` marks Istio's own extensions optional.
fn istio_http_filters(optional: bool) -> Vec<HttpFilter> {
    let extension = |name: &str, type_url: &str| HttpFilter {
        name: name.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(
            xds_protos::pb::google::protobuf::Any {
                type_url: type_url.into(),
                value: Vec::new(),
            },
        )),
        is_optional: optional,
        ..Default::default()
    };
    vec![
        extension(
            "istio.metadata_exchange",
            "type.googleapis.com/io.istio.http.peer_metadata.Config",
        ),
        extension(
            "envoy.filters.http.grpc_stats",
            "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
        ),
        HttpFilter {
            name: "envoy.filters.http.fault".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(any(
                type_url::HTTP_FAULT,
                &xds_protos::pb::envoy::extensions::filters::http::fault::v3::HttpFault::default(),
            ))),
            ..Default::default()
        },
        extension("istio.stats", "type.googleapis.com/stats.PluginConfig"),
        HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(any(
                type_url::ROUTER,
                &Router::default(),
            ))),
            ..Default::default()
        },
    ]
}

/// The connection manager of `hcm_to` with Istio's filter list.
fn istio_hcm(cluster: &str, optional: bool) -> Filter {
    let Some(filter::ConfigType::TypedConfig(any_hcm)) = hcm_to(cluster).config_type else {
        unreachable!()
    };
    let mut hcm = <HttpConnectionManager as prost::Message>::decode(any_hcm.value.as_slice())
        .expect("the test's own HCM");
    hcm.http_filters = istio_http_filters(optional);
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(
            type_url::HTTP_CONNECTION_MANAGER,
            &hcm,
        ))),
    }
}

fn named(name: &str, m: Option<FilterChainMatch>, filter: Filter) -> FilterChain {
    FilterChain {
        name: name.into(),
        ..chain(m, filter)
    }
}

fn port(p: u16) -> FilterChainMatch {
    FilterChainMatch {
        destination_port: Some(UInt32Value {
            value: u32::from(p),
        }),
        ..Default::default()
    }
}

fn listener_filter(short: &str, type_url: &str) -> ListenerFilter {
    ListenerFilter {
        name: format!("envoy.filters.listener.{short}"),
        config_type: Some(
            xds_protos::pb::envoy::config::listener::v3::listener_filter::ConfigType::TypedConfig(
                xds_protos::pb::google::protobuf::Any {
                    type_url: type_url.into(),
                    value: Vec::new(),
                },
            ),
        ),
        ..Default::default()
    }
}

/// productpage's listeners: inbound on `inbound_port` (9080 in a pod) at `ip`.
fn productpage(
    ip: [u8; 4],
    outbound: u16,
    inbound: u16,
    app_port: u16,
    optional: bool,
) -> Vec<Listener> {
    let at = |p: u16| Some(socket(SocketAddr::from((ip, p))));
    let no_bind = Some(xds_protos::pb::google::protobuf::BoolValue { value: false });
    let yes = Some(xds_protos::pb::google::protobuf::BoolValue { value: true });
    let sniffed = FilterChainMatch {
        application_protocols: vec!["http/1.1".into(), "h2c".into()],
        ..Default::default()
    };
    vec![
        Listener {
            name: "virtualOutbound".into(),
            address: at(outbound),
            use_original_dst: yes,
            traffic_direction: 2,
            filter_chains: vec![named(
                "virtualOutbound-blackhole",
                Some(port(outbound)),
                tcp_to("BlackHoleCluster"),
            )],
            default_filter_chain: Some(named(
                "PassthroughFilterChain",
                None,
                tcp_to("PassthroughCluster"),
            )),
            ..Default::default()
        },
        Listener {
            name: "virtualInbound".into(),
            address: at(inbound),
            traffic_direction: 1,
            listener_filters: vec![
                listener_filter("original_dst", type_url::ORIGINAL_DST_LISTENER_FILTER),
                listener_filter("tls_inspector", type_url::TLS_INSPECTOR),
                listener_filter("http_inspector", type_url::HTTP_INSPECTOR),
            ],
            filter_chains: vec![
                named(
                    "virtualInbound-blackhole",
                    Some(port(inbound)),
                    tcp_to("BlackHoleCluster"),
                ),
                named(
                    &format!("0.0.0.0_{app_port}"),
                    Some(port(app_port)),
                    istio_hcm(&format!("inbound|{app_port}||"), optional),
                ),
                named(
                    "virtualInbound-catchall-http",
                    Some(sniffed),
                    istio_hcm("InboundPassthroughClusterIpv4", optional),
                ),
            ],
            default_filter_chain: Some(named(
                "virtualInbound",
                None,
                tcp_to("InboundPassthroughClusterIpv4"),
            )),
            ..Default::default()
        },
        Listener {
            name: "0.0.0.0_9080".into(),
            address: Some(socket(SocketAddr::from(([0, 0, 0, 0], 9080)))),
            bind_to_port: no_bind,
            traffic_direction: 2,
            filter_chains: vec![chain(
                None,
                istio_hcm("outbound|9080||reviews.default.svc.cluster.local", optional),
            )],
            ..Default::default()
        },
        // kube-dns, by its cluster IP; and a headless TCP service matched by destination prefix.
        Listener {
            name: "10.96.0.10_53".into(),
            address: Some(socket(SocketAddr::from(([10, 96, 0, 10], 53)))),
            bind_to_port: no_bind,
            traffic_direction: 2,
            filter_chains: vec![chain(
                None,
                tcp_to("outbound|53||kube-dns.kube-system.svc.cluster.local"),
            )],
            ..Default::default()
        },
        Listener {
            name: "0.0.0.0_27017".into(),
            address: Some(socket(SocketAddr::from(([0, 0, 0, 0], 27017)))),
            bind_to_port: no_bind,
            traffic_direction: 2,
            filter_chains: vec![chain(
                Some(FilterChainMatch {
                    prefix_ranges: vec![CidrRange {
                        address_prefix: "10.244.1.7".into(),
                        prefix_len: Some(UInt32Value { value: 32 }),
                    }],
                    ..Default::default()
                }),
                tcp_to("outbound|27017||mongodb.default.svc.cluster.local"),
            )],
            ..Default::default()
        },
    ]
}

fn apply(listeners: &[Listener]) -> crate::xds::state::Applied {
    let resources: Vec<_> = listeners
        .iter()
        .map(|l| any(type_url::LISTENER, l))
        .collect();
    XdsCache::default().apply(type_url::LISTENER, "1", &resources)
}

#[test]
fn istios_layout_is_accepted_with_its_extensions_marked_optional() {
    let applied = apply(&productpage([0, 0, 0, 0], 15001, 15006, 9080, true));
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
}

#[test]
fn istios_extensions_are_refused_by_name_unless_optional() {
    let applied = apply(&productpage([0, 0, 0, 0], 15001, 15006, 9080, false));
    let reasons = format!("{:?}", applied.rejected);
    assert!(reasons.contains("istio.metadata_exchange"), "{reasons}");
    assert!(reasons.contains("virtualInbound"), "{reasons}");
    assert!(reasons.contains("0.0.0.0_9080"), "{reasons}");

    // A network filter of Istio's in a TCP chain cannot be optional: refused by name.
    let mut layout = productpage([0, 0, 0, 0], 15001, 15006, 9080, true);
    let dns = layout
        .iter_mut()
        .find(|l| l.name == "10.96.0.10_53")
        .unwrap();
    dns.filter_chains[0].filters.insert(
        0,
        Filter {
            name: "istio.stats".into(),
            config_type: Some(filter::ConfigType::TypedConfig(
                xds_protos::pb::google::protobuf::Any {
                    type_url: "type.googleapis.com/stats.PluginConfig".into(),
                    value: Vec::new(),
                },
            )),
        },
    );
    let reasons = format!("{:?}", apply(&layout).rejected);
    assert!(
        reasons.contains("10.96.0.10_53") && reasons.contains("istio.stats"),
        "{reasons}"
    );
}

/// The inbound listener, moved to a loopback port (no redirect here, so the connection's
/// destination port is the listener's own): a request for the app's port goes through the app's
/// chain to `inbound|PORT||`. Without that chain, bytes that are not HTTP pass the catch-all
/// HTTP chain by and take the default chain to the passthrough cluster.
#[tokio::test]
async fn istios_inbound_layout_routes_traffic() {
    let app = web_server().await;
    let echo = echo_server().await;
    let inbound_listener = |port: u16, with_app_chain: bool| {
        let mut l = productpage([127, 0, 0, 1], free_port(), port, port, true)
            .into_iter()
            .find(|l| l.name == "virtualInbound")
            .unwrap();
        // The blackhole chain names the inbound port too: on loopback it would shadow the app's.
        l.filter_chains
            .retain(|c| c.name != "virtualInbound-blackhole");
        if !with_app_chain {
            l.filter_chains.retain(|c| !c.name.starts_with("0.0.0.0_"));
        }
        l
    };
    let clusters = |port: u16| {
        vec![
            static_cluster(&format!("inbound|{port}||"), &[app]),
            static_cluster("InboundPassthroughClusterIpv4", &[echo]),
        ]
    };
    let port = free_port();
    let (_ctx, _manager) = serve(inbound_listener(port, true), clusters(port));
    assert_eq!(
        http_get(SocketAddr::from(([127, 0, 0, 1], port))).await,
        "web"
    );

    let port = free_port();
    let (_ctx, _manager) = serve(inbound_listener(port, false), clusters(port));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(exchange(addr, b"\x00mongo").await, b"echo:\x00mongo");
}
