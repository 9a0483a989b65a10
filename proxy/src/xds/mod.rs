//! The ADS client: subscribe, validate, NACK with a reason, apply atomically, keep last-good.
//! `resource` describes each resource type once; `state` is the cache every response is applied
//! to as one transaction; `client` runs the stream.

pub mod client;
pub mod resource;
pub mod state;
#[cfg(test)]
mod test_protos;
