//! ADS responses as the load client reads them: the same messages on the wire, with each
//! resource left as its encoded bytes.
//!
//! The load client is one thread standing in for thousands of proxies on a machine it shares
//! with weftd. Decoded in full, every response is every resource's `Any` copied out and
//! dropped again, per simulated proxy: measured, the client then ran at 100% of its core
//! while weftd idled, so it paced what was being measured. A resource is decoded only for the
//! names it makes a proxy follow, once per version for all the proxies (see `ads_load`).

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use tonic::transport::Channel;
use xds_protos::pb::google::protobuf::Any;
use xds_protos::{DeltaDiscoveryRequest, DiscoveryRequest};

/// `envoy.service.discovery.v3.DiscoveryResponse`, resources undecoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SotwResponse {
    #[prost(string, tag = "1")]
    pub version_info: String,
    /// Each an encoded `google.protobuf.Any`.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub resources: Vec<Bytes>,
    #[prost(string, tag = "4")]
    pub type_url: String,
    #[prost(string, tag = "5")]
    pub nonce: String,
}

/// `envoy.service.discovery.v3.Resource`, its `Any` undecoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeltaResource {
    #[prost(string, tag = "1")]
    pub version: String,
    /// An encoded `google.protobuf.Any`.
    #[prost(bytes = "bytes", tag = "2")]
    pub resource: Bytes,
    #[prost(string, tag = "3")]
    pub name: String,
}

/// `envoy.service.discovery.v3.DeltaDiscoveryResponse`, resources undecoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeltaResponse {
    #[prost(string, tag = "1")]
    pub system_version_info: String,
    #[prost(message, repeated, tag = "2")]
    pub resources: Vec<DeltaResource>,
    #[prost(string, tag = "4")]
    pub type_url: String,
    #[prost(string, tag = "5")]
    pub nonce: String,
    #[prost(string, repeated, tag = "6")]
    pub removed_resources: Vec<String>,
}

/// An encoded `Any`, decoded.
pub fn any(encoded: &Bytes) -> Option<Any> {
    Any::decode(encoded.clone()).ok()
}

const SERVICE: &str = "/envoy.service.discovery.v3.AggregatedDiscoveryService/";

/// Opens an ADS stream of `method`, its messages read and written by `codec`.
async fn open<C>(
    channel: Channel,
    method: &'static str,
    requests: impl tokio_stream::Stream<Item = C::Encode> + Send + 'static,
    codec: C,
) -> Result<tonic::Streaming<C::Decode>, tonic::Status>
where
    C: tonic::codec::Codec,
    C::Encode: Send + Sync + 'static,
    C::Decode: Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel)
        // With 10,000 services a whole state-of-the-world response is several MB.
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_maybe_shared(format!("{SERVICE}{method}"))
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(grpc
        .streaming(tonic::Request::new(requests), path, codec)
        .await?
        .into_inner())
}

/// A state-of-the-world ADS stream, messages as their encoded bytes both ways: a proxy's
/// requests repeat its whole endpoint subscription (3,000 names at 1,000 services), and every
/// response is read for its version and nonce only, so the client builds neither per proxy.
pub async fn sotw(
    channel: Channel,
    requests: impl tokio_stream::Stream<Item = Bytes> + Send + 'static,
) -> Result<tonic::Streaming<Bytes>, tonic::Status> {
    open(channel, "StreamAggregatedResources", requests, RawCodec).await
}

/// A `DiscoveryResponse`'s fields but its resources (skipped when decoding: no copy of them).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SotwHead {
    #[prost(string, tag = "1")]
    pub version_info: String,
    #[prost(string, tag = "4")]
    pub type_url: String,
    #[prost(string, tag = "5")]
    pub nonce: String,
}

/// A `DiscoveryRequest`'s `resource_names`, encoded once for every proxy that subscribes to
/// the same names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedNames(Bytes);

impl EncodedNames {
    pub fn new(names: &[String]) -> Self {
        let mut out = bytes::BytesMut::new();
        prost::encoding::string::encode_repeated(3, names, &mut out);
        EncodedNames(out.freeze())
    }
}

/// A `DiscoveryRequest`: `head` (its `resource_names` empty) followed by `names`. A protobuf
/// message is the concatenation of its fields, in any order.
pub fn sotw_request(head: &DiscoveryRequest, names: &EncodedNames) -> Bytes {
    debug_assert!(head.resource_names.is_empty());
    let mut out = bytes::BytesMut::with_capacity(head.encoded_len() + names.0.len());
    // Encoding into a growable buffer cannot fail.
    let _ = head.encode(&mut out);
    out.extend_from_slice(&names.0);
    out.freeze()
}

/// Messages as their encoded bytes.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A delta ADS stream.
pub async fn delta(
    channel: Channel,
    requests: impl tokio_stream::Stream<Item = DeltaDiscoveryRequest> + Send + 'static,
) -> Result<tonic::Streaming<DeltaResponse>, tonic::Status> {
    let codec = tonic_prost::ProstCodec::<DeltaDiscoveryRequest, DeltaResponse>::default();
    open(channel, "DeltaAggregatedResources", requests, codec).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_weftd_sends() {
        let any = Any {
            type_url: "t".into(),
            value: vec![1, 2, 3],
        };
        let full = xds_protos::DeltaDiscoveryResponse {
            system_version_info: "v".into(),
            resources: vec![xds_protos::Resource {
                name: "a".into(),
                version: "1".into(),
                resource: Some(any.clone()),
                ..Default::default()
            }],
            type_url: "u".into(),
            nonce: "n".into(),
            removed_resources: vec!["b".into()],
            ..Default::default()
        };
        let light = DeltaResponse::decode(full.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            (light.system_version_info.as_str(), light.type_url.as_str()),
            ("v", "u")
        );
        assert_eq!(
            (light.nonce.as_str(), light.removed_resources.as_slice()),
            ("n", &["b".to_string()][..])
        );
        let r = &light.resources[0];
        assert_eq!((r.name.as_str(), r.version.as_str()), ("a", "1"));
        assert_eq!(super::any(&r.resource), Some(any.clone()));
        let sotw = xds_protos::DiscoveryResponse {
            version_info: "v".into(),
            resources: vec![any.clone()],
            type_url: "u".into(),
            nonce: "n".into(),
            ..Default::default()
        };
        let light = SotwResponse::decode(sotw.encode_to_vec().as_slice()).unwrap();
        assert_eq!(super::any(&light.resources[0]), Some(any));
        let head = SotwHead::decode(sotw.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            (
                head.version_info.as_str(),
                head.type_url.as_str(),
                head.nonce.as_str()
            ),
            ("v", "u", "n")
        );
    }

    #[test]
    fn a_request_with_encoded_names_is_the_request_with_those_names() {
        let names = vec!["a".to_string(), "b".to_string()];
        let head = DiscoveryRequest {
            version_info: "v".into(),
            type_url: "t".into(),
            response_nonce: "n".into(),
            ..Default::default()
        };
        let sent = sotw_request(&head, &EncodedNames::new(&names));
        let read = DiscoveryRequest::decode(sent).unwrap();
        assert_eq!(
            read,
            DiscoveryRequest {
                resource_names: names,
                ..head
            }
        );
    }
}
