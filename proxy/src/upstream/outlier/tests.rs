use super::*;
use crate::config::{
    ClusterConfig, Discovery, Endpoint, EndpointAddress, Finite, UpstreamProtocol,
};
use crate::upstream::Cluster;

fn detection() -> OutlierDetection {
    OutlierDetection {
        consecutive_5xx: 3,
        enforcing_consecutive_5xx: 100,
        consecutive_gateway_failure: 5,
        enforcing_consecutive_gateway_failure: 0,
        split_external_local_origin_errors: false,
        consecutive_local_origin_failure: 5,
        enforcing_consecutive_local_origin_failure: 100,
        interval: Duration::from_secs(10),
        base_ejection_time: Duration::from_secs(30),
        max_ejection_time: Duration::from_secs(300),
        max_ejection_time_jitter: Duration::ZERO,
        max_ejection_percent: 100,
    }
}

fn config(od: OutlierDetection) -> Arc<ClusterConfig> {
    Arc::new(ClusterConfig {
        name: "c".into(),
        discovery: Discovery::Eds,
        lb_policy: LbPolicy::RoundRobin { slow_start: None },
        // Istio's default with outlier detection (minHealthPercent 0): no panic mode.
        healthy_panic_threshold: Finite::new(0.0).expect("finite"),
        protocol: UpstreamProtocol::Http1,
        connect_timeout: Duration::from_secs(1),
        eds_service_name: "c".into(),
        static_endpoints: Vec::new(),
        circuit_breakers: Default::default(),
        connection: Default::default(),
        outlier_detection: Some(od),
    })
}

fn endpoints(n: u8) -> Vec<Endpoint> {
    (1..=n)
        .map(|i| Endpoint {
            address: EndpointAddress::Socket(std::net::SocketAddr::from(([10, 0, 0, i], 80))),
            weight: 1,
            healthy: true,
            workload: None,
        })
        .collect()
}

/// Lets the detector task run (the clock is paused and does not move while tasks yield).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn picks_of(c: &Cluster, n: usize) -> Vec<usize> {
    let mut counts = vec![0; c.hosts.len()];
    for _ in 0..n {
        let h = c.pick(None).expect("a host");
        counts[c.hosts.iter().position(|x| Arc::ptr_eq(x, h)).unwrap()] += 1;
    }
    counts
}

#[tokio::test(start_paused = true)]
async fn consecutive_5xx_ejects_for_base_time_times_ejections() {
    let c = Cluster::build(config(detection()), &endpoints(3), None);
    let bad = c.hosts[0].clone();
    for _ in 0..2 {
        c.report(&bad, TryOutcome::Status(500));
    }
    // A success in between starts the run over.
    c.report(&bad, TryOutcome::Status(200));
    for _ in 0..2 {
        c.report(&bad, TryOutcome::Status(500));
    }
    settle().await;
    assert!(!bad.is_ejected());
    c.report(&bad, TryOutcome::Status(503));
    settle().await;
    assert!(bad.is_ejected());
    assert_eq!(picks_of(&c, 100)[0], 0, "an ejected host takes no traffic");
    let stats = &c.runtime.stats;
    assert_eq!(stats.ejections_enforced_total.load(Ordering::Relaxed), 1);
    assert_eq!(
        stats
            .ejections_enforced_consecutive_5xx
            .load(Ordering::Relaxed),
        1
    );
    assert_eq!(c.ejected_hosts(), 1);

    // Back after 30 s, at the first sweep past it.
    tokio::time::advance(Duration::from_secs(29)).await;
    settle().await;
    assert!(bad.is_ejected());
    tokio::time::advance(Duration::from_secs(11)).await;
    settle().await;
    assert!(!bad.is_ejected());
    assert!(picks_of(&c, 99)[0] > 0);

    // Ejected again at once: this time for 2 × 30 s.
    for _ in 0..3 {
        c.report(&bad, TryOutcome::LocalFailure);
    }
    settle().await;
    assert!(bad.is_ejected());
    assert_eq!(bad.outlier.ejection().times, 2);
    tokio::time::advance(Duration::from_secs(45)).await;
    settle().await;
    assert!(bad.is_ejected(), "second ejection lasts 60 s");
    tokio::time::advance(Duration::from_secs(20)).await;
    settle().await;
    assert!(!bad.is_ejected());
}

#[tokio::test(start_paused = true)]
async fn max_ejection_percent_bounds_ejections() {
    // Istio's default of 10 %: with three hosts, not even one may go.
    let od = OutlierDetection {
        max_ejection_percent: 10,
        ..detection()
    };
    let c = Cluster::build(config(od), &endpoints(3), None);
    for _ in 0..3 {
        c.report(&c.hosts[0], TryOutcome::Status(500));
    }
    settle().await;
    assert!(!c.hosts[0].is_ejected());
    assert_eq!(
        c.runtime.stats.ejections_overflow.load(Ordering::Relaxed),
        1
    );

    // 50 %: one of two, not both.
    let od = OutlierDetection {
        max_ejection_percent: 50,
        ..detection()
    };
    let c = Cluster::build(config(od), &endpoints(2), None);
    for h in c.hosts.clone() {
        for _ in 0..3 {
            c.report(&h, TryOutcome::Status(502));
        }
        settle().await;
    }
    assert_eq!(c.ejected_hosts(), 1);
    assert_eq!(
        c.runtime.stats.ejections_overflow.load(Ordering::Relaxed),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn gateway_failures_and_split_local_origin_errors() {
    // Gateway errors enforced, 5xx not: a run of 500s never ejects, 502/503/504 do.
    let od = OutlierDetection {
        enforcing_consecutive_5xx: 0,
        consecutive_gateway_failure: 2,
        enforcing_consecutive_gateway_failure: 100,
        ..detection()
    };
    let c = Cluster::build(config(od), &endpoints(2), None);
    for _ in 0..10 {
        c.report(&c.hosts[0], TryOutcome::Status(500));
    }
    settle().await;
    assert!(!c.hosts[0].is_ejected());
    assert!(
        c.runtime
            .stats
            .ejections_detected_consecutive_5xx
            .load(Ordering::Relaxed)
            >= 1
    );
    c.report(&c.hosts[0], TryOutcome::Status(504));
    c.report(&c.hosts[0], TryOutcome::LocalTimeout);
    settle().await;
    assert!(c.hosts[0].is_ejected());

    // Split: local failures count apart, and a response (even a 5xx) clears them.
    let od = OutlierDetection {
        split_external_local_origin_errors: true,
        consecutive_local_origin_failure: 2,
        ..detection()
    };
    let c = Cluster::build(config(od), &endpoints(2), None);
    let h = c.hosts[0].clone();
    c.report(&h, TryOutcome::LocalFailure);
    c.report(&h, TryOutcome::Status(500));
    c.report(&h, TryOutcome::LocalFailure);
    settle().await;
    assert!(!h.is_ejected());
    c.report(&h, TryOutcome::LocalFailure);
    settle().await;
    assert!(h.is_ejected());
    assert_eq!(
        c.runtime
            .stats
            .ejections_enforced_consecutive_local_origin_failure
            .load(Ordering::Relaxed),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn ejections_survive_a_reload_with_the_same_settings_and_end_without_detection() {
    let first = Cluster::build(config(detection()), &endpoints(3), None);
    for _ in 0..3 {
        first.report(&first.hosts[1], TryOutcome::Status(500));
    }
    settle().await;
    assert!(first.hosts[1].is_ejected());
    let second = Cluster::build(config(detection()), &endpoints(3), Some(&first));
    assert!(Arc::ptr_eq(
        first.outlier.as_ref().unwrap(),
        second.outlier.as_ref().unwrap()
    ));
    assert!(second.hosts[1].is_ejected());
    assert_eq!(picks_of(&second, 60)[1], 0);
    // The detector now serves the new build: its hosts come back on time.
    tokio::time::advance(Duration::from_secs(40)).await;
    settle().await;
    assert!(!second.hosts[1].is_ejected());
    assert!(picks_of(&second, 60)[1] > 0);

    for _ in 0..3 {
        second.report(&second.hosts[2], TryOutcome::Status(500));
    }
    settle().await;
    assert!(second.hosts[2].is_ejected());
    let mut off = (*config(detection())).clone();
    off.outlier_detection = None;
    let third = Cluster::build(Arc::new(off), &endpoints(3), Some(&second));
    assert!(!third.hosts[2].is_ejected());
    assert!(third.outlier.is_none());
    assert!(picks_of(&third, 60)[2] > 0);
}

#[tokio::test(start_paused = true)]
async fn below_the_panic_threshold_ejected_hosts_take_traffic_again() {
    let mut cfg = (*config(detection())).clone();
    cfg.healthy_panic_threshold = Finite::new(50.0).expect("finite");
    let c = Cluster::build(Arc::new(cfg), &endpoints(3), None);
    for _ in 0..3 {
        c.report(&c.hosts[0], TryOutcome::Status(500));
    }
    settle().await;
    // Two of three available (67%): the ejected host is avoided.
    assert_eq!(picks_of(&c, 60)[0], 0);
    for _ in 0..3 {
        c.report(&c.hosts[1], TryOutcome::Status(500));
    }
    settle().await;
    assert_eq!(c.ejected_hosts(), 2);
    // One of three (33%) is below 50%: panic mode balances over every host, as Envoy does.
    let counts = picks_of(&c, 60);
    assert!(counts.iter().all(|n| *n > 0), "{counts:?}");
}
