//! `weftctl bootstrap-envoy`: prints an Envoy v3 bootstrap that makes a real Envoy a Weft
//! sidecar, configured entirely by `weftd` over ADS.
//!
//! The node section is generated from the same `NodeIdentity::to_node` that weft-proxy sends,
//! so weftd cannot tell the two apart by their metadata and the two never drift. The flags are
//! weft-proxy's, so switching a sidecar between the two is a change of program name.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use xds_protos::node::{IstioNodeId, NodeIdentity, ProxyMode};
use xds_protos::pb::google::protobuf::{value::Kind, Struct, Value as PbValue};

/// The static cluster the ADS stream uses; the name is what Istio's bootstrap calls it too,
/// which keeps Envoy stats familiar.
pub const XDS_CLUSTER: &str = "xds-grpc";

#[derive(clap::Args, Debug, Clone)]
pub struct BootstrapArgs {
    /// weftd's ADS address (IP:port, or host:port resolved by Envoy through DNS).
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub xds_addr: String,
    /// The xDS node id, e.g. sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local.
    #[arg(long)]
    pub node_id: String,
    /// Where weftd should place this proxy's outbound listener.
    #[arg(long, default_value = "127.0.0.1:15001")]
    pub outbound_addr: String,
    /// Envoy's admin listener (IP:port).
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin_addr: String,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[arg(long, default_value = "")]
    pub workload: String,
    /// Workload labels, `k=v,k=v`.
    #[arg(long, default_value = "")]
    pub labels: String,
    /// Accepted for parity with weft-proxy and ignored: Envoy takes it on its command line.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Use incremental (delta) ADS instead of state-of-the-world.
    #[arg(long)]
    pub delta: bool,
    /// How the application's traffic reaches the proxy: `local` (an HTTP proxy at
    /// --outbound-addr) or `sidecar` (iptables redirects the pod's traffic to 15001 and
    /// 15006; announced as Istio's `INTERCEPTION_MODE: REDIRECT`).
    #[arg(long, value_enum, default_value = "local")]
    pub mode: Mode,
    /// The workload's own IP (Istio's `INSTANCE_IPS`): in sidecar mode, the pod IP whose
    /// registry endpoints the proxy serves inbound. Defaults to the node id's IP.
    #[arg(long)]
    pub ip: Option<IpAddr>,
}

/// `--mode`, as weft-proxy's.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Local,
    Sidecar,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootstrapError {
    #[error("--{flag} {value:?} is not host:port")]
    BadAddress { flag: &'static str, value: String },
    #[error("--admin-addr {0:?} must be an IP address and port: Envoy does not resolve names for its admin listener")]
    AdminNotIp(String),
    #[error("--labels: {0:?} is not k=v")]
    BadLabel(String),
}

/// The RE2 program size weftd's regex validation allows (istiod's bootstrap setting).
const RE2_MAX_PROGRAM_SIZE: u32 = 32768;

/// istiod's `cluster_name` tag regex: the whole name, up to `.svc.cluster.local` when there.
const CLUSTER_NAME_TAG_REGEX: &str = r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)";

pub fn run(args: &BootstrapArgs) -> anyhow::Result<()> {
    print!("{}", bootstrap_yaml(args)?);
    Ok(())
}

pub fn bootstrap_yaml(args: &BootstrapArgs) -> anyhow::Result<String> {
    let value = bootstrap(args)?;
    // serde_json sorts keys; a YAML mapping keeps insertion order, so the sections read in
    // the order a person looks for them: who am I, where is the control plane, admin.
    let mut ordered = serde_yaml_ng::Mapping::new();
    for key in [
        "node",
        "dynamic_resources",
        "static_resources",
        "stats_config",
        "layered_runtime",
        "admin",
    ] {
        ordered.insert(key.into(), serde_yaml_ng::to_value(&value[key])?);
    }
    Ok(serde_yaml_ng::to_string(&ordered)?)
}

/// Parses `k=v,k=v`; empty items are allowed so a trailing comma does no harm.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, BootstrapError> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(BootstrapError::BadLabel(item.to_string())),
        })
        .collect()
}

pub fn identity(args: &BootstrapArgs) -> Result<NodeIdentity, BootstrapError> {
    Ok(NodeIdentity {
        id: args.node_id.clone(),
        namespace: args.namespace.clone(),
        workload: args.workload.clone(),
        labels: parse_labels(&args.labels)?,
        outbound_addr: Some(args.outbound_addr.clone()),
        admin_addr: Some(args.admin_addr.clone()),
        mode: match args.mode {
            Mode::Local => ProxyMode::Local,
            Mode::Sidecar => ProxyMode::Sidecar,
        },
        ip: args
            .ip
            .map(|ip| ip.to_string())
            .or_else(|| IstioNodeId::parse(&args.node_id).map(|id| id.ip)),
    })
}

/// The bootstrap as a JSON value (serialized to YAML by the caller).
pub fn bootstrap(args: &BootstrapArgs) -> Result<Value, BootstrapError> {
    let node = identity(args)?.to_node("envoy");
    let (xds_host, xds_port) = split_host_port("xds-addr", &args.xds_addr)?;
    let admin: SocketAddr = args
        .admin_addr
        .parse()
        .map_err(|_| BootstrapError::AdminNotIp(args.admin_addr.clone()))?;
    // A literal IP needs no resolver; a name is left to Envoy's DNS, as it would be in a pod.
    let xds_type = if xds_host.parse::<IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    let ads_api = if args.delta { "DELTA_GRPC" } else { "GRPC" };
    let ads_source = json!({ "ads": {}, "resource_api_version": "V3" });
    // user_agent_name is left out: Envoy fills in its own name and build version.
    Ok(json!({
        "node": {
            "id": node.id,
            "cluster": node.cluster,
            "metadata": node.metadata.as_ref().map(struct_to_json).unwrap_or_else(|| json!({})),
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": ads_api,
                "transport_api_version": "V3",
                "grpc_services": [{ "envoy_grpc": { "cluster_name": XDS_CLUSTER } }],
                "set_node_on_first_message_only": true,
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": {
            "clusters": [{
                "name": XDS_CLUSTER,
                "type": xds_type,
                "connect_timeout": "1s",
                // ADS is gRPC, so the upstream connection must speak HTTP/2.
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": { "http2_protocol_options": {} },
                    },
                },
                "load_assignment": {
                    "cluster_name": XDS_CLUSTER,
                    "endpoints": [{
                        "lb_endpoints": [{
                            "endpoint": { "address": socket_address(&xds_host, xds_port) },
                        }],
                    }],
                },
            }],
        },
        // Envoy's default `envoy.cluster_name` tag stops at the first dot, which splits
        // `outbound|9080||reviews.default.svc.cluster.local` into a label and a stat name;
        // istiod's bootstrap adds this `cluster_name` tag so the whole cluster name is a
        // label: `envoy_cluster_upstream_rq_pending_overflow{cluster_name="outbound|..."}`,
        // as weft-proxy prints it. (Envoy's default tag stays too, with the name cut short.)
        "stats_config": {
            "stats_tags": [{
                "tag_name": "cluster_name",
                "regex": CLUSTER_NAME_TAG_REGEX,
            }],
        },
        // weftd accepts regexes up to RE2 program size 32768, as istiod's bootstrap lets
        // Envoy compile them; Envoy's own default (100) would NACK what weft-proxy takes.
        "layered_runtime": {
            "layers": [{
                "name": "weft",
                "static_layer": { "re2.max_program_size.error_level": RE2_MAX_PROGRAM_SIZE },
            }],
        },
        "admin": {
            "address": socket_address(&admin.ip().to_string(), admin.port()),
        },
    }))
}

fn socket_address(host: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": host, "port_value": port } })
}

fn split_host_port(flag: &'static str, value: &str) -> Result<(String, u16), BootstrapError> {
    let bad = || BootstrapError::BadAddress {
        flag,
        value: value.to_string(),
    };
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() || host.contains(':') {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// protobuf Struct -> JSON, the mapping protobuf defines for `google.protobuf.Struct`.
fn struct_to_json(s: &Struct) -> Value {
    // Sorted keys make the printed bootstrap stable from run to run.
    let sorted: BTreeMap<&String, &PbValue> = s.fields.iter().collect();
    Value::Object(
        sorted
            .into_iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect::<Map<String, Value>>(),
    )
}

fn value_to_json(v: &PbValue) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_to_json).collect()),
    }
}

#[cfg(test)]
mod tests;
