//! ADS responses on the wire, assembled from resources serialized once.
//!
//! Every resource is kept as the bytes of its `Any` ([`VersionedResource::encoded`]), shared
//! by every session. A protobuf message is the concatenation of its fields' encodings, so a
//! `DiscoveryResponse` is its small scalar fields followed by one length-delimited field per
//! resource: a few bytes of tag and length, then the resource's shared bytes. An
//! [`EncodedMessage`] is that list of pieces behind the 5-byte gRPC frame header; no resource is
//! encoded or copied per session to build it.
//!
//! tonic's own response encoder cannot take such pieces: it encodes every message into one
//! per-stream buffer, which then keeps the capacity of the largest message it ever held (a
//! 1 MiB route configuration pinned per stream, 2,000 streams). [`ResponseBody`] writes the
//! frames itself: small pieces are copied into chunks of at most [`CHUNK`] bytes, made as the
//! connection asks for data (HTTP/2 flow control), and large resources go out as references to
//! the shared bytes. What a stream holds is its queue of unsent messages (pieces, mostly
//! references), never a buffer sized by the past. A response that carries a whole shared map
//! (the common case) refers to that map's resources encoded once, in [`WholeMaps`].

use super::resources::{NamedResources, VersionedResource};
use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use xds_protos::{DeltaDiscoveryResponse, DiscoveryResponse};

/// The field number of `resources` in both `DiscoveryResponse` and `DeltaDiscoveryResponse`.
const RESPONSE_RESOURCES: u32 = 2;
/// The field number of `resource` (the `Any`) in `envoy.service.discovery.v3.Resource`.
const RESOURCE_ANY: u32 = 2;
/// The gRPC frame header: a compression flag and a big-endian u32 length.
const GRPC_HEADER: usize = 5;
/// The most bytes copied into one chunk of the body; a piece at least this large is sent as
/// it is (a reference to the shared bytes).
pub const CHUNK: usize = 16 * 1024;

/// One gRPC message (header included), as pieces in order.
#[derive(Debug, Default)]
pub struct EncodedMessage {
    pieces: Vec<Bytes>,
    len: usize,
}

impl EncodedMessage {
    /// The message's length on the wire, header included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole frame in one buffer (a copy: for tests).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for p in &self.pieces {
            out.put_slice(p);
        }
        out.freeze()
    }
}

/// Builds a message from small encoded parts (written into one buffer, then split off) and
/// shared resource bytes (referenced).
struct Builder {
    scratch: BytesMut,
    pieces: Vec<Bytes>,
    body_len: usize,
}

impl Builder {
    fn new(head: &impl Message, resources: usize) -> Self {
        let mut scratch = BytesMut::with_capacity(head.encoded_len() + resources * 8);
        // Encoding into a growable buffer cannot fail.
        let _ = head.encode(&mut scratch);
        let mut pieces = Vec::with_capacity(2 + resources * 2);
        // The frame header's place: its length is known at the end.
        pieces.push(Bytes::new());
        Builder {
            body_len: scratch.len(),
            scratch,
            pieces,
        }
    }

    /// Appends a length-delimited field's tag and length (its content follows).
    fn field_head(&mut self, field: u32, content_len: usize) {
        let before = self.scratch.len();
        encode_key(field, WireType::LengthDelimited, &mut self.scratch);
        encode_varint(content_len as u64, &mut self.scratch);
        self.body_len += self.scratch.len() - before;
    }

    /// Appends `DiscoveryResponse.resources` fields, one per resource.
    fn sotw_resources<'a>(&mut self, resources: impl Iterator<Item = &'a VersionedResource>) {
        for r in resources {
            self.field_head(RESPONSE_RESOURCES, r.encoded.len());
            self.shared(&r.encoded);
        }
    }

    fn shared(&mut self, bytes: &Bytes) {
        if bytes.is_empty() {
            return;
        }
        if !self.scratch.is_empty() {
            self.pieces.push(self.scratch.split().freeze());
        }
        self.pieces.push(bytes.clone());
        self.body_len += bytes.len();
    }

    fn finish(mut self) -> EncodedMessage {
        if !self.scratch.is_empty() {
            self.pieces.push(self.scratch.split().freeze());
        }
        // Uncompressed, then the length (ADS messages stay far below 4 GiB: weftd's largest is
        // a few MiB).
        let mut header = [0u8; GRPC_HEADER];
        header[1..].copy_from_slice(&(self.body_len as u32).to_be_bytes());
        self.pieces[0] = Bytes::copy_from_slice(&header);
        EncodedMessage {
            len: GRPC_HEADER + self.body_len,
            pieces: self.pieces,
        }
    }
}

/// A state-of-the-world response: `head`'s fields (its `resources` must be empty) followed by
/// `resources`.
pub fn sotw_response<'a>(
    head: &DiscoveryResponse,
    resources: impl ExactSizeIterator<Item = &'a VersionedResource>,
) -> EncodedMessage {
    debug_assert!(head.resources.is_empty());
    let mut b = Builder::new(head, resources.len());
    b.sotw_resources(resources);
    b.finish()
}

/// A state-of-the-world response carrying every resource of a shared map (its `resources`
/// fields from [`WholeMaps`], one reference), then `more` resources.
pub fn whole_map_and<'a>(
    head: &DiscoveryResponse,
    map: &Bytes,
    more: impl ExactSizeIterator<Item = &'a VersionedResource>,
) -> EncodedMessage {
    debug_assert!(head.resources.is_empty());
    let mut b = Builder::new(head, more.len());
    b.shared(map);
    b.sotw_resources(more);
    b.finish()
}

/// A delta response: `head`'s fields (its `resources` must be empty) followed by one
/// `Resource` per `(name, resource)`, each carrying the name, the version and the `Any`.
pub fn delta_response<'a>(
    head: &DeltaDiscoveryResponse,
    resources: impl ExactSizeIterator<Item = (&'a str, &'a VersionedResource)>,
) -> EncodedMessage {
    debug_assert!(head.resources.is_empty());
    let mut b = Builder::new(head, resources.len());
    for (name, r) in resources {
        let before = b.scratch.len();
        delta_resource_head(name, r, &mut b.scratch);
        b.body_len += b.scratch.len() - before;
        b.shared(&r.encoded);
    }
    b.finish()
}

/// Writes one `resources` entry of a delta response up to the `Any`'s bytes: its tag and
/// length, the `Resource`'s name and version, and the tag and length of its `resource`.
fn delta_resource_head(name: &str, r: &VersionedResource, out: &mut BytesMut) {
    let meta = xds_protos::Resource {
        name: name.to_string(),
        version: r.version.clone(),
        ..Default::default()
    };
    let any_field =
        prost::encoding::key_len(RESOURCE_ANY) + encoded_len_varint(r.encoded.len() as u64);
    let resource_len = meta.encoded_len() + any_field + r.encoded.len();
    encode_key(RESPONSE_RESOURCES, WireType::LengthDelimited, out);
    encode_varint(resource_len as u64, out);
    // Encoding into a growable buffer cannot fail.
    let _ = meta.encode(out);
    encode_key(RESOURCE_ANY, WireType::LengthDelimited, out);
    encode_varint(r.encoded.len() as u64, out);
}

/// A response that carries every resource of a shared map: `head`'s fields, then the map's
/// `resources` fields from [`WholeMaps`] (one reference for the whole list).
pub fn whole_map_response(head: &impl Message, resources: &Bytes) -> EncodedMessage {
    let mut b = Builder::new(head, 0);
    b.shared(resources);
    b.finish()
}

/// How the resources of a map are written in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `DiscoveryResponse.resources`: the `Any`s.
    Sotw,
    /// `DeltaDiscoveryResponse.resources`: `Resource`s with name and version.
    Delta,
}

/// The `resources` fields of whole shared maps, encoded once per map and form.
///
/// Most responses carry a whole map — every proxy of a class is sent the same clusters,
/// endpoints and listeners — so the list is encoded once and every session's response refers
/// to it: a response is then a few hundred bytes of its own and one shared buffer, which HTTP/2
/// holds by reference while the proxy reads. (Copied per session, as pieces of 16 KiB, a
/// proxy that reads slowly leaves its whole response buffered in weftd: measured, 2.8 GB at
/// 2,000 proxies.) An entry lives as long as its map; dead ones are dropped on the next insert.
#[derive(Default)]
pub struct WholeMaps {
    entries: Mutex<Vec<WholeMap>>,
}

struct WholeMap {
    map: Weak<NamedResources>,
    form: Form,
    resources: Bytes,
}

impl WholeMaps {
    /// The encoded `resources` fields of every resource of `map`, in `form`.
    pub fn resources(&self, map: &Arc<NamedResources>, form: Form) -> Bytes {
        let mut entries = match self.entries.lock() {
            Ok(g) => g,
            // Entries are pushed whole or dropped whole: a panic cannot leave one half-made.
            Err(poisoned) => poisoned.into_inner(),
        };
        let found = entries.iter().find(|e| {
            e.form == form
                && e.map.strong_count() > 0
                && std::ptr::eq(e.map.as_ptr(), Arc::as_ptr(map))
        });
        if let Some(e) = found {
            return e.resources.clone();
        }
        entries.retain(|e| e.map.strong_count() > 0);
        let resources = encode_whole(map, form);
        entries.push(WholeMap {
            map: Arc::downgrade(map),
            form,
            resources: resources.clone(),
        });
        resources
    }

    /// How many maps are held (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }
}

fn encode_whole(map: &NamedResources, form: Form) -> Bytes {
    let size: usize = map.values().map(|r| r.encoded.len() + 64).sum();
    let mut out = BytesMut::with_capacity(size);
    for (name, r) in map {
        match form {
            Form::Sotw => {
                encode_key(RESPONSE_RESOURCES, WireType::LengthDelimited, &mut out);
                encode_varint(r.encoded.len() as u64, &mut out);
            }
            Form::Delta => delta_resource_head(name, r, &mut out),
        }
        out.put_slice(&r.encoded);
    }
    out.freeze()
}

/// The body of an ADS response stream: the frames of the messages the session queues, then
/// the gRPC status as trailers.
pub struct ResponseBody {
    messages: mpsc::Receiver<Result<EncodedMessage, tonic::Status>>,
    /// The pieces of the message being sent.
    pending: VecDeque<Bytes>,
    ended: bool,
}

impl ResponseBody {
    pub fn new(messages: mpsc::Receiver<Result<EncodedMessage, tonic::Status>>) -> Self {
        ResponseBody {
            messages,
            pending: VecDeque::new(),
            ended: false,
        }
    }

    /// The next data chunk from the pending pieces: a large piece alone, else small pieces
    /// copied together up to [`CHUNK`] bytes.
    fn next_chunk(&mut self) -> Option<Bytes> {
        let first = self.pending.pop_front()?;
        if first.len() >= CHUNK {
            return Some(first);
        }
        // Sized to what it holds: HTTP/2 keeps a chunk until the proxy reads it, and most
        // messages are a few hundred bytes of their own before a shared piece.
        let joined = self
            .pending
            .iter()
            .take_while(|p| p.len() < CHUNK)
            .scan(first.len(), |len, p| {
                *len += p.len();
                (*len <= CHUNK).then_some(())
            })
            .count();
        let size = first.len()
            + self
                .pending
                .iter()
                .take(joined)
                .map(Bytes::len)
                .sum::<usize>();
        let mut chunk = BytesMut::with_capacity(size);
        chunk.put_slice(&first);
        for next in self.pending.drain(..joined) {
            chunk.put_slice(&next);
        }
        Some(chunk.freeze())
    }
}

fn trailers(status: &tonic::Status) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    // A status whose message cannot be a header value still gets its code across.
    if status.add_header(&mut map).is_err() {
        map.insert("grpc-status", http::HeaderValue::from(status.code() as i32));
    }
    map
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        if let Some(chunk) = this.next_chunk() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(chunk))));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        match this.messages.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(message))) => {
                this.pending.extend(message.pieces);
                match this.next_chunk() {
                    Some(chunk) => Poll::Ready(Some(Ok(http_body::Frame::data(chunk)))),
                    // An empty message is never built; nothing to send yet.
                    None => {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                }
            }
            Poll::Ready(Some(Err(status))) => {
                this.ended = true;
                Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers(&status)))))
            }
            Poll::Ready(None) => {
                this.ended = true;
                let ok = tonic::Status::new(tonic::Code::Ok, "");
                Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers(&ok)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.pending.is_empty()
    }
}

/// The request half of an ADS stream: gRPC frames read from the body and decoded.
///
/// tonic's own decoder keeps a per-stream buffer at the size of the largest request it ever
/// read, and a sidecar's endpoint subscription names every cluster (200 KB at 3,000
/// clusters): 2,000 streams would keep 0.5 GB for requests long answered (measured: 320 MB at
/// 2,000 sotw proxies). Here a buffer grown past [`KEEP_REQUEST_BUFFER`] for a request is let
/// go with it.
pub struct RequestStream<Req> {
    body: tonic::body::Body,
    buf: BytesMut,
    max_message: usize,
    ended: bool,
    _req: std::marker::PhantomData<fn() -> Req>,
}

/// The request buffer capacity a stream keeps between requests.
pub const KEEP_REQUEST_BUFFER: usize = 16 * 1024;

/// A request type, read from the bytes of one gRPC message.
pub trait FromFrame: Sized {
    fn from_frame(frame: Bytes) -> Result<Self, prost::DecodeError>;
}

impl FromFrame for xds_protos::DeltaDiscoveryRequest {
    fn from_frame(frame: Bytes) -> Result<Self, prost::DecodeError> {
        Self::decode(frame)
    }
}

impl FromFrame for xds_protos::DiscoveryRequest {
    fn from_frame(frame: Bytes) -> Result<Self, prost::DecodeError> {
        Self::decode(frame)
    }
}

impl<Req: FromFrame> RequestStream<Req> {
    pub fn new(body: tonic::body::Body, max_message: usize) -> Self {
        RequestStream {
            body,
            buf: BytesMut::new(),
            max_message,
            ended: false,
            _req: std::marker::PhantomData,
        }
    }

    /// The next request; `None` when the proxy closed its side. Cancel-safe: what was read
    /// stays in the buffer.
    pub async fn message(&mut self) -> Result<Option<Req>, tonic::Status> {
        use http_body_util::BodyExt;
        loop {
            if let Some(msg) = self.take_message()? {
                return Ok(Some(msg));
            }
            if self.ended {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(tonic::Status::internal(
                        "the request stream ended inside a message",
                    ))
                };
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.put(data);
                    }
                }
                Some(Err(status)) => return Err(status),
                None => self.ended = true,
            }
        }
    }

    /// Decodes one whole message from the buffer, if it holds one.
    fn take_message(&mut self) -> Result<Option<Req>, tonic::Status> {
        if self.buf.len() < GRPC_HEADER {
            return Ok(None);
        }
        if self.buf[0] != 0 {
            return Err(tonic::Status::unimplemented(
                "weftd accepts uncompressed ADS requests only",
            ));
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > self.max_message {
            return Err(tonic::Status::resource_exhausted(format!(
                "a request of {len} bytes is over weftd's limit of {} bytes",
                self.max_message
            )));
        }
        if self.buf.len() < GRPC_HEADER + len {
            self.buf.reserve(GRPC_HEADER + len - self.buf.len());
            return Ok(None);
        }
        // Decoded from shared bytes: `bytes` fields (a sotw request's names) are slices of the
        // frame, not copies.
        let frame = self.buf.split_to(GRPC_HEADER + len).freeze();
        let msg = Req::from_frame(frame.slice(GRPC_HEADER..)).map_err(|e| {
            tonic::Status::invalid_argument(format!("cannot decode the request: {e}"))
        })?;
        if frame.len() > KEEP_REQUEST_BUFFER {
            // The frame and what follows it share one allocation, sized for this large
            // request: what follows (usually nothing, else the start of the next request) is
            // moved out, so the allocation goes with the frame. Checking the remainder's
            // capacity would not do: a split-off remainder reports only its own part.
            self.buf = BytesMut::from(&self.buf[..]);
        }
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests;
