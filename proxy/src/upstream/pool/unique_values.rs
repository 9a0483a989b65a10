//! Request headers whose value is new on every request (`x-request-id`, trace and span ids)
//! go out on HTTP/2 as HPACK "never indexed" literals.
//!
//! h2's encoder otherwise adds every value to the connection's dynamic table. A value that is
//! never sent again only evicts entries that would have been reused (`user-agent`,
//! `content-type`…), and each such name grows a chain of entries that the next request's
//! lookup walks comparing values: measured with `benches/callgrind --grpc`, the
//! `x-request-id` chain alone cost a few thousand instructions per call. Compression loses
//! nothing, as a fresh value is sent literally either way (RFC 7541 §7.1.3 also asks the next
//! hop not to index a never-indexed value, which is as right for it as for us).

use http::header::HeaderMap;

/// Marks the per-request values among `headers` so h2 sends them never-indexed: the headers a
/// proxy mints per request (`x-request-id`) or per span (W3C and B3 trace context; not
/// `tracestate` or the sampling flags, which repeat). One pass over the names, cheaper than a
/// lookup per name; the names are spelled here rather than taken from `http` or `observe`,
/// which sit above the pool.
pub fn never_index_unique_values(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if matches!(
            name.as_str(),
            "x-request-id"
                | "traceparent"
                | "b3"
                | "x-b3-traceid"
                | "x-b3-spanid"
                | "x-b3-parentspanid"
        ) {
            value.set_sensitive(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn only_the_per_request_values_are_marked() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("6f1c"));
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        h.insert("x-b3-spanid", HeaderValue::from_static("b7ad6b7169203331"));
        h.insert("user-agent", HeaderValue::from_static("grpc-go/1.60"));
        h.insert("tracestate", HeaderValue::from_static("vendor=1"));
        h.insert("x-b3-sampled", HeaderValue::from_static("1"));
        never_index_unique_values(&mut h);
        for name in ["x-request-id", "traceparent", "x-b3-spanid"] {
            assert!(h[name].is_sensitive(), "{name}");
        }
        for name in ["user-agent", "tracestate", "x-b3-sampled"] {
            assert!(!h[name].is_sensitive(), "{name}");
        }
    }
}
