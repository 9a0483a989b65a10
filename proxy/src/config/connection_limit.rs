//! `envoy.filters.network.connection_limit` to what the listener enforces: how many connections
//! the filter's chain may hold open at once, and how long a connection past the limit is held
//! before it is closed. Enforcement lives in `crate::connection_limit`.

use std::time::Duration;

use prost::Message;
use xds_protos::pb::envoy::extensions::filters::network::connection_limit::v3::ConnectionLimit;
use xds_protos::pb::google::protobuf::Any;

use super::error::{duration, AtField, FieldError};
use crate::connection_limit::LimiterSlot;

pub const CONNECTION_LIMIT_NAME: &str = "envoy.filters.network.connection_limit";
pub const CONNECTION_LIMIT_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";

#[derive(Debug, Clone)]
pub struct ConnectionLimitConfig {
    /// Its stats are `connection_limit.<stat_prefix>.*`.
    pub stat_prefix: String,
    /// At least 1.
    pub max_connections: u64,
    /// How long a connection past the limit stays open before it is closed; `None` closes it
    /// at once.
    pub delay: Option<Duration>,
    /// The counter this config enforces with, resolved by its first connection.
    pub limiter: LimiterSlot,
}

/// Compiles the filter's `typed_config`. `None` when `runtime_enabled` turns it off: with no
/// runtime, its `default_value` decides, as in an Envoy whose runtime does not set the key.
pub(crate) fn connection_limit(any: &Any) -> Result<Option<ConnectionLimitConfig>, FieldError> {
    let c = ConnectionLimit::decode(any.value.as_slice())
        .map_err(|e| FieldError::new("typed_config", format!("cannot decode: {e}")))?;
    let at = |field: &str| format!("typed_config.{field}");
    if c.stat_prefix.is_empty() {
        return Err(FieldError::new(at("stat_prefix"), "must not be empty"));
    }
    let max_connections = match c.max_connections {
        None => return Err(FieldError::new(at("max_connections"), "is required")),
        Some(m) if m.value == 0 => {
            return Err(FieldError::new(at("max_connections"), "must be at least 1"))
        }
        Some(m) => m.value,
    };
    let delay = match &c.delay {
        None => None,
        Some(d) => Some(duration(d).at(&at("delay"))?).filter(|d| !d.is_zero()),
    };
    if let Some(flag) = &c.runtime_enabled {
        if flag.runtime_key.is_empty() {
            return Err(FieldError::new(
                at("runtime_enabled.runtime_key"),
                "must not be empty",
            ));
        }
        match flag.default_value {
            None => {
                return Err(FieldError::new(
                    at("runtime_enabled.default_value"),
                    "is required",
                ))
            }
            Some(v) if !v.value => return Ok(None),
            Some(_) => {}
        }
    }
    Ok(Some(ConnectionLimitConfig {
        stat_prefix: c.stat_prefix,
        max_connections,
        delay,
        limiter: LimiterSlot::default(),
    }))
}
