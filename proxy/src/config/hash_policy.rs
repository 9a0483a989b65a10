//! `RouteAction.hash_policy` to [`crate::router::HashPolicy`], evaluated per request by
//! [`crate::router::request_hash`].
//!
//! Accepted: `header` (with `regex_rewrite`), `cookie` (`name`, `ttl`, `path`),
//! `connection_properties` (`source_ip`; when false Envoy adds no policy, and neither does
//! this), `query_parameter`, and `terminal`. Refused by name: `filter_state` (weft-proxy has no
//! filter state), cookie `attributes`, and a second cookie policy with a `ttl` on the same
//! route (only one generated cookie per response is carried).

use xds_protos::pb::envoy::config::route::v3::route_action::hash_policy::{
    Cookie, Header, PolicySpecifier,
};
use xds_protos::pb::envoy::config::route::v3::route_action::HashPolicy as ProtoHashPolicy;
use xds_protos::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;

use super::error::{duration, AtField, FieldError};
use crate::router::{CookiePolicy, HashKind, HashPolicy, HeaderSource, RegexRewrite};

/// Compiles a route's hash policies. Error paths start at `hash_policy[i]`, relative to the
/// `RouteAction`.
// Wired into route compilation by the request-pipeline work; until then only tests call it.
pub(crate) fn compile_hash_policies(
    policies: &[ProtoHashPolicy],
) -> Result<Vec<HashPolicy>, FieldError> {
    let mut compiled = Vec::with_capacity(policies.len());
    let mut generating_cookie = false;
    for (i, p) in policies.iter().enumerate() {
        let kind = match hash_kind(p).at_index("hash_policy", i)? {
            Some(kind) => kind,
            None => continue,
        };
        if let HashKind::Cookie(c) = &kind {
            if c.generates() {
                if generating_cookie {
                    return Err(FieldError::new(
                        format!("hash_policy[{i}].cookie.ttl"),
                        "only one cookie policy per route may generate a cookie",
                    ));
                }
                generating_cookie = true;
            }
        }
        compiled.push(HashPolicy {
            kind,
            terminal: p.terminal,
        });
    }
    Ok(compiled)
}

/// `None` for a policy Envoy accepts but that hashes nothing.
fn hash_kind(p: &ProtoHashPolicy) -> Result<Option<HashKind>, FieldError> {
    Ok(Some(match &p.policy_specifier {
        Some(PolicySpecifier::Header(h)) => header(h).at("header")?,
        Some(PolicySpecifier::Cookie(c)) => cookie(c).at("cookie")?,
        Some(PolicySpecifier::ConnectionProperties(cp)) if cp.source_ip => HashKind::SourceIp,
        Some(PolicySpecifier::ConnectionProperties(_)) => return Ok(None),
        Some(PolicySpecifier::QueryParameter(q)) => {
            if q.name.is_empty() {
                return Err(FieldError::new("query_parameter.name", "must not be empty"));
            }
            HashKind::QueryParameter(q.name.as_str().into())
        }
        Some(PolicySpecifier::FilterState(_)) => {
            return Err(FieldError::unsupported("filter_state"))
        }
        None => {
            return Err(FieldError::new(
                "",
                "one of header, cookie, connection_properties, query_parameter or filter_state \
                 is required",
            ))
        }
    }))
}

fn header(h: &Header) -> Result<HashKind, FieldError> {
    if h.header_name.is_empty() {
        return Err(FieldError::new("header_name", "must not be empty"));
    }
    let source = HeaderSource::from_name(&h.header_name).map_err(|_| {
        FieldError::new(
            "header_name",
            format!("{:?} is not a valid header name", h.header_name),
        )
    })?;
    let rewrite = h
        .regex_rewrite
        .as_ref()
        .map(regex_rewrite)
        .transpose()
        .at("regex_rewrite")?;
    Ok(HashKind::Header { source, rewrite })
}

fn regex_rewrite(r: &RegexMatchAndSubstitute) -> Result<RegexRewrite, FieldError> {
    let pattern = r
        .pattern
        .as_ref()
        .ok_or_else(|| FieldError::new("pattern", "required"))?;
    if pattern.regex.is_empty() {
        return Err(FieldError::new("pattern.regex", "must not be empty"));
    }
    let regex = regex::Regex::new(&pattern.regex)
        .map_err(|e| FieldError::new("pattern.regex", format!("invalid regex: {e}")))?;
    let replacement = replacement(&r.substitution, regex.captures_len())
        .map_err(|reason| FieldError::new("substitution", reason))?;
    Ok(RegexRewrite { regex, replacement })
}

/// Envoy's substitution syntax (RE2's: `\0`..`\9` for groups, `\\` for a backslash) in the
/// `regex` crate's (`${n}`, `$$` for a dollar sign).
fn replacement(substitution: &str, groups: usize) -> Result<String, String> {
    let mut out = String::with_capacity(substitution.len());
    let mut chars = substitution.chars();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some(d @ '0'..='9') => {
                    let n = d as usize - '0' as usize;
                    if n >= groups {
                        return Err(format!("\\{n} refers to a group the pattern does not have"));
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                _ => return Err("a backslash must be followed by a digit or a backslash".into()),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

fn cookie(c: &Cookie) -> Result<HashKind, FieldError> {
    if !c.attributes.is_empty() {
        return Err(FieldError::unsupported("attributes"));
    }
    let ttl = c.ttl.as_ref().map(|d| duration(d).at("ttl")).transpose()?;
    let policy = CookiePolicy::new(&c.name, ttl, &c.path).map_err(|e| {
        let field = match e {
            crate::router::CookiePolicyError::Name(_) => "name",
            crate::router::CookiePolicyError::Path(_) => "path",
        };
        FieldError::new(field, e.to_string())
    })?;
    Ok(HashKind::Cookie(policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xds_protos::pb::envoy::config::route::v3::route_action::hash_policy::{
        ConnectionProperties, CookieAttribute, FilterState, QueryParameter,
    };
    use xds_protos::pb::envoy::r#type::matcher::v3::RegexMatcher;
    use xds_protos::pb::google::protobuf::Duration as ProtoDuration;

    fn p(spec: PolicySpecifier, terminal: bool) -> ProtoHashPolicy {
        ProtoHashPolicy {
            terminal,
            policy_specifier: Some(spec),
        }
    }

    fn header_policy(name: &str) -> ProtoHashPolicy {
        p(
            PolicySpecifier::Header(Header {
                header_name: name.into(),
                regex_rewrite: None,
            }),
            false,
        )
    }

    fn cookie_policy(name: &str, ttl: Option<i64>) -> ProtoHashPolicy {
        p(
            PolicySpecifier::Cookie(Cookie {
                name: name.into(),
                ttl: ttl.map(|seconds| ProtoDuration { seconds, nanos: 0 }),
                path: "/".into(),
                attributes: vec![],
            }),
            false,
        )
    }

    fn err(policies: &[ProtoHashPolicy]) -> FieldError {
        compile_hash_policies(policies).expect_err("must be refused")
    }

    #[test]
    fn every_supported_kind_compiles_in_order() {
        let policies = [
            header_policy("x-user"),
            cookie_policy("session", Some(60)),
            p(
                PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true }),
                true,
            ),
            p(
                PolicySpecifier::QueryParameter(QueryParameter {
                    name: "user".into(),
                }),
                false,
            ),
        ];
        let compiled = compile_hash_policies(&policies).expect("valid");
        assert_eq!(compiled.len(), 4);
        assert!(matches!(
            &compiled[0].kind,
            HashKind::Header { source: HeaderSource::Header(n), rewrite: None } if n == "x-user"
        ));
        assert!(
            matches!(&compiled[1].kind, HashKind::Cookie(c) if c.name() == "session" && c.generates())
        );
        assert!(matches!(compiled[2].kind, HashKind::SourceIp));
        assert!(compiled[2].terminal);
        assert!(matches!(&compiled[3].kind, HashKind::QueryParameter(q) if &**q == "user"));
    }

    #[test]
    fn source_ip_false_adds_no_policy_as_in_envoy() {
        let policies = [p(
            PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: false }),
            false,
        )];
        assert!(compile_hash_policies(&policies).expect("valid").is_empty());
    }

    #[test]
    fn refused_kinds_and_fields_are_named() {
        let e = err(&[
            header_policy("x-a"),
            p(
                PolicySpecifier::FilterState(FilterState { key: "k".into() }),
                false,
            ),
        ]);
        assert_eq!(e.field, "hash_policy[1].filter_state");

        let mut with_attrs = cookie_policy("s", Some(1));
        if let Some(PolicySpecifier::Cookie(c)) = &mut with_attrs.policy_specifier {
            c.attributes.push(CookieAttribute {
                name: "SameSite".into(),
                value: "Strict".into(),
            });
        }
        assert_eq!(err(&[with_attrs]).field, "hash_policy[0].cookie.attributes");

        assert_eq!(
            err(&[header_policy("")]).field,
            "hash_policy[0].header.header_name"
        );
        assert_eq!(
            err(&[header_policy("bad header")]).field,
            "hash_policy[0].header.header_name"
        );
        assert_eq!(
            err(&[cookie_policy("", None)]).field,
            "hash_policy[0].cookie.name"
        );
        assert_eq!(
            err(&[cookie_policy("s", Some(-5))]).field,
            "hash_policy[0].cookie.ttl"
        );
        let e = err(&[ProtoHashPolicy {
            terminal: false,
            policy_specifier: None,
        }]);
        assert_eq!(e.field, "hash_policy[0]");
        let e = err(&[p(
            PolicySpecifier::QueryParameter(QueryParameter { name: "".into() }),
            false,
        )]);
        assert_eq!(e.field, "hash_policy[0].query_parameter.name");
    }

    #[test]
    fn only_one_cookie_may_be_generated() {
        // Two cookie policies are fine while at most one has a ttl.
        assert!(
            compile_hash_policies(&[cookie_policy("a", Some(10)), cookie_policy("b", None)])
                .is_ok()
        );
        let e = err(&[cookie_policy("a", Some(10)), cookie_policy("b", Some(0))]);
        assert_eq!(e.field, "hash_policy[1].cookie.ttl");
    }

    #[test]
    fn regex_rewrite_substitution_is_translated() {
        assert_eq!(replacement(r"\1-\0", 2).as_deref(), Ok("${1}-${0}"));
        assert_eq!(replacement(r"a\\b$", 1).as_deref(), Ok(r"a\b$$"));
        assert!(replacement(r"\2", 2).is_err());
        assert!(replacement(r"\n", 1).is_err());

        let rewrite = |regex: &str, substitution: &str| {
            p(
                PolicySpecifier::Header(Header {
                    header_name: ":path".into(),
                    regex_rewrite: Some(RegexMatchAndSubstitute {
                        pattern: Some(RegexMatcher {
                            regex: regex.into(),
                            ..Default::default()
                        }),
                        substitution: substitution.into(),
                    }),
                }),
                false,
            )
        };
        let compiled = compile_hash_policies(&[rewrite("^/(\\w+)/.*", "\\1")]).expect("valid");
        let HashKind::Header {
            rewrite: Some(rw), ..
        } = &compiled[0].kind
        else {
            panic!("expected a header policy with a rewrite");
        };
        assert_eq!(
            rw.regex.replace_all("/users/7", rw.replacement.as_str()),
            "users"
        );
        assert_eq!(
            err(&[rewrite("(", "")]).field,
            "hash_policy[0].header.regex_rewrite.pattern.regex"
        );
        assert_eq!(
            err(&[rewrite("a", "\\1")]).field,
            "hash_policy[0].header.regex_rewrite.substitution"
        );
    }
}
