use super::*;
use serde_json::json;

const REVIEWS_V1: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
const REVIEWS_V2: &str = "outbound|9080|v2|reviews.default.svc.cluster.local";

#[test]
fn reads_envoys_typed_dumps() {
    let dump = json!({"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {}},
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         "static_clusters": [{"cluster": {"name": "xds_cluster", "type": "STRICT_DNS"}}],
         "dynamic_active_clusters": [
            {"version_info": "1", "cluster": {"name": REVIEWS_V1, "type": "EDS"}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         "dynamic_listeners": [{"name": "http_proxy", "active_state": {"listener": {
            "name": "http_proxy",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15001}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                "typed_config": {"rds": {"route_config_name": "http_proxy"}}}]}]}}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
         "dynamic_route_configs": [{"route_config": {"name": "http_proxy", "virtual_hosts": [
            {"name": "reviews.default.svc.cluster.local:9080", "domains": ["reviews", "reviews:9080"],
             "routes": [
                {"match": {"prefix": "/", "headers": [{"name": "end-user"}]}, "route": {"cluster": REVIEWS_V2}},
                {"match": {"safe_regex": {"regex": "/r.*"}}, "route": {"weighted_clusters": {"clusters": [
                    {"name": REVIEWS_V1, "weight": 90}, {"name": REVIEWS_V2, "weight": 10}]}}},
                {"match": {"path": "/old"}, "redirect": {"path_redirect": "/new"}}
             ]}]}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
         "dynamic_endpoint_configs": [{"endpoint_config": {"cluster_name": REVIEWS_V1, "endpoints": [
            {"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 19081}}}},
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.2", "port_value": 19081}}},
                 "health_status": "UNHEALTHY"}]}]}}]}
    ]});
    let c = read(&dump).unwrap();
    let listeners: Vec<(&str, &str, &str, Option<&str>, &str)> = c
        .listeners
        .iter()
        .map(|l| {
            (
                l.name.as_str(),
                l.address.as_str(),
                l.port.as_str(),
                l.route_config.as_deref(),
                l.match_text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        listeners,
        [(
            "http_proxy",
            "127.0.0.1",
            "15001",
            Some("http_proxy"),
            "ALL"
        )]
    );
    let clusters: Vec<(&str, &str)> = c
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.discovery.as_str()))
        .collect();
    assert_eq!(
        clusters,
        [("xds_cluster", "STRICT_DNS"), (REVIEWS_V1, "EDS")]
    );
    let routes: Vec<(&str, usize, &str)> = c
        .routes
        .iter()
        .map(|r| (r.path.as_str(), r.conditions, r.destination.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            ("/*", 1, REVIEWS_V2),
            (
                "~/r.*",
                0,
                &*format!("{REVIEWS_V1} (90), {REVIEWS_V2} (10)")
            ),
            ("/old", 0, "redirect"),
        ]
    );
    assert_eq!(c.routes[0].domains, ["reviews", "reviews:9080"]);
    let endpoints: Vec<(&str, bool)> = c
        .endpoints
        .iter()
        .map(|e| (e.address.as_str(), e.healthy))
        .collect();
    assert_eq!(
        endpoints,
        [("127.0.0.1:19081", true), ("127.0.0.2:19081", false)]
    );
}

#[test]
fn reads_weft_proxys_dump() {
    let dump = json!({
        "versions": {}, "complete": true,
        "listeners": [{"name": "http_proxy", "address": "127.0.0.1:15001", "route_config_name": "http_proxy"}],
        "route_configs": [{"name": "http_proxy", "route_config": {"name": "http_proxy", "virtual_hosts": [
            {"name": "reviews", "domains": ["reviews"], "routes": [
                {"name": "", "match": {"prefix": "/", "case_sensitive": true},
                 "action": {"weighted_clusters": [{"name": REVIEWS_V1, "weight": 50}, {"name": REVIEWS_V2, "weight": 50}]}},
                {"name": "", "match": {"safe_regex": "/x+", "case_sensitive": true}, "action": {"cluster": REVIEWS_V1}}
            ]}]}}],
        "clusters": [{"name": REVIEWS_V1, "type": "Eds", "hosts": [
            {"address": "127.0.0.1:19081", "healthy": true, "outlier_ejected": true}]}]
    });
    let c = read(&dump).unwrap();
    assert_eq!(c.listeners[0].port, "15001");
    assert_eq!(c.listeners[0].address, "127.0.0.1");
    assert_eq!(
        c.routes[0].destination,
        format!("{REVIEWS_V1} (50), {REVIEWS_V2} (50)")
    );
    assert_eq!(c.routes[1].path, "~/x+");
    assert_eq!(c.clusters[0].discovery, "EDS");
    assert_eq!(
        c.endpoints,
        [EndpointRow {
            address: "127.0.0.1:19081".into(),
            healthy: true,
            outlier_ejected: Some(true),
            cluster: REVIEWS_V1.into(),
        }]
    );
}

#[test]
fn anything_else_is_refused() {
    assert!(read(&json!({"stats": []})).is_err());
}
