//! Envoy v3 xDS wire types for Weft.
//!
//! The protobuf types come from the `envoy-types` crate (re-exported as [`pb`]); this crate adds
//! the type-URL constants, `Any` packing helpers and the node identity both sides agree on.

pub mod any;
pub mod node;
pub mod snapshot;
pub mod type_url;

pub use envoy_types::pb;

pub use pb::envoy::service::discovery::v3::{
    aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    },
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
