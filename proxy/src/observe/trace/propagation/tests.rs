use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

#[test]
fn a_valid_traceparent_gives_trace_parent_and_decision() {
    let i = extract(&headers(&[(
        "traceparent",
        &format!("00-{TRACE}-{SPAN}-01"),
    )]));
    let p = i.parent.unwrap();
    assert_eq!(p.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
    assert_eq!(p.span_id, 0x00f067aa0ba902b7);
    assert_eq!(p.format, Format::W3c);
    assert_eq!(i.sampled, Some(true));
    let i = extract(&headers(&[(
        "traceparent",
        &format!("00-{TRACE}-{SPAN}-00"),
    )]));
    assert_eq!(i.sampled, Some(false));
}

#[test]
fn malformed_traceparents_count_as_absent() {
    for bad in [
        format!("00-{}-{SPAN}-01", "0".repeat(32)),
        format!("00-{TRACE}-{}-01", "0".repeat(16)),
        format!("ff-{TRACE}-{SPAN}-01"),
        format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
        format!("00-{TRACE}-{SPAN}-01-extra"),
        format!("00_{TRACE}-{SPAN}-01"),
        format!("00-{TRACE}-{SPAN}-0"),
        "garbage".to_string(),
    ] {
        assert_eq!(
            extract(&headers(&[("traceparent", &bad)])),
            Incoming::default(),
            "{bad}"
        );
    }
}

#[test]
fn a_later_version_may_carry_more_fields() {
    let i = extract(&headers(&[(
        "traceparent",
        &format!("01-{TRACE}-{SPAN}-01-whatever"),
    )]));
    assert!(i.parent.is_some());
}

#[test]
fn b3_single_header_with_and_without_ids() {
    let i = extract(&headers(&[(
        "b3",
        &format!("{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90"),
    )]));
    let p = i.parent.unwrap();
    assert_eq!(p.format, Format::B3Single);
    assert_eq!(i.sampled, Some(true));
    assert_eq!(
        i.b3,
        Some(B3Form {
            single: true,
            short_trace_id: false,
            debug: false
        })
    );
    let i = extract(&headers(&[("b3", "0")]));
    assert_eq!(i.parent, None);
    assert_eq!(i.sampled, Some(false));
    let i = extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}"))]));
    assert_eq!(i.sampled, None, "no sampling state: the proxy decides");
    let i = extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}-d"))]));
    assert_eq!(i.sampled, Some(true));
    assert!(i.b3.unwrap().debug);
    assert_eq!(
        extract(&headers(&[("b3", "nonsense-x")])),
        Incoming::default()
    );
}

#[test]
fn b3_multi_headers_and_64_bit_trace_ids() {
    let i = extract(&headers(&[
        ("x-b3-traceid", "a3ce929d0e0e4736"),
        ("x-b3-spanid", SPAN),
        ("x-b3-sampled", "1"),
    ]));
    let p = i.parent.unwrap();
    assert_eq!(p.trace_id, 0xa3ce929d0e0e4736);
    assert_eq!(p.format, Format::B3Multi);
    assert_eq!(i.sampled, Some(true));
    assert!(i.b3.unwrap().short_trace_id);
    let i = extract(&headers(&[("x-b3-flags", "1")]));
    assert_eq!(i.sampled, Some(true), "debug implies sampled");
}

#[test]
fn w3c_wins_over_b3() {
    let i = extract(&headers(&[
        ("traceparent", &format!("00-{TRACE}-{SPAN}-00")),
        ("x-b3-traceid", "a3ce929d0e0e4736"),
        ("x-b3-spanid", SPAN),
        ("x-b3-sampled", "1"),
    ]));
    assert_eq!(i.parent.unwrap().format, Format::W3c);
    assert_eq!(i.sampled, Some(false));
    assert!(
        i.b3.is_some(),
        "the B3 headers are still rewritten upstream"
    );
}

#[test]
fn inject_writes_traceparent_and_the_b3_form_that_came_in() {
    let mut h = headers(&[("x-b3-flags", "0")]);
    inject(
        &mut h,
        &Outgoing {
            trace_id: 0xa3ce929d0e0e4736,
            span_id: 0x1,
            parent_span_id: Some(0x2),
            sampled: true,
            b3: Some(B3Form {
                single: false,
                short_trace_id: true,
                debug: false,
            }),
        },
    );
    assert_eq!(
        h["traceparent"],
        "00-0000000000000000a3ce929d0e0e4736-0000000000000001-01"
    );
    assert_eq!(h["x-b3-traceid"], "a3ce929d0e0e4736");
    assert_eq!(h["x-b3-spanid"], "0000000000000001");
    assert_eq!(h["x-b3-parentspanid"], "0000000000000002");
    assert_eq!(h["x-b3-sampled"], "1");

    let mut h = HeaderMap::new();
    inject(
        &mut h,
        &Outgoing {
            trace_id: 0xabc,
            span_id: 0x1,
            parent_span_id: None,
            sampled: false,
            b3: Some(B3Form {
                single: true,
                short_trace_id: false,
                debug: false,
            }),
        },
    );
    assert_eq!(
        h["b3"],
        "00000000000000000000000000000abc-0000000000000001-0"
    );
    assert!(h["traceparent"].to_str().unwrap().ends_with("-00"));
}

#[test]
fn what_is_injected_extracts_back() {
    let mut h = HeaderMap::new();
    let out = Outgoing {
        trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
        span_id: 0x00f067aa0ba902b7,
        parent_span_id: None,
        sampled: true,
        b3: None,
    };
    inject(&mut h, &out);
    let i = extract(&h);
    assert_eq!(i.parent.unwrap().trace_id, out.trace_id);
    assert_eq!(i.parent.unwrap().span_id, out.span_id);
    assert_eq!(i.sampled, Some(true));
}
