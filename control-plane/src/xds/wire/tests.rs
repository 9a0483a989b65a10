use super::*;
use http_body_util::BodyExt;
use std::sync::Arc;
use xds_protos::pb::google::protobuf::Any;

fn resource(type_url: &str, len: usize, fill: u8) -> VersionedResource {
    VersionedResource::new(Any {
        type_url: type_url.to_string(),
        value: vec![fill; len],
    })
}

/// The protobuf body of a frame, after checking its header.
fn body_of(frame: &[u8]) -> &[u8] {
    assert_eq!(frame[0], 0, "uncompressed");
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    assert_eq!(len, frame.len() - GRPC_HEADER, "length in the header");
    &frame[GRPC_HEADER..]
}

#[test]
fn a_sotw_response_decodes_as_the_message_prost_would_encode() {
    let rs = [
        resource("t", 3, 1),
        resource("t", 300, 2),
        resource("t", 0, 3),
    ];
    let head = DiscoveryResponse {
        version_info: "v7".into(),
        type_url: "t".into(),
        nonce: "12".into(),
        ..Default::default()
    };
    let msg = sotw_response(&head, rs.iter());
    let bytes = msg.to_bytes();
    assert_eq!(msg.len(), bytes.len());
    let decoded = DiscoveryResponse::decode(body_of(&bytes)).unwrap();
    let expected = DiscoveryResponse {
        resources: rs.iter().map(|r| r.any().unwrap()).collect(),
        ..head
    };
    assert_eq!(decoded, expected);
}

#[test]
fn a_delta_response_decodes_as_the_message_prost_would_encode() {
    let rs = [resource("t", 5, 1), resource("t", 70_000, 2)];
    let head = DeltaDiscoveryResponse {
        system_version_info: "v2".into(),
        type_url: "t".into(),
        nonce: "3".into(),
        removed_resources: vec!["gone".into()],
        ..Default::default()
    };
    let msg = delta_response(&head, [("a", &rs[0]), ("b", &rs[1])].into_iter());
    let decoded = DeltaDiscoveryResponse::decode(body_of(&msg.to_bytes())).unwrap();
    let expected = DeltaDiscoveryResponse {
        resources: vec![
            xds_protos::Resource {
                name: "a".into(),
                version: rs[0].version.clone(),
                resource: Some(rs[0].any().unwrap()),
                ..Default::default()
            },
            xds_protos::Resource {
                name: "b".into(),
                version: rs[1].version.clone(),
                resource: Some(rs[1].any().unwrap()),
                ..Default::default()
            },
        ],
        ..head
    };
    assert_eq!(decoded, expected);
}

#[test]
fn an_empty_response_is_a_whole_frame() {
    let head = DiscoveryResponse {
        type_url: "t".into(),
        nonce: "1".into(),
        ..Default::default()
    };
    let msg = sotw_response(&head, std::iter::empty::<&VersionedResource>());
    let decoded = DiscoveryResponse::decode(body_of(&msg.to_bytes())).unwrap();
    assert_eq!(decoded, head);
}

#[test]
fn resources_are_referenced_not_copied() {
    let r = resource("t", 1000, 9);
    let head = DiscoveryResponse::default();
    let msg = sotw_response(&head, [&r, &r].into_iter());
    let shared = msg
        .pieces
        .iter()
        .filter(|p| p.as_ptr() == r.encoded.as_ptr())
        .count();
    assert_eq!(shared, 2);
}

/// Every frame of a body: data chunks, then the trailers.
async fn frames(mut body: ResponseBody) -> (Vec<Bytes>, Option<http::HeaderMap>) {
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(d) => data.push(d),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    (data, trailers)
}

#[tokio::test]
async fn the_body_sends_large_resources_as_they_are_and_small_ones_in_chunks() {
    let large = resource("t", 3 * CHUNK, 1);
    let smalls: Vec<_> = (0..100).map(|i| resource("t", 400, i)).collect();
    let mut all: Vec<&VersionedResource> = smalls.iter().collect();
    all.insert(50, &large);
    let msg = sotw_response(&DiscoveryResponse::default(), all.into_iter());
    let whole = msg.to_bytes();
    let (tx, rx) = mpsc::channel(4);
    tx.send(Ok(msg)).await.unwrap();
    drop(tx);
    let (data, trailers) = frames(ResponseBody::new(rx)).await;

    let joined: Vec<u8> = data.iter().flat_map(|d| d.iter().copied()).collect();
    assert_eq!(joined, whole.to_vec());
    assert!(data
        .iter()
        .any(|d| d.as_ptr() == large.encoded.as_ptr() && d.len() == large.encoded.len()));
    assert!(data
        .iter()
        .filter(|d| d.as_ptr() != large.encoded.as_ptr())
        .all(|d| d.len() <= CHUNK));
    // 100 resources of ~400 bytes fit in a few chunks, not one frame each.
    assert!(data.len() <= 6, "{} data frames", data.len());
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
}

#[tokio::test]
async fn an_error_ends_the_body_with_its_status() {
    let (tx, rx) = mpsc::channel(4);
    tx.send(Err(tonic::Status::invalid_argument("no node")))
        .await
        .unwrap();
    let (data, trailers) = frames(ResponseBody::new(rx)).await;
    assert!(data.is_empty());
    let trailers = trailers.unwrap();
    assert_eq!(trailers["grpc-status"], "3");
    // Percent-encoded, as the gRPC spec says.
    assert_eq!(trailers["grpc-message"], "no%20node");
}

fn map_of(rs: &[(&str, &VersionedResource)]) -> Arc<NamedResources> {
    Arc::new(
        rs.iter()
            .map(|(n, r)| (n.to_string(), Arc::new((*r).clone())))
            .collect(),
    )
}

#[test]
fn a_whole_map_response_equals_one_listing_every_resource() {
    let (a, b) = (resource("t", 10, 1), resource("t", 20_000, 2));
    let map = map_of(&[("a", &a), ("b", &b)]);
    let maps = WholeMaps::default();

    let head = DiscoveryResponse {
        version_info: "v1".into(),
        nonce: "4".into(),
        ..Default::default()
    };
    let whole = whole_map_response(&head, &maps.resources(&map, Form::Sotw));
    let listed = sotw_response(&head, map.values().map(|r| &**r));
    assert_eq!(whole.to_bytes(), listed.to_bytes());
    // The map and more: as if listed one after the other.
    let c = resource("t", 30, 3);
    let more = whole_map_and(&head, &maps.resources(&map, Form::Sotw), [&c].into_iter());
    let listed = sotw_response(
        &head,
        map.values()
            .map(|r| &**r)
            .chain([&c])
            .collect::<Vec<_>>()
            .into_iter(),
    );
    assert_eq!(more.to_bytes(), listed.to_bytes());

    let head = DeltaDiscoveryResponse {
        system_version_info: "v1".into(),
        nonce: "5".into(),
        ..Default::default()
    };
    let whole = whole_map_response(&head, &maps.resources(&map, Form::Delta));
    let listed = delta_response(&head, map.iter().map(|(n, r)| (n.as_str(), &**r)));
    assert_eq!(whole.to_bytes(), listed.to_bytes());
}

#[test]
fn a_whole_map_is_encoded_once_and_dropped_with_its_map() {
    let a = resource("t", 10, 1);
    let maps = WholeMaps::default();
    let first = map_of(&[("a", &a)]);
    let one = maps.resources(&first, Form::Sotw);
    let again = maps.resources(&first, Form::Sotw);
    assert_eq!(
        one.as_ptr(),
        again.as_ptr(),
        "the same buffer, not a new encoding"
    );
    assert_eq!(maps.len(), 1);

    // The next configuration's map replaces it once the old one is gone.
    drop(first);
    let second = map_of(&[("a", &a)]);
    maps.resources(&second, Form::Sotw);
    assert_eq!(maps.len(), 1);
}

/// A request body delivering `chunks` as its data frames.
fn request_body(chunks: Vec<Vec<u8>>) -> tonic::body::Body {
    let frames = chunks
        .into_iter()
        .map(|c| Ok::<_, tonic::Status>(http_body::Frame::data(Bytes::from(c))));
    tonic::body::Body::new(http_body_util::StreamBody::new(futures::stream::iter(
        frames,
    )))
}

fn framed(msg: &impl Message) -> Vec<u8> {
    let body = msg.encode_to_vec();
    let mut out = vec![0u8];
    out.extend((body.len() as u32).to_be_bytes());
    out.extend(body);
    out
}

#[tokio::test]
async fn requests_are_read_across_any_split_of_frames_and_a_large_buffer_is_let_go() {
    let big = xds_protos::DiscoveryRequest {
        type_url: "t".into(),
        resource_names: (0..3000)
            .map(|i| format!("outbound|80|v1|svc-{i}.ns"))
            .collect(),
        ..Default::default()
    };
    let small = xds_protos::DiscoveryRequest {
        type_url: "u".into(),
        response_nonce: "7".into(),
        ..Default::default()
    };
    let mut bytes = framed(&big);
    bytes.extend(framed(&small));
    // Split at odd places: inside the header, inside the messages.
    let chunks: Vec<Vec<u8>> = bytes.chunks(1237).map(<[u8]>::to_vec).collect();
    let mut stream =
        RequestStream::<xds_protos::DiscoveryRequest>::new(request_body(chunks), 1 << 20);

    assert_eq!(stream.message().await.unwrap(), Some(big));
    // The allocation that held the large request is gone, not merely out of view: a buffer
    // split off it would report a small capacity yet could reclaim the whole of it.
    assert!(!stream.buf.try_reclaim(2 * KEEP_REQUEST_BUFFER));
    assert_eq!(stream.message().await.unwrap(), Some(small));
    assert!(!stream.buf.try_reclaim(2 * KEEP_REQUEST_BUFFER));
    assert_eq!(stream.message().await.unwrap(), None);
}

#[tokio::test]
async fn a_request_over_the_limit_or_compressed_is_refused() {
    let req = xds_protos::DiscoveryRequest {
        type_url: "a-long-enough-type-url".into(),
        ..Default::default()
    };
    let mut stream =
        RequestStream::<xds_protos::DiscoveryRequest>::new(request_body(vec![framed(&req)]), 4);
    let err = stream.message().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);

    let mut compressed = framed(&req);
    compressed[0] = 1;
    let mut stream =
        RequestStream::<xds_protos::DiscoveryRequest>::new(request_body(vec![compressed]), 1 << 20);
    assert_eq!(
        stream.message().await.unwrap_err().code(),
        tonic::Code::Unimplemented
    );
}

#[tokio::test]
async fn a_stream_ending_inside_a_message_is_an_error() {
    let req = xds_protos::DiscoveryRequest {
        type_url: "t".into(),
        ..Default::default()
    };
    let mut cut = framed(&req);
    cut.pop();
    let mut stream =
        RequestStream::<xds_protos::DiscoveryRequest>::new(request_body(vec![cut]), 1 << 20);
    assert!(stream.message().await.is_err());
}
