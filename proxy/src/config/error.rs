//! Validation errors that name the resource and the field, so a NACK tells the operator exactly
//! what to fix.
//!
//! Compilers below the resource level return a [`FieldError`] whose path is relative to the
//! message they were given; each caller prefixes its own field name on the way up. That keeps
//! every compiler reusable where the same message is embedded elsewhere (an inline route
//! configuration inside a listener, an inline load assignment inside a cluster).

use std::time::Duration;

use xds_protos::pb::google::protobuf::Duration as ProtoDuration;

/// A resource the proxy refuses, with the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{type_url_short} {resource}: {field}: {reason}")]
pub struct ValidationError {
    /// `Listener`, `RouteConfiguration`, `Cluster` or `ClusterLoadAssignment`.
    pub type_url_short: &'static str,
    /// The resource name.
    pub resource: String,
    /// Path from the resource root, e.g. `virtual_hosts[0].routes[2].match.safe_regex.regex`.
    pub field: String,
    pub reason: String,
}

/// An error at a field path relative to the message being compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(field: &str) -> Self {
        FieldError::new(field, "not supported")
    }

    /// Moves the error under `parent`, a field of the enclosing message.
    pub(crate) fn under(mut self, parent: &str) -> Self {
        self.field = match self.field.as_str() {
            "" => parent.to_string(),
            child => format!("{parent}.{child}"),
        };
        self
    }

    pub(crate) fn into_error(
        self,
        type_url_short: &'static str,
        resource: &str,
    ) -> ValidationError {
        ValidationError {
            type_url_short,
            resource: resource.to_string(),
            field: self.field,
            reason: self.reason,
        }
    }
}

pub(crate) trait AtField<T> {
    /// Places an error under `field`.
    fn at(self, field: &str) -> Result<T, FieldError>;
    /// Places an error under `field[index]`; the path is only formatted on failure.
    fn at_index(self, field: &str, index: usize) -> Result<T, FieldError>;
}

impl<T> AtField<T> for Result<T, FieldError> {
    fn at(self, field: &str) -> Result<T, FieldError> {
        self.map_err(|e| e.under(field))
    }

    fn at_index(self, field: &str, index: usize) -> Result<T, FieldError> {
        self.map_err(|e| e.under(&format!("{field}[{index}]")))
    }
}

/// A protobuf `Duration` as a std one; negative or malformed values are errors rather than
/// being clamped, since they usually mean a bug in the control plane.
pub(crate) fn duration(d: &ProtoDuration) -> Result<Duration, FieldError> {
    let nanos = u32::try_from(d.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| FieldError::new("nanos", format!("{} is out of range", d.nanos)))?;
    let secs = u64::try_from(d.seconds).map_err(|_| FieldError::new("", "must not be negative"))?;
    Ok(Duration::new(secs, nanos))
}

/// Refuses the first of `fields` that is set, by name: the check every config section makes
/// for the fields weft-proxy does not act on.
pub(crate) fn refuse_set(fields: &[(&str, bool)]) -> Result<(), FieldError> {
    match fields.iter().find(|(_, set)| *set) {
        Some((field, _)) => Err(FieldError::unsupported(field)),
        None => Ok(()),
    }
}
