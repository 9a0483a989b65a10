//! A state-of-the-world request as weftd reads it.
//!
//! Every sotw request of a sidecar repeats its whole subscription: an endpoint request or ACK
//! names every cluster (3,000 names, 200 KB at 1,000 services). Decoded as
//! `DiscoveryRequest`, that is 3,000 `String`s allocated, checked and freed per request, twice
//! per proxy per change: most of a sotw change's CPU at 2,000 proxies (profiled: `malloc`,
//! `free` and page clearing on top). This message has the same fields on the wire, but reads
//! the names as slices of the received frame, so reading them allocates nothing per name;
//! they are checked as UTF-8 where they are compared.

use bytes::Bytes;
use xds_protos::pb::envoy::config::core::v3::Node;
use xds_protos::pb::google::rpc::Status;

/// `envoy.service.discovery.v3.DiscoveryRequest`, with `resource_names` as frame slices
/// (`resource_locators`, which weftd does not serve, is skipped as an unknown field).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SotwRequest {
    #[prost(string, tag = "1")]
    pub version_info: String,
    #[prost(message, optional, tag = "2")]
    pub node: Option<Node>,
    #[prost(bytes = "bytes", repeated, tag = "3")]
    pub resource_names: Vec<Bytes>,
    #[prost(string, tag = "4")]
    pub type_url: String,
    #[prost(string, tag = "5")]
    pub response_nonce: String,
    #[prost(message, optional, tag = "6")]
    pub error_detail: Option<Status>,
}

impl SotwRequest {
    /// The names, borrowed; an error naming the first that is not UTF-8 (as a `string` field
    /// must be).
    pub fn names(&self) -> Result<Vec<&str>, String> {
        self.resource_names
            .iter()
            .map(|n| {
                std::str::from_utf8(n)
                    .map_err(|_| format!("resource name {:?} is not UTF-8", n.escape_ascii()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn reads_what_envoy_sends_as_a_discovery_request() {
        let sent = xds_protos::DiscoveryRequest {
            version_info: "v3".into(),
            node: Some(Node {
                id: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local".into(),
                ..Default::default()
            }),
            resource_names: vec!["outbound|80||a.ns".into(), "outbound|80||b.ns".into()],
            type_url: "t".into(),
            response_nonce: "7".into(),
            error_detail: Some(Status {
                code: 3,
                message: "bad".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let wire = Bytes::from(sent.encode_to_vec());
        let read = SotwRequest::decode(wire.clone()).unwrap();
        assert_eq!(read.version_info, "v3");
        assert_eq!(read.node, sent.node);
        assert_eq!(
            read.names().unwrap(),
            ["outbound|80||a.ns", "outbound|80||b.ns"]
        );
        assert_eq!(
            (read.type_url.as_str(), read.response_nonce.as_str()),
            ("t", "7")
        );
        assert_eq!(read.error_detail, sent.error_detail);
        // The names are slices of the frame, not copies.
        let frame = wire.as_ptr_range();
        assert!(read
            .resource_names
            .iter()
            .all(|n| frame.contains(&n.as_ptr())));
    }

    #[test]
    fn a_name_that_is_not_utf8_is_an_error() {
        let read = SotwRequest {
            resource_names: vec![Bytes::from_static(b"ok"), Bytes::from_static(b"\xff")],
            ..Default::default()
        };
        assert!(read.names().unwrap_err().contains("not UTF-8"));
    }
}
