use super::*;
use xds_protos::pb::envoy::config::core::v3::Node;
use xds_protos::pb::google::protobuf::ListValue;

fn args() -> BootstrapArgs {
    BootstrapArgs {
        xds_addr: "127.0.0.1:15010".into(),
        node_id: "sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local".into(),
        outbound_addr: "127.0.0.1:15103".into(),
        admin_addr: "127.0.0.1:15203".into(),
        namespace: "default".into(),
        workload: "reviews-v2".into(),
        labels: "app=reviews,version=v2".into(),
        concurrency: Some(2),
        delta: false,
        mode: Mode::Local,
        ip: None,
    }
}

fn parsed(args: &BootstrapArgs) -> Value {
    let text = bootstrap_yaml(args).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn json_to_pb(v: &Value) -> PbValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_to_pb).collect(),
        }),
        Value::Object(o) => Kind::StructValue(Struct {
            fields: o.iter().map(|(k, v)| (k.clone(), json_to_pb(v))).collect(),
        }),
    };
    PbValue { kind: Some(kind) }
}

#[test]
fn yaml_has_node_ads_and_the_xds_cluster() {
    let b = parsed(&args());
    assert_eq!(
        b["node"]["id"],
        "sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local"
    );
    assert_eq!(b["node"]["cluster"], "reviews-v2.default");

    let ads = &b["dynamic_resources"]["ads_config"];
    assert_eq!(ads["api_type"], "GRPC");
    assert_eq!(ads["transport_api_version"], "V3");
    assert_eq!(
        ads["grpc_services"][0]["envoy_grpc"]["cluster_name"],
        "xds-grpc"
    );
    assert_eq!(ads["set_node_on_first_message_only"], true);
    for source in ["cds_config", "lds_config"] {
        let s = &b["dynamic_resources"][source];
        assert_eq!(s["ads"], json!({}));
        assert_eq!(s["resource_api_version"], "V3");
    }

    let cluster = &b["static_resources"]["clusters"][0];
    assert_eq!(cluster["name"], "xds-grpc");
    assert_eq!(cluster["type"], "STATIC");
    assert_eq!(cluster["connect_timeout"], "1s");
    let options = &cluster["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        options["@type"],
        "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    );
    assert_eq!(
        options["explicit_http_config"]["http2_protocol_options"],
        json!({})
    );
    let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        ["address"]["socket_address"];
    assert_eq!(address["address"], "127.0.0.1");
    assert_eq!(address["port_value"], 15010);

    let admin = &b["admin"]["address"]["socket_address"];
    assert_eq!(admin["address"], "127.0.0.1");
    assert_eq!(admin["port_value"], 15203);
}

#[test]
fn node_metadata_is_exactly_what_weft_proxy_announces() {
    let args = args();
    let b = parsed(&args);
    let expected = identity(&args).unwrap();
    // Read the YAML node back the way weftd reads any node: if a key or value differed from
    // NodeIdentity::to_node, the round trip would not give the same identity.
    let metadata = match json_to_pb(&b["node"]["metadata"]).kind {
        Some(Kind::StructValue(s)) => s,
        other => panic!("metadata is not a struct: {other:?}"),
    };
    let node = Node {
        id: b["node"]["id"].as_str().unwrap().to_string(),
        metadata: Some(metadata.clone()),
        ..Default::default()
    };
    assert_eq!(NodeIdentity::from_node(&node), expected);
    // And key for key, the metadata equals what to_node produces.
    let direct = expected.to_node("weft-proxy").metadata.unwrap();
    assert_eq!(metadata.fields, direct.fields);
    assert_eq!(b["node"]["metadata"]["LABELS"]["version"], "v2");
    assert_eq!(
        b["node"]["metadata"]["WEFT_OUTBOUND_ADDR"],
        "127.0.0.1:15103"
    );
}

#[test]
fn sidecar_mode_announces_redirect_interception_and_the_pod_ip() {
    let local = parsed(&args());
    assert!(local["node"]["metadata"]["INTERCEPTION_MODE"].is_null());
    let b = parsed(&BootstrapArgs {
        mode: Mode::Sidecar,
        ip: Some("10.77.0.3".parse().unwrap()),
        ..args()
    });
    assert_eq!(b["node"]["metadata"]["INTERCEPTION_MODE"], "REDIRECT");
    assert_eq!(b["node"]["metadata"]["INSTANCE_IPS"][0], "10.77.0.3");
    let id = identity(&BootstrapArgs {
        mode: Mode::Sidecar,
        node_id: "sidecar~10.77.0.4~reviews-v2.default~default.svc.cluster.local".into(),
        ..args()
    })
    .unwrap();
    assert_eq!(id.mode, ProxyMode::Sidecar);
    assert_eq!(id.instance_ip(), "10.77.0.4", "the node id's IP by default");
}

#[test]
fn delta_flag_selects_delta_grpc() {
    let mut a = args();
    a.delta = true;
    assert_eq!(
        parsed(&a)["dynamic_resources"]["ads_config"]["api_type"],
        "DELTA_GRPC"
    );
}

#[test]
fn a_named_xds_host_is_resolved_by_envoy() {
    let mut a = args();
    a.xds_addr = "weftd.weft-system.svc:15010".into();
    let b = parsed(&a);
    let cluster = &b["static_resources"]["clusters"][0];
    assert_eq!(cluster["type"], "STRICT_DNS");
    let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        ["address"]["socket_address"];
    assert_eq!(address["address"], "weftd.weft-system.svc");
}

#[test]
fn bad_flags_are_explained() {
    let mut a = args();
    a.admin_addr = "localhost:15000".into();
    assert_eq!(
        bootstrap(&a).unwrap_err(),
        BootstrapError::AdminNotIp("localhost:15000".into())
    );
    let mut a = args();
    a.xds_addr = "15010".into();
    assert!(matches!(
        bootstrap(&a).unwrap_err(),
        BootstrapError::BadAddress {
            flag: "xds-addr",
            ..
        }
    ));
    let mut a = args();
    a.labels = "app=reviews,oops".into();
    assert_eq!(
        bootstrap(&a).unwrap_err(),
        BootstrapError::BadLabel("oops".into())
    );
}

#[test]
fn labels_tolerate_spaces_and_trailing_commas() {
    let labels = parse_labels(" app=reviews , version=v2,").unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(labels["version"], "v2");
    assert!(parse_labels("").unwrap().is_empty());
}

#[test]
fn envoy_may_compile_every_regex_weftd_accepts() {
    let v = parsed(&args());
    assert_eq!(
        v["layered_runtime"]["layers"][0]["static_layer"]["re2.max_program_size.error_level"],
        32768
    );
}
