//! DestinationRule checks.

use super::common::*;
use super::http_policies::check_duration;
use super::Findings;
use crate::model::destination_rule::*;
use crate::model::path::FieldPath;
use std::collections::BTreeSet;

pub(super) fn check(dr: &DestinationRule, f: &mut Findings) {
    let spec = FieldPath::spec();
    check_host(f, &spec.key("host"), &dr.host);
    check_export_to(f, &spec.key("exportTo"), &dr.export_to);
    if let Some(tp) = &dr.traffic_policy {
        check_traffic_policy(f, &spec.key("trafficPolicy"), tp);
    }
    let mut names = BTreeSet::new();
    for (i, subset) in dr.subsets.iter().enumerate() {
        let p = spec.key("subsets").index(i);
        if subset.name.is_empty() {
            f.error(&p.key("name"), "a subset needs a name");
        } else if !is_dns_label(&subset.name) {
            f.error(
                &p.key("name"),
                format!(
                    "subset name {:?} must be a DNS label: lower-case letters, digits and '-', \
                     at most 63",
                    subset.name
                ),
            );
        } else if !names.insert(subset.name.as_str()) {
            f.error(
                &p.key("name"),
                format!("subset {:?} is defined twice", subset.name),
            );
        }
        check_label_keys(f, &p.key("labels"), &subset.labels);
        if let Some(tp) = &subset.traffic_policy {
            check_traffic_policy(f, &p.key("trafficPolicy"), tp);
        }
    }
    if let Some(selector) = &dr.workload_selector {
        check_label_keys(
            f,
            &spec.key("workloadSelector").key("matchLabels"),
            &selector.labels,
        );
    }
}

fn check_traffic_policy(f: &mut Findings, p: &FieldPath, tp: &TrafficPolicy) {
    if tp.load_balancer.is_none()
        && tp.connection_pool.is_none()
        && tp.outlier_detection.is_none()
        && tp.tls.is_none()
        && tp.port_level_settings.is_empty()
        && tp.tunnel.is_none()
        && tp.proxy_protocol.is_none()
        && tp.retry_budget.is_none()
    {
        f.error(p, "a trafficPolicy needs at least one setting");
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        f.error(
            &p.key("proxyProtocol"),
            "tunnel and proxyProtocol cannot be set together",
        );
    }
    check_port_level(
        f,
        p,
        &tp.load_balancer,
        &tp.connection_pool,
        &tp.outlier_detection,
        &tp.tls,
    );
    let mut ports = BTreeSet::new();
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let pp = p.key("portLevelSettings").index(i);
        match &pl.port {
            None => f.error(&pp.key("port"), "port-level settings need a port"),
            Some(port) => {
                if pl.load_balancer.is_none()
                    && pl.connection_pool.is_none()
                    && pl.outlier_detection.is_none()
                    && pl.tls.is_none()
                {
                    f.error(&pp, "port-level settings need at least one setting");
                }
                check_port(f, &pp.key("port").key("number"), port.number);
                if !ports.insert(port.number) {
                    f.error(
                        &pp.key("port"),
                        format!("port {} has settings twice", port.number),
                    );
                }
            }
        }
        check_port_level(
            f,
            &pp,
            &pl.load_balancer,
            &pl.connection_pool,
            &pl.outlier_detection,
            &pl.tls,
        );
    }
    if let Some(tunnel) = &tp.tunnel {
        let tp = p.key("tunnel");
        if let Some(protocol) = &tunnel.protocol {
            if protocol != "CONNECT" && protocol != "POST" {
                f.error(
                    &tp.key("protocol"),
                    format!("tunnel protocol {protocol:?} is not CONNECT or POST"),
                );
            }
        }
        if tunnel.target_host.is_empty() {
            f.error(&tp.key("targetHost"), "targetHost is required");
        }
        check_port(f, &tp.key("targetPort"), tunnel.target_port);
    }
    if let Some(budget) = &tp.retry_budget {
        if let Some(percent) = budget.percent {
            check_percent_value(f, &p.key("retryBudget").key("percent"), percent);
        }
    }
}

fn check_port_level(
    f: &mut Findings,
    p: &FieldPath,
    lb: &Option<LoadBalancerSettings>,
    pool: &Option<ConnectionPoolSettings>,
    outlier: &Option<OutlierDetection>,
    tls: &Option<ClientTlsSettings>,
) {
    if let Some(lb) = lb {
        check_load_balancer(f, &p.key("loadBalancer"), lb);
    }
    if let Some(pool) = pool {
        let pp = p.key("connectionPool");
        if pool.tcp.is_none() && pool.http.is_none() {
            f.error(&pp, "a connectionPool needs tcp or http settings");
        }
        if let Some(tcp) = &pool.tcp {
            let tp = pp.key("tcp");
            non_negative(f, &tp.key("maxConnections"), tcp.max_connections);
            check_duration(f, &tp.key("connectTimeout"), tcp.connect_timeout);
            check_duration(
                f,
                &tp.key("maxConnectionDuration"),
                tcp.max_connection_duration,
            );
            check_duration(f, &tp.key("idleTimeout"), tcp.idle_timeout);
            if let Some(keepalive) = &tcp.tcp_keepalive {
                let kp = tp.key("tcpKeepalive");
                check_duration(f, &kp.key("time"), keepalive.time);
                check_duration(f, &kp.key("interval"), keepalive.interval);
            }
        }
        if let Some(http) = &pool.http {
            let hp = pp.key("http");
            check_duration(f, &hp.key("idleTimeout"), http.idle_timeout);
            if http.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
                && http.use_client_protocol == Some(true)
            {
                f.error(
                    &hp.key("useClientProtocol"),
                    "useClientProtocol cannot be true when h2UpgradePolicy is UPGRADE",
                );
            }
            non_negative(
                f,
                &hp.key("http1MaxPendingRequests"),
                http.http1_max_pending_requests,
            );
            non_negative(f, &hp.key("http2MaxRequests"), http.http2_max_requests);
            non_negative(
                f,
                &hp.key("maxRequestsPerConnection"),
                http.max_requests_per_connection,
            );
            non_negative(f, &hp.key("maxRetries"), http.max_retries);
            non_negative(
                f,
                &hp.key("maxConcurrentStreams"),
                http.max_concurrent_streams,
            );
        }
    }
    if let Some(o) = outlier {
        let op = p.key("outlierDetection");
        check_duration(f, &op.key("interval"), o.interval);
        check_duration(f, &op.key("baseEjectionTime"), o.base_ejection_time);
        if o.consecutive_errors.is_some() {
            f.warning(
                &op.key("consecutiveErrors"),
                "deprecated: use consecutive5xxErrors or consecutiveGatewayErrors",
            );
        }
        if o.split_external_local_origin_errors != Some(true)
            && o.consecutive_local_origin_failures.is_some_and(|n| n > 0)
        {
            f.error(
                &op.key("consecutiveLocalOriginFailures"),
                "needs splitExternalLocalOriginErrors: true, or local-origin failures are not \
                 counted apart",
            );
        }
        if let Some(v) = o.max_ejection_percent {
            check_percent_value(f, &op.key("maxEjectionPercent"), f64::from(v));
        }
        if let Some(v) = o.min_health_percent {
            check_percent_value(f, &op.key("minHealthPercent"), f64::from(v));
        }
        non_negative(f, &op.key("consecutiveErrors"), o.consecutive_errors);
    }
    if let Some(tls) = tls {
        if tls.mode == Some(TlsMode::Mutual)
            && tls.credential_name.is_none()
            && (tls.client_certificate.is_none() || tls.private_key.is_none())
        {
            f.error(
                &p.key("tls"),
                "MUTUAL TLS needs clientCertificate and privateKey (or credentialName)",
            );
        }
    }
}

fn check_load_balancer(f: &mut Findings, p: &FieldPath, lb: &LoadBalancerSettings) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        f.error(p, "set either simple or consistentHash, not both");
    }
    if let Some(ch) = &lb.consistent_hash {
        let cp = p.key("consistentHash");
        let keys = [
            ch.http_header_name.is_some(),
            ch.http_cookie.is_some(),
            ch.use_source_ip.is_some(),
            ch.http_query_parameter_name.is_some(),
        ];
        if keys.iter().filter(|k| **k).count() != 1 {
            f.error(
                &cp,
                "consistentHash needs exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName",
            );
        }
        if ch.ring_hash.is_some() && ch.maglev.is_some() {
            f.error(&cp, "set either ringHash or maglev, not both");
        }
        if let Some(size) = ch.minimum_ring_size {
            let mp = cp.key("minimumRingSize");
            if ch.ring_hash.is_some() || ch.maglev.is_some() {
                f.error(
                    &mp,
                    "set either the deprecated minimumRingSize or ringHash/maglev, not both",
                );
            } else {
                f.warning(
                    &mp,
                    format!("deprecated: write ringHash: {{minimumRingSize: {size}}}"),
                );
            }
        }
        if let Some(maglev) = &ch.maglev {
            let tp = cp.key("maglev").key("tableSize");
            match maglev.table_size {
                None | Some(0) => f.error(&tp, "maglev needs a tableSize"),
                Some(size) if size >= MAGLEV_TABLE_LIMIT => f.error(
                    &tp,
                    format!("tableSize {size} must be below {MAGLEV_TABLE_LIMIT}"),
                ),
                Some(size) if !is_prime(size) => f.error(
                    &tp,
                    format!("tableSize {size} must be a prime number (such as 65537)"),
                ),
                Some(_) => {}
            }
        }
        if let Some(cookie) = &ch.http_cookie {
            if cookie.name.is_empty() {
                f.error(
                    &cp.key("httpCookie").key("name"),
                    "the cookie name is required",
                );
            }
        }
    }
    if let Some(locality) = &lb.locality_lb_setting {
        let lp = p.key("localityLbSetting");
        if !locality.distribute.is_empty() && !locality.failover.is_empty() {
            f.error(&lp, "set either distribute or failover, not both");
        }
        for (i, d) in locality.distribute.iter().enumerate() {
            let sum: u64 = d.to.values().map(|w| u64::from(*w)).sum();
            if sum != 100 {
                f.error(
                    &lp.key("distribute").index(i).key("to"),
                    format!("weights sum to {sum}, they must sum to 100"),
                );
            }
        }
    }
    check_duration(f, &p.key("warmupDurationSecs"), lb.warmup_duration_secs);
    if let Some(warmup) = &lb.warmup {
        let wp = p.key("warmup");
        if warmup.duration.is_none() {
            f.error(&wp.key("duration"), "a warmup needs a duration");
        }
        check_duration(f, &wp.key("duration"), warmup.duration);
        if lb.warmup_duration_secs.is_some() {
            f.warning(
                &p.key("warmupDurationSecs"),
                "ignored: warmup is set and takes precedence",
            );
        }
        if let Some(v) = warmup.minimum_percent {
            check_percent_value(f, &wp.key("minimumPercent"), v);
        }
        if let Some(v) = warmup.aggression {
            if v < 1.0 {
                f.error(&wp.key("aggression"), format!("aggression {v} is below 1"));
            }
        }
    }
}

/// Envoy's (and Istio's) bound on a Maglev lookup table.
const MAGLEV_TABLE_LIMIT: u64 = 5_000_011;

/// Trial division is enough for numbers below [`MAGLEV_TABLE_LIMIT`].
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// A Kubernetes DNS-1123 label, which Istio requires of subset names.
fn is_dns_label(name: &str) -> bool {
    name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn non_negative(f: &mut Findings, p: &FieldPath, v: Option<i32>) {
    if let Some(v) = v.filter(|v| *v < 0) {
        f.error(p, format!("{v} is negative"));
    }
}
