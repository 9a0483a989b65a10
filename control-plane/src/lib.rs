//! weftd: reads Istio configuration, translates it to Envoy v3 resources and serves them over ADS.

pub mod daemon;
pub mod model;
pub mod registry;
pub mod source;
pub mod translate;
pub mod xds;
