//! The connection manager's path normalization (`normalize_path`, `merge_slashes`,
//! `path_with_escaped_slashes_action`), done before the filters and routing see the request
//! and kept for the upstream, in Envoy's order: escaped slashes first, then normalization,
//! then merging slashes (so `%2F` decoded into `//` is merged too).
//!
//! Normalization is RFC 3986's syntax-based one (§6.2.2) as Envoy applies it, checked against
//! Envoy 1.40 on the same paths: percent-encodings of unreserved characters are decoded (`%7E`
//! is `~`, `%2e` is `.`), other encodings are kept as written (case included), and `.` and
//! `..` segments are removed (§5.2.4). Like a browser, Envoy also takes `\` for `/` and
//! percent-encodes what may not appear in a path (space, `"`, `<`, `>`, `^`, `` ` ``, `{`,
//! `|`, `}`, control and non-ASCII bytes). A `%` without two hex digits after it is kept as it
//! is; `%00` makes the request answered 400. The query is never touched.

use crate::config::{EscapedSlashes, PathNormalization};

/// The request's path is refused: malformed, or with an escaped slash where they are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRejected;

/// The normalized `path_and_query`; `None` when nothing changes (nearly every request).
pub fn normalize(
    path_and_query: &str,
    opts: &PathNormalization,
) -> Result<Option<String>, PathRejected> {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    // `*` (OPTIONS) and anything else that is not an absolute path is left alone.
    if !path.starts_with('/') {
        return Ok(None);
    }
    let mut out = std::borrow::Cow::Borrowed(path);
    if opts.escaped_slashes != EscapedSlashes::Keep && has_escaped_slash(&out) {
        if opts.escaped_slashes == EscapedSlashes::Reject {
            return Err(PathRejected);
        }
        out = unescape_slashes(&out).into();
    }
    if opts.normalize {
        if out.bytes().any(needs_canonical_form) {
            out = canonical_bytes(&out)?.into();
        }
        if has_dot_segment(&out) {
            out = remove_dot_segments(&out).into();
        }
    }
    if opts.merge_slashes && out.contains("//") {
        out = merge_slashes(&out).into();
    }
    Ok(match out {
        std::borrow::Cow::Borrowed(_) => None,
        std::borrow::Cow::Owned(p) => Some(p + query),
    })
}

fn escaped_slash_at(b: &[u8], i: usize) -> bool {
    b[i] == b'%'
        && i + 2 < b.len()
        && matches!(
            (b[i + 1], b[i + 2].to_ascii_uppercase()),
            (b'2', b'F') | (b'5', b'C')
        )
}

fn has_escaped_slash(path: &str) -> bool {
    let b = path.as_bytes();
    (0..b.len()).any(|i| escaped_slash_at(b, i))
}

/// `%2F` to `/` and `%5C` to `\`, either case.
fn unescape_slashes(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if escaped_slash_at(b, i) {
            out.push(if b[i + 1] == b'2' { '/' } else { '\\' });
            i += 3;
        } else {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'%' {
                i += 1;
            }
            out.push_str(&path[start..i]);
        }
    }
    out
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// Bytes a path may not carry as they are.
fn must_be_escaped(c: u8) -> bool {
    !c.is_ascii_graphic() || matches!(c, b'"' | b'<' | b'>' | b'^' | b'`' | b'{' | b'|' | b'}')
}

fn needs_canonical_form(c: u8) -> bool {
    c == b'%' || c == b'\\' || must_be_escaped(c)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Unreserved characters decoded, `\` as `/`, forbidden bytes encoded; other encodings kept
/// as written. `%00` is refused.
fn canonical_bytes(path: &str) -> Result<String, PathRejected> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        match c {
            b'%' => {
                let decoded = match (
                    b.get(i).copied().and_then(hex),
                    b.get(i + 1).copied().and_then(hex),
                ) {
                    (Some(hi), Some(lo)) => hi << 4 | lo,
                    // Not an encoding: kept as it came.
                    _ => {
                        out.push(b'%');
                        continue;
                    }
                };
                if decoded == 0 {
                    return Err(PathRejected);
                }
                if is_unreserved(decoded) {
                    out.push(decoded);
                } else {
                    out.extend_from_slice(&b[i - 1..i + 2]);
                }
                i += 2;
            }
            b'\\' => out.push(b'/'),
            c if must_be_escaped(c) => {
                out.extend_from_slice(&[b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
            }
            c => out.push(c),
        }
    }
    // Every byte out is ASCII.
    String::from_utf8(out).map_err(|_| PathRejected)
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}

/// RFC 3986 §5.2.4 for an absolute path: `.` goes, `..` takes the segment before it along (never
/// above the root), and a path ending in either keeps its trailing slash.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, s) in segments.into_iter().enumerate() {
        match s {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if i == last {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut previous_slash = false;
    for c in path.chars() {
        if c == '/' && previous_slash {
            continue;
        }
        previous_slash = c == '/';
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(
        normalize: bool,
        merge_slashes: bool,
        escaped_slashes: EscapedSlashes,
    ) -> PathNormalization {
        PathNormalization {
            normalize,
            merge_slashes,
            escaped_slashes,
        }
    }

    fn run(path: &str, o: PathNormalization) -> Result<String, PathRejected> {
        normalize(path, &o).map(|p| p.unwrap_or_else(|| path.to_string()))
    }

    #[test]
    fn rfc_3986_dot_segments() {
        let o = opts(true, false, EscapedSlashes::Keep);
        for (input, want) in [
            ("/a/b/c/./../../g", "/a/g"),
            ("/a/..", "/"),
            ("/a/.", "/a/"),
            ("/..", "/"),
            ("/../../x", "/x"),
            ("/a//../b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/", "/"),
            ("/a/./b/../c?x=/../y", "/a/c?x=/../y"),
            ("/..a/b..", "/..a/b.."),
        ] {
            assert_eq!(run(input, o).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn percent_encoding_is_normalized_before_dot_segments() {
        let o = opts(true, false, EscapedSlashes::Keep);
        assert_eq!(run("/a/%2e%2E/b", o).unwrap(), "/b");
        assert_eq!(run("/a/.%2e/b", o).unwrap(), "/b");
        assert_eq!(run("/a%2e", o).unwrap(), "/a.");
        assert_eq!(run("/%7e%41%2d", o).unwrap(), "/~A-");
        // Other encodings are kept as written; `..%2f` is one segment, not a dot segment.
        assert_eq!(run("/x%3a%2f", o).unwrap(), "/x%3a%2f");
        assert_eq!(run("/a/%2e%2e%2fb", o).unwrap(), "/a/..%2fb");
        assert_eq!(run("/a%2Fb/../c", o).unwrap(), "/c");
        assert_eq!(run("/caf%C3%A9", o).unwrap(), "/caf%C3%A9");
        // Not encodings: kept.
        assert_eq!(run("/a%2", o).unwrap(), "/a%2");
        assert_eq!(run("/a%zz", o).unwrap(), "/a%zz");
        assert_eq!(run("/a%", o).unwrap(), "/a%");
        assert_eq!(run("/a%00b", o), Err(PathRejected));
    }

    #[test]
    fn backslashes_are_slashes_and_forbidden_bytes_are_encoded() {
        let o = opts(true, false, EscapedSlashes::Keep);
        assert_eq!(run("/a\\..\\b", o).unwrap(), "/b");
        assert_eq!(
            run("/a\"b|c^d`e{f}<g>", o).unwrap(),
            "/a%22b%7Cc%5Ed%60e%7Bf%7D%3Cg%3E"
        );
        assert_eq!(run("/café", o).unwrap(), "/caf%C3%A9");
        assert_eq!(
            run("/a'b[c]!$&()*+,;=:@", o).unwrap(),
            "/a'b[c]!$&()*+,;=:@"
        );
        // `%5C` is an encoding like any other.
        assert_eq!(run("/a%5c..%5cb", o).unwrap(), "/a%5c..%5cb");
    }

    #[test]
    fn an_unchanged_path_is_not_copied() {
        let o = opts(true, true, EscapedSlashes::Unescape);
        assert_eq!(normalize("/api/v1/items?id=3", &o), Ok(None));
        assert_eq!(normalize("*", &o), Ok(None));
    }

    #[test]
    fn merge_slashes_alone_keeps_dot_segments() {
        let o = opts(false, true, EscapedSlashes::Keep);
        assert_eq!(run("//a///b/../c//?q=//", o).unwrap(), "/a/b/../c/?q=//");
    }

    #[test]
    fn escaped_slashes_kept_rejected_or_unescaped() {
        let keep = opts(true, false, EscapedSlashes::Keep);
        assert_eq!(run("/a%2fb", keep).unwrap(), "/a%2fb");
        let reject = opts(false, false, EscapedSlashes::Reject);
        assert_eq!(run("/a%2Fb", reject), Err(PathRejected));
        assert_eq!(run("/a%5cb", reject), Err(PathRejected));
        assert_eq!(run("/a/b?x=%2F", reject).unwrap(), "/a/b?x=%2F");
        let unescape = opts(true, true, EscapedSlashes::Unescape);
        assert_eq!(run("/a%2F%2Fb%5Cc", unescape).unwrap(), "/a/b/c");
        assert_eq!(run("/a/b%2F..%2Fc", unescape).unwrap(), "/a/c");
    }
}
