//! The connection manager's path normalization (`normalize_path`, `merge_slashes`,
//! `path_with_escaped_slashes_action`), done before the filters and routing see the request
//! and kept for the upstream, in Envoy's order: escaped slashes first, then RFC 3986
//! normalization, then merging slashes (so `%2F` decoded into `//` is merged too).
//!
//! RFC 3986 normalization here is its §6.2.2, syntax-based: percent-encodings of unreserved
//! characters are decoded (`%7E` is `~`, `%2e` is `.`), the others get upper-case hex digits,
//! and `.` and `..` segments are removed (§5.2.4). A `%` not followed by two hex digits makes
//! the path malformed, and the request is answered 400 as Envoy does. The query is never
//! touched.

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
        if out.contains('%') {
            out = normalize_percent_encoding(&out)?.into();
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

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 §6.2.2.1 and §6.2.2.2.
fn normalize_percent_encoding(path: &str) -> Result<String, PathRejected> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathRejected);
        };
        let c = hi << 4 | lo;
        if is_unreserved(c) {
            out.push(c);
        } else {
            out.push(b'%');
            out.push(b[i + 1].to_ascii_uppercase());
            out.push(b[i + 2].to_ascii_uppercase());
        }
        i += 3;
    }
    // Only ASCII bytes were replaced by ASCII bytes, so the text is still UTF-8.
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
        assert_eq!(run("/%7e%41%2d", o).unwrap(), "/~A-");
        assert_eq!(run("/x%3a%2f", o).unwrap(), "/x%3A%2F");
        assert_eq!(run("/caf%C3%A9", o).unwrap(), "/caf%C3%A9");
        assert_eq!(run("/a%2", o), Err(PathRejected));
        assert_eq!(run("/a%zz", o), Err(PathRejected));
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
        assert_eq!(run("/a%2fb", keep).unwrap(), "/a%2Fb");
        let reject = opts(false, false, EscapedSlashes::Reject);
        assert_eq!(run("/a%2Fb", reject), Err(PathRejected));
        assert_eq!(run("/a%5cb", reject), Err(PathRejected));
        assert_eq!(run("/a/b?x=%2F", reject).unwrap(), "/a/b?x=%2F");
        let unescape = opts(true, true, EscapedSlashes::Unescape);
        assert_eq!(run("/a%2F%2Fb%5Cc", unescape).unwrap(), "/a/b\\c");
        assert_eq!(run("/a/b%2F..%2Fc", unescape).unwrap(), "/a/c");
    }
}
