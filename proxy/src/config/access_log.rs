//! The connection manager's `access_log` list: which loggers write a line per request, and in
//! which format.
//!
//! weft-proxy writes access logs to its standard output, so it takes the loggers that write
//! there: `envoy.access_loggers.stdout`, and `envoy.access_loggers.file` with path
//! `/dev/stdout` (what Istio's MeshConfig `accessLogFile: /dev/stdout` produces). Every logger
//! in the list writes its own line, as in Envoy. Anything it would not act on — another path,
//! another logger, a filter, formatter extensions — is refused by name rather than skipped, so
//! an operator is not left looking for lines that never come.

use prost::Message;
use xds_protos::pb::envoy::config::accesslog::v3::{access_log, AccessLog};
use xds_protos::pb::envoy::config::core::v3::{
    data_source, substitution_format_string, SubstitutionFormatString,
};
use xds_protos::pb::envoy::extensions::access_loggers::file::v3::{file_access_log, FileAccessLog};
use xds_protos::pb::envoy::extensions::access_loggers::stream::v3::{
    stdout_access_log, StdoutAccessLog,
};
use xds_protos::type_url;

use super::error::{AtField, FieldError};
use super::log_format::{LogFormat, ENVOY_DEFAULT_FORMAT};

pub const FILE_ACCESS_LOG: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";

/// The formats of the loggers in `access_log`, one line each per request; empty when the
/// listener logs nothing.
pub(crate) fn access_logs(logs: &[AccessLog]) -> Result<Vec<LogFormat>, FieldError> {
    logs.iter()
        .enumerate()
        .map(|(k, log)| logger(log).at_index("access_log", k))
        .collect()
}

#[allow(deprecated)] // FileAccessLog's older format fields are deprecated but still sent.
fn logger(log: &AccessLog) -> Result<LogFormat, FieldError> {
    if log.filter.is_some() {
        return Err(FieldError::new(
            "filter",
            "access log filters are not supported by weft-proxy",
        ));
    }
    let any = match &log.config_type {
        Some(access_log::ConfigType::TypedConfig(any)) => any,
        None => return Err(FieldError::new("typed_config", "is required")),
    };
    let decode_error =
        |e: prost::DecodeError| FieldError::new("typed_config", format!("cannot decode: {e}"));
    if any.type_url == type_url::STDOUT_ACCESS_LOG {
        let config = StdoutAccessLog::decode(any.value.as_slice()).map_err(decode_error)?;
        return match &config.access_log_format {
            Some(stdout_access_log::AccessLogFormat::LogFormat(f)) => {
                substitution_format(f).at("typed_config.log_format")
            }
            None => LogFormat::text(ENVOY_DEFAULT_FORMAT, false),
        };
    }
    if any.type_url == FILE_ACCESS_LOG {
        let config = FileAccessLog::decode(any.value.as_slice()).map_err(decode_error)?;
        if config.path != "/dev/stdout" {
            return Err(FieldError::new(
                "typed_config.path",
                format!(
                    "{:?}: weft-proxy writes access logs to /dev/stdout only",
                    config.path
                ),
            ));
        }
        return match &config.access_log_format {
            Some(file_access_log::AccessLogFormat::LogFormat(f)) => {
                substitution_format(f).at("typed_config.log_format")
            }
            Some(file_access_log::AccessLogFormat::Format(f)) => {
                let f = if f.is_empty() {
                    ENVOY_DEFAULT_FORMAT
                } else {
                    f
                };
                LogFormat::text(f, false).at("typed_config.format")
            }
            Some(file_access_log::AccessLogFormat::JsonFormat(s)) => {
                LogFormat::json(s, false).at("typed_config.json_format")
            }
            Some(file_access_log::AccessLogFormat::TypedJsonFormat(s)) => {
                LogFormat::json(s, false).at("typed_config.typed_json_format")
            }
            None => LogFormat::text(ENVOY_DEFAULT_FORMAT, false),
        };
    }
    Err(FieldError::new(
        "typed_config",
        format!(
            "access logger {} is not supported by weft-proxy (stdout and file to /dev/stdout are)",
            any.type_url
        ),
    ))
}

#[allow(deprecated)] // text_format is deprecated in favour of text_format_source, still sent.
fn substitution_format(f: &SubstitutionFormatString) -> Result<LogFormat, FieldError> {
    if !f.formatters.is_empty() {
        return Err(FieldError::unsupported("formatters"));
    }
    let omit = f.omit_empty_values;
    match &f.format {
        Some(substitution_format_string::Format::TextFormat(t)) => {
            LogFormat::text(t, omit).at("text_format")
        }
        Some(substitution_format_string::Format::JsonFormat(s)) => {
            LogFormat::json(s, omit).at("json_format")
        }
        Some(substitution_format_string::Format::TextFormatSource(source)) => {
            let text = match &source.specifier {
                Some(data_source::Specifier::InlineString(s)) => s.clone(),
                Some(data_source::Specifier::InlineBytes(b)) => String::from_utf8(b.clone())
                    .map_err(|_| {
                        FieldError::new("text_format_source.inline_bytes", "is not UTF-8")
                    })?,
                Some(data_source::Specifier::Filename(_)) => {
                    return Err(FieldError::unsupported("text_format_source.filename"))
                }
                Some(data_source::Specifier::EnvironmentVariable(_)) => {
                    return Err(FieldError::unsupported(
                        "text_format_source.environment_variable",
                    ))
                }
                None => return Err(FieldError::new("text_format_source", "is empty")),
            };
            LogFormat::text(&text, omit).at("text_format_source.inline_string")
        }
        None => LogFormat::text(ENVOY_DEFAULT_FORMAT, omit),
    }
}
