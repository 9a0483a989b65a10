//! A DestinationRule's `loadBalancer` → a cluster's `lb_policy` and `lb_config`, built the way
//! istiod builds them.
//!
//! Which settings a cluster (host, port, subset) gets is istiod's merge:
//! - a policy's `portLevelSettings` entry for the cluster's port replaces that policy's
//!   top-level settings whole (a port-level entry without `loadBalancer` means the default, not
//!   the top level's);
//! - a subset's policy, resolved for the port the same way, overrides the rule's: its
//!   `loadBalancer` if it has one, or whatever its port-level entry says if that matches.
//!
//! Then the policy: `ROUND_ROBIN`, `LEAST_REQUEST` (and `LEAST_CONN`, Istio's deprecated
//! alias), `RANDOM`; none at all is istiod's default, `LEAST_REQUEST`. `PASSTHROUGH` makes an
//! `ORIGINAL_DST` cluster with `CLUSTER_PROVIDED` and no endpoints of its own. A
//! `consistentHash` overrides the policy with `MAGLEV` or `RING_HASH` (the hash key itself goes
//! on the routes). A warmup becomes the slow-start window of the round-robin or least-request
//! balancer; the random and hash balancers have none.

use crate::model::{
    DestinationRule, LoadBalancerSettings, SimpleLb, Subset, TrafficPolicy, WarmupConfiguration,
};
use std::time::Duration;
use xds_protos::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy, LeastRequestLbConfig, MaglevLbConfig,
    RingHashLbConfig, RoundRobinLbConfig, SlowStartConfig,
};
use xds_protos::pb::envoy::config::cluster::v3::Cluster;
use xds_protos::pb::envoy::config::core::v3::RuntimeDouble;
use xds_protos::pb::envoy::r#type::v3::Percent;
use xds_protos::pb::google::protobuf::UInt64Value;

/// Envoy's (and Istio's) ring size when none is given.
pub const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;

/// istiod's slow-start defaults: a linear ramp (aggression 1) from 10% of the weight (Envoy's
/// own default minimum).
const DEFAULT_AGGRESSION: f64 = 1.0;
const DEFAULT_MIN_WEIGHT_PERCENT: f64 = 10.0;

/// The runtime key of the aggression. Envoy requires one; istiod gives one no runtime layer
/// defines, so the configured value is the one in force, and so does weft.
const AGGRESSION_RUNTIME_KEY: &str = "(";

/// The load-balancer settings in force for the cluster of `port` (and `subset`, if any).
pub fn settings_for<'a>(
    rule: Option<&'a DestinationRule>,
    subset: Option<&'a Subset>,
    port: u32,
) -> Option<&'a LoadBalancerSettings> {
    let rule_level = resolve(rule.and_then(|r| r.traffic_policy.as_ref()), port);
    if let Some(policy) = subset.and_then(|s| s.traffic_policy.as_ref()) {
        let subset_level = resolve(Some(policy), port);
        if subset_level.port_level || subset_level.lb.is_some() {
            return subset_level.lb;
        }
    }
    rule_level.lb
}

struct Resolved<'a> {
    lb: Option<&'a LoadBalancerSettings>,
    /// A port-level entry matched: its settings replace the policy's whole.
    port_level: bool,
}

fn resolve(policy: Option<&TrafficPolicy>, port: u32) -> Resolved<'_> {
    let Some(policy) = policy else {
        return Resolved {
            lb: None,
            port_level: false,
        };
    };
    match policy
        .port_level_settings
        .iter()
        .find(|p| p.port.is_some_and(|p| p.number == port))
    {
        Some(entry) => Resolved {
            lb: entry.load_balancer.as_ref(),
            port_level: true,
        },
        None => Resolved {
            lb: policy.load_balancer.as_ref(),
            port_level: false,
        },
    }
}

/// Sets the cluster's balancer from `lb` (`None`: istiod's default).
pub fn apply(c: &mut Cluster, lb: Option<&LoadBalancerSettings>) {
    c.lb_config = None;
    if is_original_dst(c) {
        // The destination is the connection's own; nothing to balance.
        c.lb_policy = LbPolicy::ClusterProvided as i32;
        return;
    }
    let simple = lb.and_then(|lb| lb.simple);
    match simple {
        Some(SimpleLb::Random) => c.lb_policy = LbPolicy::Random as i32,
        Some(SimpleLb::RoundRobin) => {
            c.lb_policy = LbPolicy::RoundRobin as i32;
            if let Some(slow_start) = lb.and_then(slow_start) {
                c.lb_config = Some(LbConfig::RoundRobinLbConfig(RoundRobinLbConfig {
                    slow_start_config: Some(slow_start),
                }));
            }
        }
        Some(SimpleLb::Passthrough) => {
            c.lb_policy = LbPolicy::ClusterProvided as i32;
            c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32,
            ));
            c.load_assignment = None;
            c.eds_cluster_config = None;
        }
        Some(SimpleLb::LeastConn | SimpleLb::LeastRequest | SimpleLb::Unspecified) | None => {
            c.lb_policy = LbPolicy::LeastRequest as i32;
            if let Some(slow_start) = lb.and_then(slow_start) {
                c.lb_config = Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
                    slow_start_config: Some(slow_start),
                    ..Default::default()
                }));
            }
        }
    }
    if let Some(hash) = lb.and_then(|lb| lb.consistent_hash.as_ref()) {
        if let Some(maglev) = &hash.maglev {
            c.lb_policy = LbPolicy::Maglev as i32;
            c.lb_config = maglev.table_size.filter(|size| *size > 0).map(|size| {
                LbConfig::MaglevLbConfig(MaglevLbConfig {
                    table_size: Some(UInt64Value { value: size }),
                })
            });
        } else {
            c.lb_policy = LbPolicy::RingHash as i32;
            // ringHash.minimumRingSize, else the deprecated top-level one, else Istio's 1024.
            let size = match &hash.ring_hash {
                Some(ring) => ring.minimum_ring_size.filter(|s| *s > 0),
                None => Some(
                    hash.minimum_ring_size
                        .filter(|s| *s > 0)
                        .unwrap_or(DEFAULT_MINIMUM_RING_SIZE),
                ),
            };
            c.lb_config = size.map(|size| {
                LbConfig::RingHashLbConfig(RingHashLbConfig {
                    minimum_ring_size: Some(UInt64Value { value: size }),
                    ..Default::default()
                })
            });
        }
    }
}

fn is_original_dst(c: &Cluster) -> bool {
    c.cluster_discovery_type
        == Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        ))
}

/// `warmup` (with istiod's defaults), else the deprecated `warmupDurationSecs` (the window
/// alone).
fn slow_start(lb: &LoadBalancerSettings) -> Option<SlowStartConfig> {
    match (&lb.warmup, lb.warmup_duration_secs) {
        (Some(warmup), _) => Some(from_warmup(warmup)),
        (None, Some(window)) => Some(SlowStartConfig {
            slow_start_window: Some(super::pb_duration(window)),
            ..Default::default()
        }),
        (None, None) => None,
    }
}

fn from_warmup(warmup: &WarmupConfiguration) -> SlowStartConfig {
    SlowStartConfig {
        slow_start_window: Some(super::pb_duration(
            warmup.duration.unwrap_or(Duration::ZERO),
        )),
        aggression: Some(RuntimeDouble {
            default_value: warmup.aggression.unwrap_or(DEFAULT_AGGRESSION),
            runtime_key: AGGRESSION_RUNTIME_KEY.to_string(),
        }),
        min_weight_percent: Some(Percent {
            value: warmup.minimum_percent.unwrap_or(DEFAULT_MIN_WEIGHT_PERCENT),
        }),
    }
}

#[cfg(test)]
mod tests;
