//! ADS responses as the load client reads them: the same messages on the wire, with each
//! resource left as its encoded bytes.
//!
//! The load client is one thread standing in for thousands of proxies on a machine it shares
//! with weftd. Decoded in full, every response is every resource's `Any` copied out and
//! dropped again, per simulated proxy: measured, the client then ran at 100% of its core
//! while weftd idled, so it paced what was being measured. A resource is decoded only for the
//! names it makes a proxy follow, once per version for all the proxies (see `ads_load`).

use bytes::Bytes;
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

async fn open<Req, Resp>(
    channel: Channel,
    method: &'static str,
    requests: impl tokio_stream::Stream<Item = Req> + Send + 'static,
) -> Result<tonic::Streaming<Resp>, tonic::Status>
where
    Req: Message + Send + Sync + 'static,
    Resp: Message + Default + Send + Sync + 'static,
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
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    Ok(grpc
        .streaming(tonic::Request::new(requests), path, codec)
        .await?
        .into_inner())
}

/// A state-of-the-world ADS stream.
pub async fn sotw(
    channel: Channel,
    requests: impl tokio_stream::Stream<Item = DiscoveryRequest> + Send + 'static,
) -> Result<tonic::Streaming<SotwResponse>, tonic::Status> {
    open(channel, "StreamAggregatedResources", requests).await
}

/// A delta ADS stream.
pub async fn delta(
    channel: Channel,
    requests: impl tokio_stream::Stream<Item = DeltaDiscoveryRequest> + Send + 'static,
) -> Result<tonic::Streaming<DeltaResponse>, tonic::Status> {
    open(channel, "DeltaAggregatedResources", requests).await
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
    }
}
