//! Protos that several test modules build the same way: what istiod sends.

use xds_protos::pb::envoy::config::route::v3::{
    retry_policy::{retry_host_predicate, RetryHostPredicate},
    RetryPolicy,
};
use xds_protos::pb::google::protobuf::{Any, UInt32Value};
use xds_protos::type_url;

/// What istiod sends for a route whose VirtualService sets no retries.
pub(crate) fn istio_default_retry() -> RetryPolicy {
    RetryPolicy {
        retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
            .into(),
        num_retries: Some(UInt32Value { value: 2 }),
        retry_host_predicate: vec![RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(retry_host_predicate::ConfigType::TypedConfig(Any {
                type_url: type_url::PREVIOUS_HOSTS_PREDICATE.into(),
                value: vec![],
            })),
        }],
        host_selection_retry_max_attempts: 5,
        retriable_status_codes: vec![503],
        ..Default::default()
    }
}
