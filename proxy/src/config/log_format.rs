//! Access log formats: Envoy's command operators (`%RESPONSE_CODE%`, `%REQ(X-REQUEST-ID):32%`,
//! …) compiled once per listener into a list of pieces the request path only fills in.
//!
//! A format is text (a format string) or JSON (a format dictionary). Operators the proxy cannot
//! fill are refused by name when the listener is compiled, so a NACK says which one, instead of
//! a log line that silently prints `-` for it. The request and response headers a format reads
//! are gathered into slots here, so a request captures exactly those and nothing else.

use http::HeaderName;
use xds_protos::pb::google::protobuf::{value, Struct, Value};

use super::error::FieldError;

/// Envoy's default format, used when a logger names none.
pub const ENVOY_DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// Istio's default text format (MeshConfig `accessLogEncoding: TEXT` with no
/// `accessLogFormat`): Envoy's, plus the response code details, the upstream cluster, the
/// addresses and the route name.
pub const ISTIO_DEFAULT_TEXT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// One compiled format.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFormat {
    pub body: FormatBody,
    /// The request fields the format reads, in slot order (see [`Operator::Request`]).
    pub request_fields: Vec<RequestField>,
    /// The response headers the format reads, in slot order (see [`Operator::Response`]).
    pub response_headers: Vec<HeaderName>,
    /// `omit_empty_values`: an empty value prints as nothing (text) or is left out (JSON)
    /// instead of `-` / `null`.
    pub omit_empty_values: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FormatBody {
    Text(Vec<Piece>),
    /// Keys in the order they are written (sorted, as Envoy writes them).
    Json(Vec<(String, JsonValue)>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    /// A string with operators. Exactly one operator and nothing else keeps the operator's
    /// type (a number for `%RESPONSE_CODE%`), as Envoy does.
    Format(Vec<Piece>),
    /// A number, bool or null given as such.
    Literal(serde_json::Value),
    Object(Vec<(String, JsonValue)>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Literal(String),
    Operator {
        op: Operator,
        /// `%OP:N%`: at most N characters of the value.
        max_len: Option<usize>,
    },
}

/// A request field a format reads: a pseudo-header or a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestField {
    Method,
    Path,
    Authority,
    Scheme,
    Header(HeaderName),
}

/// The command operators weft-proxy fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    StartTime,
    Protocol,
    ResponseCode,
    ResponseFlags,
    ResponseCodeDetails,
    /// Always `-`: only network filters that close connections set it, and the proxy has none.
    ConnectionTerminationDetails,
    UpstreamTransportFailureReason,
    BytesReceived,
    BytesSent,
    /// Milliseconds from the start of the request to the last byte of the response.
    Duration,
    UpstreamHost,
    UpstreamCluster,
    /// Not known yet (the connection pool does not report it): `-`, as Envoy prints it for a
    /// request that never had an upstream connection.
    UpstreamLocalAddress,
    DownstreamLocalAddress,
    DownstreamLocalAddressWithoutPort,
    DownstreamRemoteAddress,
    DownstreamRemoteAddressWithoutPort,
    /// Always `-`: the proxy does not terminate TLS, so there is no SNI.
    RequestedServerName,
    RouteName,
    /// gRPC's name for the status (`OK`, `Unavailable`, …).
    GrpcStatus,
    GrpcStatusNumber,
    UpstreamRequestAttemptCount,
    /// `%REQ(A?B)%`: slot `a` in [`LogFormat::request_fields`], else slot `b`.
    Request {
        a: usize,
        b: Option<usize>,
    },
    /// `%RESP(A?B)%`: slots in [`LogFormat::response_headers`].
    Response {
        a: usize,
        b: Option<usize>,
    },
}

impl Operator {
    /// Whether the value is a number, for JSON's typed output.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Operator::ResponseCode
                | Operator::BytesReceived
                | Operator::BytesSent
                | Operator::Duration
                | Operator::GrpcStatusNumber
                | Operator::UpstreamRequestAttemptCount
        )
    }
}

impl LogFormat {
    /// A format string.
    pub(crate) fn text(format: &str, omit_empty_values: bool) -> Result<LogFormat, FieldError> {
        let mut slots = Slots::default();
        let pieces = parse(format, &mut slots)?;
        Ok(slots.into_format(FormatBody::Text(pieces), omit_empty_values))
    }

    /// A format dictionary.
    pub(crate) fn json(format: &Struct, omit_empty_values: bool) -> Result<LogFormat, FieldError> {
        let mut slots = Slots::default();
        let fields = json_object(format, &mut slots)?;
        Ok(slots.into_format(FormatBody::Json(fields), omit_empty_values))
    }
}

#[derive(Default)]
struct Slots {
    request: Vec<RequestField>,
    response: Vec<HeaderName>,
}

impl Slots {
    fn into_format(self, body: FormatBody, omit_empty_values: bool) -> LogFormat {
        LogFormat {
            body,
            request_fields: self.request,
            response_headers: self.response,
            omit_empty_values,
        }
    }

    fn request(&mut self, name: &str) -> Result<usize, String> {
        let field = match name.to_ascii_lowercase().as_str() {
            ":method" => RequestField::Method,
            ":path" => RequestField::Path,
            ":authority" | "host" => RequestField::Authority,
            ":scheme" => RequestField::Scheme,
            n if n.starts_with(':') => return Err(format!("unknown pseudo-header {name}")),
            n => RequestField::Header(
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| format!("invalid header name {name:?}"))?,
            ),
        };
        Ok(slot(&mut self.request, field))
    }

    fn response(&mut self, name: &str) -> Result<usize, String> {
        if name.starts_with(':') {
            return Err(format!("response pseudo-header {name} is not supported"));
        }
        let header = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        Ok(slot(&mut self.response, header))
    }
}

fn slot<T: PartialEq>(list: &mut Vec<T>, item: T) -> usize {
    match list.iter().position(|x| *x == item) {
        Some(i) => i,
        None => {
            list.push(item);
            list.len() - 1
        }
    }
}

fn json_object(s: &Struct, slots: &mut Slots) -> Result<Vec<(String, JsonValue)>, FieldError> {
    let mut keys: Vec<&String> = s.fields.keys().collect();
    keys.sort();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let value = json_value(&s.fields[key], slots).map_err(|e| e.under(key))?;
        out.push((key.clone(), value));
    }
    Ok(out)
}

fn json_value(v: &Value, slots: &mut Slots) -> Result<JsonValue, FieldError> {
    Ok(match &v.kind {
        Some(value::Kind::StringValue(s)) => JsonValue::Format(parse(s, slots)?),
        Some(value::Kind::NumberValue(n)) => JsonValue::Literal(
            serde_json::Number::from_f64(*n)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
        ),
        Some(value::Kind::BoolValue(b)) => JsonValue::Literal(serde_json::Value::Bool(*b)),
        Some(value::Kind::NullValue(_)) | None => JsonValue::Literal(serde_json::Value::Null),
        Some(value::Kind::StructValue(s)) => JsonValue::Object(json_object(s, slots)?),
        Some(value::Kind::ListValue(_)) => {
            return Err(FieldError::new(
                "",
                "lists are not supported in a format dictionary",
            ))
        }
    })
}

/// Splits a format string into literals and operators.
fn parse(format: &str, slots: &mut Slots) -> Result<Vec<Piece>, FieldError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        literal.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('%') {
            literal.push('%');
            rest = after;
            continue;
        }
        let end = closing_percent(rest).ok_or_else(|| {
            FieldError::new("", format!("unterminated command operator at %{rest}"))
        })?;
        let token = &rest[..end];
        rest = &rest[end + 1..];
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(operator(token, slots).map_err(|reason| FieldError::new("", reason))?);
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// The `%` that closes an operator, skipping any inside its parentheses.
fn closing_percent(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '%' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// One operator: `NAME`, `NAME(ARG)`, either followed by `:MAX_LENGTH`.
fn operator(token: &str, slots: &mut Slots) -> Result<Piece, String> {
    let (head, max_len) = match token.rsplit_once(':') {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            let n = n
                .parse()
                .map_err(|_| format!("length {n} of %{token}% is out of range"))?;
            (head, Some(n))
        }
        _ => (token, None),
    };
    let (name, arg) = match head.split_once('(') {
        Some((name, arg)) => {
            let arg = arg
                .strip_suffix(')')
                .ok_or_else(|| format!("%{token}%: missing ')'"))?;
            (name, Some(arg))
        }
        None => (head, None),
    };
    let op = match (name, arg) {
        ("REQ" | "REQUEST_HEADER", Some(arg)) => {
            let (a, b) = alternatives(arg, |n| slots.request(n))?;
            Operator::Request { a, b }
        }
        ("RESP" | "RESPONSE_HEADER", Some(arg)) => {
            let (a, b) = alternatives(arg, |n| slots.response(n))?;
            Operator::Response { a, b }
        }
        _ => match (no_arg_operator(name), arg) {
            (Some(op), None) => op,
            (Some(_), Some(_)) => {
                return Err(format!(
                    "%{token}%: arguments to {name} are not supported by weft-proxy"
                ))
            }
            (None, _) => {
                return Err(format!(
                    "command operator %{name}% is not supported by weft-proxy"
                ))
            }
        },
    };
    Ok(Piece::Operator { op, max_len })
}

fn alternatives(
    arg: &str,
    mut slot: impl FnMut(&str) -> Result<usize, String>,
) -> Result<(usize, Option<usize>), String> {
    match arg.split_once('?') {
        Some((a, b)) => Ok((slot(a)?, Some(slot(b)?))),
        None => Ok((slot(arg)?, None)),
    }
}

fn no_arg_operator(name: &str) -> Option<Operator> {
    Some(match name {
        "START_TIME" => Operator::StartTime,
        "PROTOCOL" => Operator::Protocol,
        "RESPONSE_CODE" => Operator::ResponseCode,
        "RESPONSE_FLAGS" => Operator::ResponseFlags,
        "RESPONSE_CODE_DETAILS" => Operator::ResponseCodeDetails,
        "CONNECTION_TERMINATION_DETAILS" => Operator::ConnectionTerminationDetails,
        "UPSTREAM_TRANSPORT_FAILURE_REASON" => Operator::UpstreamTransportFailureReason,
        "BYTES_RECEIVED" => Operator::BytesReceived,
        "BYTES_SENT" => Operator::BytesSent,
        "DURATION" => Operator::Duration,
        "UPSTREAM_HOST" => Operator::UpstreamHost,
        // Envoy's differ only by a cluster's `alt_stat_name`, which the proxy does not accept.
        "UPSTREAM_CLUSTER" | "UPSTREAM_CLUSTER_RAW" => Operator::UpstreamCluster,
        "UPSTREAM_LOCAL_ADDRESS" => Operator::UpstreamLocalAddress,
        "DOWNSTREAM_LOCAL_ADDRESS" => Operator::DownstreamLocalAddress,
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => Operator::DownstreamLocalAddressWithoutPort,
        "DOWNSTREAM_REMOTE_ADDRESS" => Operator::DownstreamRemoteAddress,
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Operator::DownstreamRemoteAddressWithoutPort,
        "REQUESTED_SERVER_NAME" => Operator::RequestedServerName,
        "ROUTE_NAME" => Operator::RouteName,
        "GRPC_STATUS" => Operator::GrpcStatus,
        "GRPC_STATUS_NUMBER" => Operator::GrpcStatusNumber,
        "UPSTREAM_REQUEST_ATTEMPT_COUNT" => Operator::UpstreamRequestAttemptCount,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: &str) -> LogFormat {
        LogFormat::text(f, false).expect("valid format")
    }

    #[test]
    fn both_default_formats_compile() {
        let envoy = text(ENVOY_DEFAULT_FORMAT);
        assert_eq!(
            envoy.request_fields,
            vec![
                RequestField::Method,
                RequestField::Header(HeaderName::from_static("x-envoy-original-path")),
                RequestField::Path,
                RequestField::Header(HeaderName::from_static("x-forwarded-for")),
                RequestField::Header(HeaderName::from_static("user-agent")),
                RequestField::Header(HeaderName::from_static("x-request-id")),
                RequestField::Authority,
            ]
        );
        assert_eq!(
            envoy.response_headers,
            vec![HeaderName::from_static("x-envoy-upstream-service-time")]
        );
        let istio = text(ISTIO_DEFAULT_TEXT_FORMAT);
        let FormatBody::Text(pieces) = &istio.body else {
            panic!("text")
        };
        assert!(pieces.contains(&Piece::Operator {
            op: Operator::ResponseCodeDetails,
            max_len: None
        }));
    }

    #[test]
    fn operators_literals_lengths_and_percent_signs() {
        let f = text("a %% b %REQ(:PATH):3% %RESPONSE_CODE%\n");
        let FormatBody::Text(pieces) = f.body else {
            panic!("text")
        };
        assert_eq!(
            pieces,
            vec![
                Piece::Literal("a % b ".into()),
                Piece::Operator {
                    op: Operator::Request { a: 0, b: None },
                    max_len: Some(3)
                },
                Piece::Literal(" ".into()),
                Piece::Operator {
                    op: Operator::ResponseCode,
                    max_len: None
                },
                Piece::Literal("\n".into()),
            ]
        );
        // One slot per distinct field, whatever the spelling.
        let f = text("%REQ(:path)% %REQUEST_HEADER(:PATH)% %REQ(User-Agent)%");
        assert_eq!(f.request_fields.len(), 2);
    }

    #[test]
    fn unsupported_operators_are_refused_by_name() {
        let err = LogFormat::text("%DYNAMIC_METADATA(istio)%", false).unwrap_err();
        assert!(err.reason.contains("%DYNAMIC_METADATA%"), "{}", err.reason);
        let err = LogFormat::text("%START_TIME(%s)%", false).unwrap_err();
        assert!(err.reason.contains("START_TIME"), "{}", err.reason);
        let err = LogFormat::text("%RESPONSE_CODE", false).unwrap_err();
        assert!(err.reason.contains("unterminated"), "{}", err.reason);
        assert!(LogFormat::text("%RESP(:status)%", false).is_err());
    }

    #[test]
    fn json_keys_are_sorted_and_nested_objects_kept() {
        let s = |v: &str| Value {
            kind: Some(value::Kind::StringValue(v.into())),
        };
        let nested = Struct {
            fields: [("p".to_string(), s("%PROTOCOL%"))].into_iter().collect(),
        };
        let format = Struct {
            fields: [
                ("code".to_string(), s("%RESPONSE_CODE%")),
                (
                    "a".to_string(),
                    Value {
                        kind: Some(value::Kind::StructValue(nested)),
                    },
                ),
            ]
            .into_iter()
            .collect(),
        };
        let f = LogFormat::json(&format, false).expect("valid");
        let FormatBody::Json(fields) = f.body else {
            panic!("json")
        };
        assert_eq!(fields[0].0, "a");
        assert_eq!(fields[1].0, "code");
        let bad = Struct {
            fields: [("x".to_string(), s("%FILTER_STATE(k)%"))]
                .into_iter()
                .collect(),
        };
        let err = LogFormat::json(&bad, false).unwrap_err();
        assert_eq!(err.field, "x");
    }
}
