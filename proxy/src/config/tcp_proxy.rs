//! `envoy.filters.network.tcp_proxy` to what the TCP relay needs: which cluster (or weighted
//! clusters) a connection goes to, and when an idle connection is closed. Istio sends one for
//! every TCP port, for `PassthroughCluster`/`BlackHoleCluster`, and on the inbound side.
//!
//! Fields that change where or how bytes flow and that the relay does not carry out are refused
//! by name (tunneling, metadata matching, hash policies, on-demand clusters…); access logging
//! and connect-attempt settings the relay honours are read.

use std::sync::Arc;
use std::time::Duration;

use xds_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::ClusterSpecifier, TcpProxy,
};

use super::access_log::access_logs;
use super::error::{duration, refuse_set, AtField, FieldError};
use super::log_format::LogFormat;

pub const TCP_PROXY_NAME: &str = "envoy.filters.network.tcp_proxy";

/// Envoy's default `idle_timeout` for TCP proxying: one hour.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq)]
pub struct TcpProxyConfig {
    pub stat_prefix: String,
    /// One line per connection when it closes, per logger.
    pub access_log: Arc<[LogFormat]>,
    pub target: TcpTarget,
    /// Closed after this long with no bytes either way; `None` when disabled with 0.
    pub idle_timeout: Option<Duration>,
    /// Connection attempts to upstream hosts before giving up (Envoy's default 1).
    pub max_connect_attempts: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TcpTarget {
    Cluster(Arc<str>),
    /// Clusters with their weights, in order; the total is positive.
    Weighted {
        clusters: Vec<(Arc<str>, u32)>,
        total: u64,
    },
}

impl TcpTarget {
    /// The cluster for a connection, given a number uniform in `0..total` (ignored for a single
    /// cluster): each cluster takes the share its weight gives it.
    pub fn pick(&self, roll: u64) -> &Arc<str> {
        match self {
            TcpTarget::Cluster(name) => name,
            TcpTarget::Weighted { clusters, .. } => {
                let mut left = roll;
                for (name, weight) in clusters {
                    if left < u64::from(*weight) {
                        return name;
                    }
                    left -= u64::from(*weight);
                }
                // Unreachable for roll < total; the last cluster is the safe answer.
                &clusters[clusters.len() - 1].0
            }
        }
    }

    pub fn total(&self) -> u64 {
        match self {
            TcpTarget::Cluster(_) => 1,
            TcpTarget::Weighted { total, .. } => *total,
        }
    }

    pub fn clusters(&self) -> Vec<&Arc<str>> {
        match self {
            TcpTarget::Cluster(name) => vec![name],
            TcpTarget::Weighted { clusters, .. } => clusters.iter().map(|(n, _)| n).collect(),
        }
    }
}

pub(crate) fn tcp_proxy(t: &TcpProxy) -> Result<TcpProxyConfig, FieldError> {
    // Each of these changes where or how bytes go; ignoring one would misroute silently.
    #[allow(deprecated)] // The old spellings of the log options are still on the wire.
    let unsupported = [
        ("on_demand", t.on_demand.is_some()),
        ("metadata_match", t.metadata_match.is_some()),
        (
            "downstream_idle_timeout",
            t.downstream_idle_timeout.is_some(),
        ),
        ("upstream_idle_timeout", t.upstream_idle_timeout.is_some()),
        ("backoff_options", t.backoff_options.is_some()),
        ("hash_policy", !t.hash_policy.is_empty()),
        ("tunneling_config", t.tunneling_config.is_some()),
        (
            "max_downstream_connection_duration",
            t.max_downstream_connection_duration.is_some(),
        ),
        ("proxy_protocol_tlvs", !t.proxy_protocol_tlvs.is_empty()),
        ("upstream_connect_mode", t.upstream_connect_mode != 0),
        ("max_early_data_bytes", t.max_early_data_bytes.is_some()),
        // Periodic and on-connect log lines: only the line at close is written.
        ("access_log_options", t.access_log_options.is_some()),
        (
            "access_log_flush_interval",
            t.access_log_flush_interval.is_some(),
        ),
        (
            "flush_access_log_on_connected",
            t.flush_access_log_on_connected,
        ),
    ];
    refuse_set(&unsupported)?;
    if t.stat_prefix.is_empty() {
        return Err(FieldError::new("stat_prefix", "must not be empty"));
    }
    let target = match &t.cluster_specifier {
        Some(ClusterSpecifier::Cluster(name)) if !name.is_empty() => {
            TcpTarget::Cluster(Arc::from(name.as_str()))
        }
        Some(ClusterSpecifier::Cluster(_)) => {
            return Err(FieldError::new("cluster", "must not be empty"))
        }
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            let mut clusters = Vec::with_capacity(w.clusters.len());
            for (i, c) in w.clusters.iter().enumerate() {
                let at = |e: FieldError| {
                    Err::<(), _>(e)
                        .at_index("clusters", i)
                        .at("weighted_clusters")
                };
                if c.name.is_empty() {
                    at(FieldError::new("name", "must not be empty"))?;
                }
                if c.metadata_match.is_some() {
                    at(FieldError::unsupported("metadata_match"))?;
                }
                if c.weight > 0 {
                    clusters.push((Arc::from(c.name.as_str()), c.weight));
                }
            }
            let total = clusters.iter().map(|(_, w)| u64::from(*w)).sum::<u64>();
            if total == 0 {
                return Err(FieldError::new(
                    "weighted_clusters.clusters",
                    "needs at least one cluster with a positive weight",
                ));
            }
            TcpTarget::Weighted { clusters, total }
        }
        None => {
            return Err(FieldError::new(
                "cluster_specifier",
                "one of cluster or weighted_clusters is required",
            ))
        }
    };
    let idle_timeout = match &t.idle_timeout {
        None => Some(DEFAULT_TCP_IDLE_TIMEOUT),
        Some(d) => Some(duration(d).at("idle_timeout")?).filter(|d| !d.is_zero()),
    };
    let max_connect_attempts = match &t.max_connect_attempts {
        None => 1,
        Some(v) if v.value >= 1 => v.value,
        Some(_) => {
            return Err(FieldError::new(
                "max_connect_attempts",
                "must be at least 1",
            ))
        }
    };
    Ok(TcpProxyConfig {
        stat_prefix: t.stat_prefix.clone(),
        access_log: access_logs(&t.access_log)?.into(),
        target,
        idle_timeout,
        max_connect_attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xds_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::{
        weighted_cluster::ClusterWeight, WeightedCluster,
    };
    use xds_protos::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};

    fn to(cluster: &str) -> TcpProxy {
        TcpProxy {
            stat_prefix: cluster.into(),
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        }
    }

    #[test]
    fn a_cluster_with_envoys_defaults() {
        let c = tcp_proxy(&to("PassthroughCluster")).unwrap();
        assert_eq!(c.target, TcpTarget::Cluster("PassthroughCluster".into()));
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(c.max_connect_attempts, 1);
    }

    #[test]
    fn idle_timeout_zero_disables_it() {
        let mut t = to("a");
        t.idle_timeout = Some(ProtoDuration {
            seconds: 0,
            nanos: 0,
        });
        assert_eq!(tcp_proxy(&t).unwrap().idle_timeout, None);
        t.max_connect_attempts = Some(UInt32Value { value: 0 });
        assert_eq!(tcp_proxy(&t).unwrap_err().field, "max_connect_attempts");
    }

    #[test]
    fn weighted_clusters_share_by_weight() {
        let mut t = to("x");
        t.cluster_specifier = Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: vec![
                ClusterWeight {
                    name: "v1".into(),
                    weight: 75,
                    ..Default::default()
                },
                ClusterWeight {
                    name: "none".into(),
                    weight: 0,
                    ..Default::default()
                },
                ClusterWeight {
                    name: "v2".into(),
                    weight: 25,
                    ..Default::default()
                },
            ],
        }));
        let c = tcp_proxy(&t).unwrap();
        assert_eq!(c.target.total(), 100);
        assert_eq!(&**c.target.pick(0), "v1");
        assert_eq!(&**c.target.pick(74), "v1");
        assert_eq!(&**c.target.pick(75), "v2");
        assert_eq!(&**c.target.pick(99), "v2");
        assert_eq!(c.target.clusters().len(), 2);
    }

    #[test]
    fn what_the_relay_does_not_do_is_refused_by_name() {
        let mut t = to("a");
        t.hash_policy = vec![Default::default()];
        assert_eq!(tcp_proxy(&t).unwrap_err().field, "hash_policy");
        let mut t = to("a");
        t.tunneling_config = Some(Default::default());
        assert_eq!(tcp_proxy(&t).unwrap_err().field, "tunneling_config");
        let mut t = to("a");
        t.cluster_specifier = None;
        assert_eq!(tcp_proxy(&t).unwrap_err().field, "cluster_specifier");
    }
}
