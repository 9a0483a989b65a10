//! The identity a proxy announces in the xDS `Node`, shared by weft-proxy, weftd and the Envoy
//! bootstrap that `weftctl bootstrap-envoy` prints, so that a real Envoy and weft-proxy look the
//! same to the control plane.
//!
//! Metadata keys follow Istio's where Istio has one (`NAMESPACE`, `WORKLOAD_NAME`, `LABELS`,
//! `INSTANCE_IPS`); the listener addresses are Weft's own, because in local mode every proxy
//! shares 127.0.0.1 and needs its own ports.

use crate::pb::envoy::config::core::v3::Node;
use crate::pb::google::protobuf::{value::Kind, ListValue, Struct, Value};
use std::collections::BTreeMap;

pub const NAMESPACE: &str = "NAMESPACE";
pub const WORKLOAD_NAME: &str = "WORKLOAD_NAME";
pub const LABELS: &str = "LABELS";
pub const INSTANCE_IPS: &str = "INSTANCE_IPS";
pub const OUTBOUND_ADDR: &str = "WEFT_OUTBOUND_ADDR";
pub const ADMIN_ADDR: &str = "WEFT_ADMIN_ADDR";
/// Istio's key for how traffic reaches the proxy: `REDIRECT` (iptables, sidecar mode).
pub const INTERCEPTION_MODE: &str = "INTERCEPTION_MODE";

/// How the application's traffic reaches the proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyMode {
    /// Weft's local mode: the application calls the proxy as an HTTP proxy at an explicit
    /// address, and every proxy shares the loopback address.
    #[default]
    Local,
    /// A pod sidecar: iptables redirects outbound TCP to 15001 and inbound to 15006
    /// (Istio's `INTERCEPTION_MODE: REDIRECT`).
    Sidecar,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    pub id: String,
    pub namespace: String,
    pub workload: String,
    pub labels: BTreeMap<String, String>,
    /// Where the proxy's outbound (HTTP proxy) listener binds, e.g. "127.0.0.1:15001".
    pub outbound_addr: Option<String>,
    pub admin_addr: Option<String>,
    pub mode: ProxyMode,
    /// The workload's own address (Istio's `INSTANCE_IPS`, first entry): in sidecar mode, the
    /// pod IP that inbound traffic arrives at. `None` reads as the outbound address's host, or
    /// the node id's IP.
    pub ip: Option<String>,
}

impl NodeIdentity {
    /// Builds the xDS `Node`: the id, a cluster name Envoy requires, and the metadata.
    pub fn to_node(&self, user_agent: &str) -> Node {
        let mut fields = BTreeMap::new();
        fields.insert(NAMESPACE.to_string(), string_value(&self.namespace));
        fields.insert(WORKLOAD_NAME.to_string(), string_value(&self.workload));
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), string_value(v)))
            .collect();
        fields.insert(
            LABELS.to_string(),
            Value {
                kind: Some(Kind::StructValue(Struct { fields: labels })),
            },
        );
        let ip = self.instance_ip();
        fields.insert(
            INSTANCE_IPS.to_string(),
            Value {
                kind: Some(Kind::ListValue(ListValue {
                    values: vec![string_value(&ip)],
                })),
            },
        );
        if let Some(a) = &self.outbound_addr {
            fields.insert(OUTBOUND_ADDR.to_string(), string_value(a));
        }
        if let Some(a) = &self.admin_addr {
            fields.insert(ADMIN_ADDR.to_string(), string_value(a));
        }
        if self.mode == ProxyMode::Sidecar {
            fields.insert(INTERCEPTION_MODE.to_string(), string_value("REDIRECT"));
        }
        Node {
            id: self.id.clone(),
            cluster: if self.workload.is_empty() {
                "weft".to_string()
            } else {
                format!("{}.{}", self.workload, self.namespace)
            },
            metadata: Some(Struct {
                fields: fields.into_iter().collect(),
            }),
            user_agent_name: user_agent.to_string(),
            ..Default::default()
        }
    }

    /// Reads the identity back from a `Node`. Missing metadata falls back to what Istio's node
    /// id form (`sidecar~10.0.0.1~productpage-1.default~default.svc.cluster.local`) carries.
    pub fn from_node(node: &Node) -> NodeIdentity {
        let meta = node.metadata.as_ref();
        let get = |key: &str| -> Option<String> {
            match meta?.fields.get(key)?.kind.as_ref()? {
                Kind::StringValue(s) if !s.is_empty() => Some(s.clone()),
                _ => None,
            }
        };
        let labels = meta
            .and_then(|m| m.fields.get(LABELS))
            .and_then(|v| match v.kind.as_ref()? {
                Kind::StructValue(s) => Some(s),
                _ => None,
            })
            .map(|s| {
                s.fields
                    .iter()
                    .filter_map(|(k, v)| match v.kind.as_ref()? {
                        Kind::StringValue(s) => Some((k.clone(), s.clone())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let from_id = IstioNodeId::parse(&node.id);
        NodeIdentity {
            id: node.id.clone(),
            namespace: get(NAMESPACE)
                .or_else(|| from_id.as_ref().map(|p| p.namespace.clone()))
                .unwrap_or_else(|| "default".to_string()),
            workload: get(WORKLOAD_NAME)
                .or_else(|| from_id.as_ref().map(|p| p.pod.clone()))
                .unwrap_or_default(),
            labels,
            outbound_addr: get(OUTBOUND_ADDR),
            admin_addr: get(ADMIN_ADDR),
            mode: match get(INTERCEPTION_MODE).as_deref() {
                Some("REDIRECT") | Some("TPROXY") => ProxyMode::Sidecar,
                _ => ProxyMode::Local,
            },
            ip: first_instance_ip(meta).or_else(|| from_id.map(|p| p.ip)),
        }
    }
}

impl NodeIdentity {
    /// The address the workload is reached at: `ip`, else the outbound address's host, else
    /// loopback.
    pub fn instance_ip(&self) -> String {
        self.ip
            .clone()
            .or_else(|| {
                let addr = self.outbound_addr.as_deref()?;
                let (host, _) = addr.rsplit_once(':')?;
                Some(host.trim_matches(['[', ']']).to_string())
            })
            .unwrap_or_else(|| "127.0.0.1".to_string())
    }
}

fn first_instance_ip(meta: Option<&Struct>) -> Option<String> {
    let Kind::ListValue(list) = meta?.fields.get(INSTANCE_IPS)?.kind.as_ref()? else {
        return None;
    };
    list.values.iter().find_map(|v| match v.kind.as_ref()? {
        Kind::StringValue(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    })
}

/// The parts of Istio's `type~ip~pod.namespace~domain` node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstioNodeId {
    pub kind: String,
    pub ip: String,
    pub pod: String,
    pub namespace: String,
}

impl IstioNodeId {
    pub fn parse(id: &str) -> Option<IstioNodeId> {
        let mut parts = id.split('~');
        let kind = parts.next()?;
        let ip = parts.next()?;
        let pod_ns = parts.next()?;
        let _domain = parts.next()?;
        let (pod, namespace) = pod_ns.rsplit_once('.')?;
        Some(IstioNodeId {
            kind: kind.to_string(),
            ip: ip.to_string(),
            pod: pod.to_string(),
            namespace: namespace.to_string(),
        })
    }
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_node() {
        let id = NodeIdentity {
            id: "sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local".into(),
            namespace: "prod".into(),
            workload: "reviews-v2".into(),
            labels: [("app".to_string(), "reviews".to_string())].into(),
            outbound_addr: Some("127.0.0.1:15001".into()),
            admin_addr: Some("127.0.0.1:15000".into()),
            mode: ProxyMode::Local,
            ip: Some("127.0.0.1".into()),
        };
        assert_eq!(NodeIdentity::from_node(&id.to_node("weft-proxy")), id);
    }

    #[test]
    fn a_sidecar_announces_redirect_interception_and_its_pod_ip() {
        let id = NodeIdentity {
            id: "sidecar~10.77.0.3~reviews-v1.default~default.svc.cluster.local".into(),
            namespace: "default".into(),
            workload: "reviews-v1".into(),
            mode: ProxyMode::Sidecar,
            ip: Some("10.77.0.3".into()),
            ..Default::default()
        };
        let node = id.to_node("weft-proxy");
        assert_eq!(NodeIdentity::from_node(&node), id);
        let mut without_ips = node.clone();
        without_ips
            .metadata
            .as_mut()
            .unwrap()
            .fields
            .remove(INSTANCE_IPS);
        assert_eq!(
            NodeIdentity::from_node(&without_ips).ip.as_deref(),
            Some("10.77.0.3"),
            "the node id's IP stands in for INSTANCE_IPS"
        );
    }

    #[test]
    fn istio_node_id_gives_namespace_when_metadata_is_missing() {
        let node = Node {
            id: "sidecar~127.0.0.1~productpage-1.bookinfo~bookinfo.svc.cluster.local".into(),
            ..Default::default()
        };
        let id = NodeIdentity::from_node(&node);
        assert_eq!(id.namespace, "bookinfo");
        assert_eq!(id.workload, "productpage-1");
    }

    #[test]
    fn plain_node_id_defaults_to_default_namespace() {
        let node = Node {
            id: "anything".into(),
            ..Default::default()
        };
        assert_eq!(NodeIdentity::from_node(&node).namespace, "default");
    }
}
