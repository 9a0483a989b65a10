//! A state-of-the-world request as weftd reads it.
//!
//! Every sotw request of a sidecar repeats its whole subscription: an endpoint request or ACK
//! names every cluster (3,000 names, 200 KB at 1,000 services). Decoded as
//! `DiscoveryRequest`, that is 3,000 `String`s allocated, checked and freed per request, twice
//! per proxy per change: most of a sotw change's CPU at 2,000 proxies (profiled: `malloc`,
//! `free` and page clearing on top). This message has the same fields on the wire, but reads
//! the names as slices of the received frame, so reading them allocates nothing per name;
//! they are checked as UTF-8 where they are compared.

use super::super::wire::FromFrame;
use bytes::{Buf, Bytes};
use prost::encoding::{
    check_wire_type, decode_key, decode_varint, message, skip_field, string, DecodeContext,
    WireType,
};
use prost::DecodeError;
use std::ops::Range;
use xds_protos::pb::envoy::config::core::v3::Node;
use xds_protos::pb::google::rpc::Status;

/// `envoy.service.discovery.v3.DiscoveryRequest`, with `resource_names` as places in the
/// received frame (`resource_locators`, which weftd does not serve, is skipped as an unknown
/// field). Not even a `Bytes` per name: their reference counting alone was 7 % of a sotw
/// change (measured).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SotwRequest {
    pub version_info: String,
    pub node: Option<Node>,
    pub type_url: String,
    pub response_nonce: String,
    pub error_detail: Option<Status>,
    frame: Bytes,
    names: Vec<Range<usize>>,
}

impl SotwRequest {
    /// The names, borrowed; an error naming the first that is not UTF-8 (as a `string` field
    /// must be).
    pub fn names(&self) -> Result<Vec<&str>, String> {
        self.names
            .iter()
            .map(|at| {
                let n = &self.frame[at.clone()];
                std::str::from_utf8(n)
                    .map_err(|_| format!("resource name {:?} is not UTF-8", n.escape_ascii()))
            })
            .collect()
    }
}

impl FromFrame for SotwRequest {
    fn from_frame(frame: Bytes) -> Result<Self, DecodeError> {
        let mut req = SotwRequest::default();
        let mut buf = frame.clone();
        let ctx = DecodeContext::default;
        while buf.has_remaining() {
            let (tag, wire_type) = decode_key(&mut buf)?;
            match tag {
                1 => string::merge(wire_type, &mut req.version_info, &mut buf, ctx())?,
                2 => message::merge(
                    wire_type,
                    req.node.get_or_insert_with(Node::default),
                    &mut buf,
                    ctx(),
                )?,
                3 => {
                    check_wire_type(WireType::LengthDelimited, wire_type)?;
                    let at = frame.len() - buf.remaining();
                    // Checks the length against what is left, and steps over the name.
                    skip_field(wire_type, tag, &mut buf, ctx())?;
                    let end = frame.len() - buf.remaining();
                    let len = decode_varint(&mut &frame[at..end])? as usize;
                    req.names.push(end - len..end);
                }
                4 => string::merge(wire_type, &mut req.type_url, &mut buf, ctx())?,
                5 => string::merge(wire_type, &mut req.response_nonce, &mut buf, ctx())?,
                6 => message::merge(
                    wire_type,
                    req.error_detail.get_or_insert_with(Status::default),
                    &mut buf,
                    ctx(),
                )?,
                _ => skip_field(wire_type, tag, &mut buf, ctx())?,
            }
        }
        req.frame = frame;
        Ok(req)
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
        let read = SotwRequest::from_frame(wire.clone()).unwrap();
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
            .names()
            .unwrap()
            .iter()
            .all(|n| frame.contains(&n.as_ptr())));
    }

    #[test]
    fn a_truncated_name_is_an_error() {
        let sent = xds_protos::DiscoveryRequest {
            resource_names: vec!["outbound|80||a.ns".into()],
            ..Default::default()
        }
        .encode_to_vec();
        let cut = Bytes::copy_from_slice(&sent[..sent.len() - 1]);
        assert!(SotwRequest::from_frame(cut).is_err());
    }

    #[test]
    fn a_name_that_is_not_utf8_is_an_error() {
        // Field 3 (length-delimited), "ok"; field 3, 0xff.
        let wire = Bytes::from_static(b"\x1a\x02ok\x1a\x01\xff");
        let read = SotwRequest::from_frame(wire).unwrap();
        assert!(read.names().unwrap_err().contains("not UTF-8"));
    }
}
