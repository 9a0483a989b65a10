use super::*;
use serde_json::json;

const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP: &str = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const MONGO: &str = "outbound|27017||mongo.default.svc.cluster.local";

fn tcp(cluster: &str) -> Value {
    json!({"name": "envoy.filters.network.tcp_proxy",
           "typed_config": {"@type": TCP, "stat_prefix": cluster, "cluster": cluster}})
}

fn socket(address: &str, port: u32) -> Value {
    json!({"socket_address": {"address": address, "port_value": port}})
}

/// A sidecar's listeners as Envoy dumps them (the `listener` of each dynamic listener).
fn envoy_sidecar() -> Vec<Value> {
    vec![
        json!({"name": "virtualOutbound", "address": socket("0.0.0.0", 15001),
               "use_original_dst": true,
               "filter_chains": [{"name": "virtualOutbound-blackhole",
                   "filter_chain_match": {"destination_port": 15001},
                   "filters": [tcp("BlackHoleCluster")]}],
               "default_filter_chain": {"name": "PassthroughFilterChain",
                   "filters": [tcp("PassthroughCluster")]}}),
        json!({"name": "virtualInbound", "address": socket("0.0.0.0", 15006),
               "filter_chains": [
                   {"name": "inbound|9080||",
                    "filter_chain_match": {"destination_port": 9080},
                    "filters": [{"name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {"@type": HCM, "route_config": {"name": "inbound|9080||",
                            "virtual_hosts": [{"name": "inbound|http|9080", "domains": ["*"],
                                "routes": [{"match": {"prefix": "/"},
                                            "route": {"cluster": "inbound|9080||"}}]}]}}}]},
                   {"filter_chain_match": {"destination_port": {"value": 3306},
                        "prefix_ranges": [{"address_prefix": "10.1.0.0", "prefix_len": 16},
                                          {"address_prefix": "0.0.0.0"}]},
                    "filters": [tcp("inbound|3306||")]}],
               "default_filter_chain": {"filters": [tcp("InboundPassthroughCluster")]}}),
        json!({"name": "0.0.0.0_9080", "address": socket("0.0.0.0", 9080), "bind_to_port": false,
               "filter_chains": [
                   {"filter_chain_match": {"transport_protocol": "raw_buffer",
                                           "application_protocols": ["http/1.1", "h2c"]},
                    "filters": [{"name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {"@type": HCM, "rds": {"route_config_name": "9080"}}}]},
                   {"filter_chain_match": {"transport_protocol": "raw_buffer"},
                    "filters": [tcp("PassthroughCluster")]}]}),
        json!({"name": "10.96.0.20_27017", "address": socket("10.96.0.20", 27017),
               "bind_to_port": false,
               "filter_chains": [{"filters": [
                   {"name": "istio.stats"},
                   {"name": "envoy.filters.network.tcp_proxy", "typed_config": {"@type": TCP,
                       "weighted_clusters": {"clusters": [
                           {"name": MONGO, "weight": 75},
                           {"name": "outbound|27017|b|mongo.default.svc.cluster.local", "weight": 25}]}}}]}]}),
    ]
}

fn cells(rows: &[ListenerRow]) -> Vec<[&str; 4]> {
    rows.iter()
        .map(|r| {
            [
                r.address.as_str(),
                r.port.as_str(),
                r.match_text.as_str(),
                r.destination.as_str(),
            ]
        })
        .collect()
}

#[test]
fn envoy_sidecar_listeners_give_one_row_per_chain_in_istioctls_order() {
    let mut rows: Vec<ListenerRow> = envoy_sidecar().iter().flat_map(envoy_rows).collect();
    sort(&mut rows);
    assert_eq!(
        cells(&rows),
        [
            [
                "0.0.0.0",
                "9080",
                "Trans: raw_buffer; App: http/1.1,h2c",
                "Route: 9080"
            ],
            ["0.0.0.0", "9080", "Trans: raw_buffer", "PassthroughCluster"],
            ["0.0.0.0", "15001", "Addr: *:15001", "BlackHoleCluster"],
            ["0.0.0.0", "15001", "ALL", "PassthroughCluster"],
            ["0.0.0.0", "15006", "Addr: *:9080", "Inline Route: /*"],
            [
                "0.0.0.0",
                "15006",
                "Addr: 10.1.0.0/16,0.0.0.0/0:3306",
                "Cluster: inbound|3306||"
            ],
            ["0.0.0.0", "15006", "ALL", "InboundPassthroughCluster"],
            [
                "10.96.0.20",
                "27017",
                "ALL",
                "Cluster: outbound|27017||mongo.default.svc.cluster.local (75), \
                 outbound|27017|b|mongo.default.svc.cluster.local (25)"
            ],
        ]
    );
    // The default chains are flagged and named; an RDS chain keeps its route config.
    let defaults: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.default_chain)
        .map(|r| (r.name.as_str(), r.chain.as_str()))
        .collect();
    assert_eq!(
        defaults,
        [
            ("virtualOutbound", "PassthroughFilterChain"),
            ("virtualInbound", "")
        ]
    );
    assert_eq!(rows[0].route_config.as_deref(), Some("9080"));
    assert_eq!(rows[4].target, ChainTarget::InlineRoutes);
    assert_eq!(rows[4].chain, "inbound|9080||");
}

/// The same sidecar as weft-proxy's `/config_dump` writes it.
fn weft_sidecar() -> Vec<Value> {
    let tcp = |c: &str| json!({"tcp_proxy": {"stat_prefix": c, "clusters": [c]}});
    vec![
        json!({"name": "virtualOutbound", "address": "0.0.0.0:15001", "bind_to_port": true,
               "use_original_dst": true, "route_config_name": null,
               "filter_chains": [{"name": "virtualOutbound-blackhole",
                   "filter_chain_match": {"destination_port": 15001},
                   "tcp_proxy": {"stat_prefix": "BlackHoleCluster", "clusters": ["BlackHoleCluster"]}}],
               "default_filter_chain": {"name": "PassthroughFilterChain",
                   "tcp_proxy": {"stat_prefix": "PassthroughCluster", "clusters": ["PassthroughCluster"]}}}),
        json!({"name": "0.0.0.0_9080", "address": "0.0.0.0:9080", "bind_to_port": false,
               "route_config_name": "9080",
               "filter_chains": [
                   {"name": "", "filter_chain_match": {"transport_protocol": "raw_buffer",
                       "application_protocols": ["http/1.1", "h2c"]},
                    "http_connection_manager": {"stat_prefix": "outbound_0.0.0.0_9080",
                        "route_config_name": "9080", "access_log": []}},
                   {"name": "", "filter_chain_match": {"transport_protocol": "raw_buffer"},
                    "tcp_proxy": {"stat_prefix": "PassthroughCluster", "clusters": ["PassthroughCluster"]}}],
               "default_filter_chain": null}),
        json!({"name": "virtualInbound", "address": "0.0.0.0:15006",
               "filter_chains": [
                   {"name": "inbound|9080||", "filter_chain_match": {"destination_port": 9080},
                    "http_connection_manager": {"stat_prefix": "inbound_0.0.0.0_9080",
                        "route_config_name": null}},
                   {"name": "inbound|27017||",
                    "filter_chain_match": {"destination_port": 27017, "prefix_ranges": ["10.0.0.1/32"],
                                           "source_prefix_ranges": ["10.0.0.0/8"]},
                    "tcp_proxy": {"stat_prefix": "x", "clusters": ["inbound|27017||", "inbound|27017|b|"]}}],
               "default_filter_chain": tcp("InboundPassthroughCluster")}),
        json!({"name": "10.96.0.20_27017", "address": "10.96.0.20:27017",
               "filter_chains": [{"name": "", "filter_chain_match": {}, "tcp_proxy":
                   {"stat_prefix": MONGO, "clusters": [MONGO]}}]}),
    ]
}

#[test]
fn weft_proxy_sidecar_listeners_read_the_same_way() {
    let mut rows: Vec<ListenerRow> = weft_sidecar().iter().flat_map(weft_rows).collect();
    sort(&mut rows);
    assert_eq!(
        cells(&rows),
        [
            [
                "0.0.0.0",
                "9080",
                "Trans: raw_buffer; App: http/1.1,h2c",
                "Route: 9080"
            ],
            ["0.0.0.0", "9080", "Trans: raw_buffer", "PassthroughCluster"],
            ["0.0.0.0", "15001", "Addr: *:15001", "BlackHoleCluster"],
            ["0.0.0.0", "15001", "ALL", "PassthroughCluster"],
            // weft-proxy's dump does not carry an inline table's routes.
            ["0.0.0.0", "15006", "Addr: *:9080", "Inline Route"],
            [
                "0.0.0.0",
                "15006",
                "Addr: 10.0.0.1/32:27017; Src: 10.0.0.0/8",
                "Cluster: inbound|27017||, inbound|27017|b|"
            ],
            ["0.0.0.0", "15006", "ALL", "InboundPassthroughCluster"],
            ["10.96.0.20", "27017", "ALL", &format!("Cluster: {MONGO}")],
        ]
    );
    assert!(rows[3].default_chain && !rows[2].default_chain);
    assert_eq!(rows[0].route_config.as_deref(), Some("9080"));
    assert_eq!(rows[1].route_config, None);
}

#[test]
fn a_local_listener_is_one_row() {
    let local = json!({"name": "http_proxy", "address": "127.0.0.1:15001",
        "route_config_name": "http_proxy",
        "filter_chains": [{"name": "", "filter_chain_match": {},
            "http_connection_manager": {"stat_prefix": "http_proxy", "route_config_name": "http_proxy"}}],
        "default_filter_chain": null});
    let rows = weft_rows(&local);
    assert_eq!(
        cells(&rows),
        [["127.0.0.1", "15001", "ALL", "Route: http_proxy"]]
    );
    assert_eq!(
        table(&rows),
        "ADDRESSES  PORT   MATCH  DESTINATION\n127.0.0.1  15001  ALL    Route: http_proxy\n"
    );
}

#[test]
fn an_older_weft_proxy_dump_without_chains_claims_no_match() {
    let old = json!({"name": "http_proxy", "address": "[::1]:15001", "route_config_name": "r"});
    let rows = weft_rows(&old);
    assert_eq!(cells(&rows), [["::1", "15001", "-", "Route: r"]]);
    assert_eq!(rows[0].route_config.as_deref(), Some("r"));
}

#[test]
fn json_rows_keep_the_listener_fields_and_add_the_chain() {
    let rows = envoy_rows(&envoy_sidecar()[2]);
    let v = serde_json::to_value(&rows[0]).unwrap();
    assert_eq!(v["name"], "0.0.0.0_9080");
    assert_eq!(v["address"], "0.0.0.0");
    assert_eq!(v["port"], "9080");
    assert_eq!(v["route_config"], "9080");
    assert_eq!(v["default_chain"], false);
    assert_eq!(
        v["filter_chain_match"],
        json!({"transport_protocol": "raw_buffer", "application_protocols": ["http/1.1", "h2c"]})
    );
    assert_eq!(v["match"], "Trans: raw_buffer; App: http/1.1,h2c");
    assert_eq!(v["target"], json!({"kind": "rds", "route_config": "9080"}));

    let mongo = serde_json::to_value(&envoy_rows(&envoy_sidecar()[3])[0]).unwrap();
    assert_eq!(mongo["target"]["kind"], "tcp_proxy");
    assert_eq!(
        mongo["target"]["clusters"][0],
        json!({"name": MONGO, "weight": 75})
    );
    assert_eq!(mongo["route_config"], Value::Null);
}

#[test]
fn match_text_names_what_the_match_sets() {
    let m = |v: Value| match_text(&chain_match(&v));
    assert_eq!(m(json!({})), "ALL");
    assert_eq!(m(Value::Null), "ALL");
    assert_eq!(
        m(json!({"application_protocols": ["http/1.0", "http/1.1", "h2c"]})),
        "App: HTTP"
    );
    assert_eq!(
        m(
            json!({"application_protocols": ["istio-peer-exchange", "istio"],
                 "transport_protocol": "tls", "server_names": ["a.example", "b.example"]})
        ),
        "SNI: a.example,b.example; Trans: tls; App: TCP TLS"
    );
    assert_eq!(
        m(json!({"prefix_ranges": ["10.0.0.0/8"]})),
        "Addr: 10.0.0.0/8"
    );
    assert_eq!(
        m(json!({"source_type": "SAME_IP_OR_LOOPBACK", "source_ports": [5000]})),
        "Src: :5000; SrcType: SAME_IP_OR_LOOPBACK"
    );
    // ANY is the default source type, so it is no condition.
    assert_eq!(m(json!({"source_type": "ANY"})), "ALL");
}

#[test]
fn other_terminal_filters_are_named_not_guessed() {
    let chain = json!({"filters": [{"name": "envoy.filters.network.redis_proxy",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy"}}]});
    let l = json!({"name": "redis", "address": socket("0.0.0.0", 6379), "filter_chains": [chain]});
    let rows = envoy_rows(&l);
    assert_eq!(rows[0].destination, "Non-HTTP/Non-TCP");
    assert_eq!(
        rows[0].target,
        ChainTarget::Other {
            filters: vec!["envoy.filters.network.redis_proxy".into()]
        }
    );
    // An HTTP connection manager with neither RDS nor an inline table says HTTP.
    let bare = json!({"name": "h", "address": socket("0.0.0.0", 80), "filter_chains": [
        {"filters": [{"name": "envoy.filters.network.http_connection_manager",
                      "typed_config": {"@type": HCM}}]}]});
    assert_eq!(envoy_rows(&bare)[0].destination, "HTTP");
}

#[test]
fn inline_tables_list_domains_and_paths_per_virtual_host() {
    let rc = json!({"virtual_hosts": [
        {"domains": ["a.example", "a.example:80"], "routes": [
            {"match": {"prefix": "/api"}}, {"match": {"path": "/health"}}]},
        {"domains": ["*"], "routes": [{"match": {"safe_regex": {"regex": "/x+"}}}]}]});
    assert_eq!(
        inline_routes_text(&rc),
        "Inline Route: a.example/a.example:80 /api*, /health; ~/x+"
    );
}

#[test]
fn envoy_additional_addresses_join_the_addresses_cell() {
    let l = json!({"name": "dual", "address": socket("0.0.0.0", 80),
        "additional_addresses": [{"address": socket("::", 80)}],
        "filter_chains": [{"filters": [tcp("PassthroughCluster")]}]});
    assert_eq!(envoy_rows(&l)[0].address, "0.0.0.0,::");
}
