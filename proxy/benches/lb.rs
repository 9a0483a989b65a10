//! `pick()` of each balancer over 100 hosts, equal and unequal weights. Picking must stay
//! lock- and allocation-free; these figures show what a pick costs on the request path.
//!
//! Run with `cargo bench -p weft-proxy --bench lb`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use weft_proxy::config::{
    EndpointAddress, Finite, LbPolicy, LeastRequest, RingHash, RingHashFunction, UpstreamProtocol,
};
use weft_proxy::upstream::lb::{Balancer, LbState};
use weft_proxy::upstream::Host;

const HOSTS: usize = 100;

fn hosts(weighted: bool) -> Vec<Arc<Host>> {
    (0..HOSTS)
        .map(|i| {
            let addr = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 8080));
            let weight = if weighted { 1 + (i % 7) as u32 } else { 1 };
            Host::new(
                EndpointAddress::Socket(addr),
                weight,
                true,
                UpstreamProtocol::Http1,
            )
        })
        .collect()
}

fn finite(v: f64) -> Finite {
    Finite::new(v).expect("finite")
}

fn policies() -> Vec<(&'static str, LbPolicy)> {
    vec![
        ("round_robin", LbPolicy::RoundRobin { slow_start: None }),
        (
            "least_request",
            LbPolicy::LeastRequest(LeastRequest {
                choice_count: 2,
                active_request_bias: finite(1.0),
                slow_start: None,
            }),
        ),
        ("random", LbPolicy::Random),
        (
            "ring_hash",
            LbPolicy::RingHash(RingHash {
                minimum_ring_size: 1024,
                maximum_ring_size: 8 << 20,
                hash_function: RingHashFunction::XxHash,
            }),
        ),
        ("maglev", LbPolicy::Maglev { table_size: 65537 }),
    ]
}

fn pick(c: &mut Criterion) {
    for weighted in [false, true] {
        let hs = hosts(weighted);
        // Some load, so least request has differences to compare.
        let _load: Vec<_> = hs.iter().step_by(3).map(|h| h.start_request()).collect();
        for (name, policy) in policies() {
            let balancer = Balancer::build(&policy, 50.0, &hs);
            let state = LbState::default();
            let label = format!(
                "pick/{name}/{}",
                if weighted { "weighted" } else { "equal" }
            );
            let mut key = 0u64;
            c.bench_function(&label, |b| {
                b.iter(|| {
                    key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    black_box(balancer.pick(&state, Some(black_box(key)))).map(|h| h.weight)
                })
            });
        }
    }
}

criterion_group!(benches, pick);
criterion_main!(benches);
