//! The ADS client: subscribe, validate, NACK with a reason, apply atomically, keep last-good.

pub mod client;
pub mod state;
