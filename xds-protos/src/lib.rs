//! Envoy v3 xDS wire types for Weft.
//!
//! The protobuf types come from the `envoy-types` crate (re-exported as [`pb`]); this crate adds
//! the type-URL constants, `Any` packing helpers and the node identity both sides agree on.

pub mod any;
pub mod node;
pub mod snapshot;
pub mod type_url;

pub use envoy_types::pb;

/// The largest HTTP/2 frame weft's xDS clients accept (`SETTINGS_MAX_FRAME_SIZE`). A route
/// configuration of a thousand services is most of a megabyte: at the protocol's default of
/// 16 KiB, weftd writes it to each proxy as some 40 frames, a system call each (measured: 90,000
/// writes for one change at 2,000 proxies; 1 MiB frames made a change's p99 20 % shorter).
pub const CLIENT_MAX_FRAME_SIZE: u32 = 1 << 20;

pub use pb::envoy::service::discovery::v3::{
    aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    },
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
