//! `HeaderValueOption` lists and header-name removal lists to [`HeaderMutations`].

use http::{HeaderName, HeaderValue};
use xds_protos::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValueOption,
};

use super::error::{AtField, FieldError};
use crate::router::{AppendAction, HeaderAdd, HeaderMutations, HeaderPolicy};

/// The four lists of one level (route, virtual host, route configuration, weighted cluster).
pub(crate) struct HeaderLists<'a> {
    pub request_add: &'a [HeaderValueOption],
    pub request_remove: &'a [String],
    pub response_add: &'a [HeaderValueOption],
    pub response_remove: &'a [String],
}

pub(crate) fn header_policy(lists: HeaderLists<'_>) -> Result<HeaderPolicy, FieldError> {
    Ok(HeaderPolicy {
        request: mutations(
            lists.request_add,
            lists.request_remove,
            true,
            "request_headers_to_add",
            "request_headers_to_remove",
        )?,
        response: mutations(
            lists.response_add,
            lists.response_remove,
            false,
            "response_headers_to_add",
            "response_headers_to_remove",
        )?,
    })
}

fn mutations(
    add: &[HeaderValueOption],
    remove: &[String],
    request: bool,
    add_field: &str,
    remove_field: &str,
) -> Result<HeaderMutations, FieldError> {
    let remove = remove
        .iter()
        .enumerate()
        .map(|(i, name)| {
            header_name(name, request)
                .map_err(|reason| FieldError::new(format!("{remove_field}[{i}]"), reason))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut adds = Vec::with_capacity(add.len());
    for (i, option) in add.iter().enumerate() {
        if let Some(a) = header_add(option, request).at_index(add_field, i)? {
            adds.push(a);
        }
    }
    Ok(HeaderMutations { remove, add: adds })
}

/// `None` for an empty value without `keep_empty_value`: Envoy skips those.
#[allow(deprecated)] // `append` is deprecated but still sent, and overrides `append_action`.
fn header_add(o: &HeaderValueOption, request: bool) -> Result<Option<HeaderAdd>, FieldError> {
    let header = o
        .header
        .as_ref()
        .ok_or_else(|| FieldError::new("header", "required"))?;
    let name = header_name(&header.key, request).map_err(|r| FieldError::new("header.key", r))?;
    let raw = if header.raw_value.is_empty() {
        header.value.as_bytes()
    } else {
        header.raw_value.as_slice()
    };
    let raw = unescape_formatters(raw).map_err(|r| FieldError::new("header.value", r))?;
    if raw.is_empty() && !o.keep_empty_value {
        return Ok(None);
    }
    let value = HeaderValue::from_bytes(&raw)
        .map_err(|_| FieldError::new("header.value", "not a valid header value"))?;
    let action = match (o.append, HeaderAppendAction::try_from(o.append_action)) {
        (Some(b), _) if b.value => AppendAction::AppendIfExistsOrAdd,
        (Some(_), _) => AppendAction::OverwriteIfExistsOrAdd,
        (None, Ok(HeaderAppendAction::AppendIfExistsOrAdd)) => AppendAction::AppendIfExistsOrAdd,
        (None, Ok(HeaderAppendAction::AddIfAbsent)) => AppendAction::AddIfAbsent,
        (None, Ok(HeaderAppendAction::OverwriteIfExistsOrAdd)) => {
            AppendAction::OverwriteIfExistsOrAdd
        }
        (None, Ok(HeaderAppendAction::OverwriteIfExists)) => AppendAction::OverwriteIfExists,
        (None, Err(_)) => {
            return Err(FieldError::new(
                "append_action",
                format!("unknown action {}", o.append_action),
            ))
        }
    };
    Ok(Some(HeaderAdd {
        name,
        value,
        action,
    }))
}

/// Envoy refuses to let routes touch pseudo-headers, and `host` on requests (the authority
/// has its own rewrite fields).
fn header_name(name: &str, request: bool) -> Result<HeaderName, String> {
    if name.starts_with(':') {
        return Err(format!("pseudo-header {name:?} cannot be modified"));
    }
    if request && name.eq_ignore_ascii_case("host") {
        return Err("\"host\" cannot be modified here (use host_rewrite_literal)".into());
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a header name"))
}

/// Header values are Envoy substitution format strings, where `%` starts a command. Only the
/// escaped `%%` is understood here; a command is refused rather than sent literally.
fn unescape_formatters(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            if raw.get(i + 1) == Some(&b'%') {
                out.push(b'%');
                i += 2;
                continue;
            }
            return Err(
                "substitution formatters (%...%) are not supported; write %% for a literal %"
                    .into(),
            );
        }
        out.push(raw[i]);
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xds_protos::pb::envoy::config::core::v3::HeaderValue as ProtoHeaderValue;
    use xds_protos::pb::google::protobuf::BoolValue;

    fn option(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(ProtoHeaderValue {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        }
    }

    fn lists<'a>(add: &'a [HeaderValueOption], remove: &'a [String]) -> HeaderLists<'a> {
        HeaderLists {
            request_add: add,
            request_remove: remove,
            response_add: &[],
            response_remove: &[],
        }
    }

    #[test]
    fn actions_and_the_deprecated_append_flag_compile() {
        #[allow(deprecated)]
        let legacy = HeaderValueOption {
            append: Some(BoolValue { value: false }),
            ..option("x-b", "2", HeaderAppendAction::AppendIfExistsOrAdd)
        };
        let adds = [
            option("x-a", "1", HeaderAppendAction::AddIfAbsent),
            legacy,
            option("x-empty", "", HeaderAppendAction::AppendIfExistsOrAdd),
            option("x-pct", "100%%", HeaderAppendAction::AppendIfExistsOrAdd),
        ];
        let p = header_policy(lists(&adds, &["x-gone".into()])).unwrap();
        let actions: Vec<_> = p
            .request
            .add
            .iter()
            .map(|a| (a.name.as_str(), a.action))
            .collect();
        assert_eq!(
            actions,
            [
                ("x-a", AppendAction::AddIfAbsent),
                ("x-b", AppendAction::OverwriteIfExistsOrAdd),
                ("x-pct", AppendAction::AppendIfExistsOrAdd)
            ]
        );
        assert_eq!(p.request.add[2].value, "100%");
        assert_eq!(p.request.remove, [HeaderName::from_static("x-gone")]);
    }

    #[test]
    fn pseudo_headers_host_and_formatters_are_refused_with_their_field() {
        let bad = [option(
            ":path",
            "/x",
            HeaderAppendAction::AppendIfExistsOrAdd,
        )];
        let e = header_policy(lists(&bad, &[])).unwrap_err();
        assert_eq!(e.field, "request_headers_to_add[0].header.key");
        let host = ["host".to_string()];
        let e = header_policy(lists(&[], &host)).unwrap_err();
        assert_eq!(e.field, "request_headers_to_remove[0]");
        let fmt = [option(
            "x-ip",
            "%DOWNSTREAM_REMOTE_ADDRESS%",
            HeaderAppendAction::AppendIfExistsOrAdd,
        )];
        let e = header_policy(lists(&fmt, &[])).unwrap_err();
        assert_eq!(e.field, "request_headers_to_add[0].header.value");
    }
}
