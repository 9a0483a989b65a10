//! Queries and answers as bytes on the wire.

use super::*;

#[test]
fn a_query_asks_one_question_with_recursion() {
    let q = encode_query(0xbeef, "svc.weft.test.", TYPE_A).unwrap();
    let want: &[u8] = &[
        0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, // header
        3, b's', b'v', b'c', 4, b'w', b'e', b'f', b't', 4, b't', b'e', b's', b't', 0, // name
        0, 1, 0, 1, // A, IN
    ];
    assert_eq!(q, want);
    for bad in ["", ".", "a..b", &"x".repeat(64), "ünïcode"] {
        assert!(encode_query(1, bad, TYPE_A).is_err(), "{bad:?}");
    }
}

/// The answer to `encode_query(7, "svc.test", qtype)` with `rcode` and the records given
/// (each its type and data), names compressed to the question's.
fn answer(rcode: u8, records: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![
        0,
        7,
        0x81,
        0x80 | rcode,
        0,
        1,
        0,
        records.len() as u8,
        0,
        0,
        0,
        0,
    ];
    m.extend_from_slice(&[
        3, b's', b'v', b'c', 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1,
    ]);
    for (rtype, data) in records {
        m.extend_from_slice(&[0xc0, 12]);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 30, 0, data.len() as u8]);
        m.extend_from_slice(data);
    }
    m
}

#[test]
fn the_addresses_of_the_asked_type_are_read_past_cnames() {
    let cname: &[u8] = &[5, b'o', b't', b'h', b'e', b'r', 0xc0, 16];
    let msg = answer(
        0,
        &[
            (5, cname),
            (TYPE_A, &[127, 0, 0, 2]),
            (TYPE_A, &[10, 1, 2, 3]),
        ],
    );
    assert_eq!(
        decode_answer(&msg, 7, TYPE_A).unwrap(),
        Answer::Addresses(vec![
            IpAddr::from([127, 0, 0, 2]),
            IpAddr::from([10, 1, 2, 3])
        ])
    );
    let v6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let msg = answer(0, &[(TYPE_AAAA, &v6)]);
    assert_eq!(
        decode_answer(&msg, 7, TYPE_AAAA).unwrap(),
        Answer::Addresses(vec![IpAddr::from(v6)])
    );
    // A record of another type than asked is not an address of this answer.
    assert_eq!(
        decode_answer(&msg, 7, TYPE_A).unwrap(),
        Answer::Addresses(vec![])
    );
}

#[test]
fn error_codes_tell_a_missing_name_from_a_failed_resolver() {
    assert_eq!(
        decode_answer(&answer(3, &[]), 7, TYPE_A).unwrap(),
        Answer::NoSuchName
    );
    assert!(matches!(
        decode_answer(&answer(2, &[]), 7, TYPE_A),
        Err(WireError::Rcode(2))
    ));
    let mut truncated = answer(0, &[]);
    truncated[2] |= 0x02;
    assert!(matches!(
        decode_answer(&truncated, 7, TYPE_A),
        Err(WireError::Truncated)
    ));
}

#[test]
fn datagrams_that_are_not_this_answer_are_refused() {
    let good = answer(0, &[(TYPE_A, &[127, 0, 0, 2])]);
    // Another query's id.
    assert!(matches!(
        decode_answer(&good, 8, TYPE_A),
        Err(WireError::Malformed)
    ));
    // A query, not a response.
    let mut query = good.clone();
    query[2] &= 0x7f;
    assert!(matches!(
        decode_answer(&query, 7, TYPE_A),
        Err(WireError::Malformed)
    ));
    // Cut anywhere: never a panic, never an address read past the end.
    for len in 0..good.len() {
        assert!(
            decode_answer(&good[..len], 7, TYPE_A).is_err(),
            "cut at {len}"
        );
    }
    // A record claiming more data than there is.
    let mut long = good.clone();
    let at = long.len() - 5;
    long[at] = 200;
    assert!(decode_answer(&long, 7, TYPE_A).is_err());
}

#[tokio::test]
async fn an_ip_literal_is_its_own_address_and_asks_no_server() {
    // Nothing listens at port 9 of this address: a query would fail.
    let r = UdpResolver::new("127.0.0.1:9".parse().unwrap());
    assert_eq!(
        r.resolve("127.0.0.7", 80).await,
        Resolution::Found(vec!["127.0.0.7:80".parse().unwrap()])
    );
}
