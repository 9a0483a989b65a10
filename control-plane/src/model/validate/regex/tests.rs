use super::*;

fn refused(pattern: &str) -> String {
    match check(pattern) {
        Ok(()) => panic!("{pattern:?} should be refused"),
        Err(problem) => problem.to_string(),
    }
}

fn accepted(pattern: &str) {
    if let Err(problem) = check(pattern) {
        panic!("{pattern:?} should be accepted: {problem}");
    }
}

#[test]
fn everyday_regexes_are_accepted() {
    for p in [
        "/api/v[0-9]+/.*",
        "^/productpage(/.*)?$",
        r".*\.(css|js|png)",
        "(?i)/users/[a-f0-9-]{36}",
        r"\d{3}-\d{4}",
        r"[\w.-]+@[\w.-]+",
        "(?P<id>[0-9]+)/(?<rest>.*)",
        "(?i:chrome|firefox)",
        "a*?b+?c??",
        "[[:alpha:]][[:^digit:]]",
        r"\p{Greek}+\pL\p{Lu}\P{Old_Italic}\p{Any}",
        r"[\p{Nd}a-]",
        "[]a][^]a]",
        r"\x{41}\x41\/\%\z\A\b\B",
        "a{1000}",
        "((a{10}){10}){10}",
        "(a|b){1000}",
        "x{2,}y{0,5}",
        "a|",
        "()",
    ] {
        accepted(p);
    }
}

#[test]
fn constructs_neither_engine_has_are_named() {
    assert!(refused(r"(a)\1").contains("backreference"));
    assert!(refused("(?=a)b").contains("look-ahead"));
    assert!(refused("(?<!a)b").contains("look-behind"));
    assert!(refused("(?>a)").contains("atomic"));
    assert!(refused(r"a\Z").contains(r"\z"));
}

#[test]
fn possessive_and_doubled_operators_are_refused() {
    for p in ["a*+", "a++", "a?+", "a{2}+", "a**", "x*{0}", "a*??"] {
        assert!(refused(p).contains("right after another"), "{p}");
    }
}

#[test]
fn repetition_counts_follow_re2() {
    assert!(refused("a{1001}").contains("above 1000"));
    assert!(refused("a{0,1001}").contains("above 1000"));
    assert!(refused("(a{10}){101}").contains("1010 times"));
    assert!(refused("(?:(a{100})b){20}").contains("2000 times"));
}

#[test]
fn rust_only_syntax_is_refused() {
    assert!(refused("(?x)a b").contains("flag x"));
    assert!(refused("(?-u:a)").contains("flag u"));
    assert!(refused("(?R)a").contains("flag R"));
    assert!(refused("[[a-z]]").contains("nested class"));
    assert!(refused("[a-z&&[^aeiou]]").contains("set operation"));
    assert!(refused("[a&&b]").contains("set operation"));
    assert!(refused("[a--b]").contains("set operation"));
    assert!(refused("[a~~b]").contains("set operation"));
    assert!(refused(r"\u0041").contains(r"\x{"));
    assert!(refused(r"[\U00000041]").contains(r"\x{"));
    assert!(refused(r"\<a\>").contains("word boundary"));
    assert!(refused(r"\b{start}a").contains("word boundaries"));
    assert!(refused(r"\p{greek}").contains("RE2 knows"));
    assert!(refused(r"\p{Letter}").contains("RE2 knows"));
    assert!(refused(r"[\p{Alphabetic}]").contains("RE2 knows"));
    assert!(refused(r"\p{scx=Greek}").contains("RE2 knows"));
    assert!(refused(r"\pX").contains("RE2 knows"));
}

#[test]
fn what_weft_proxy_cannot_compile_is_refused_with_its_reason() {
    assert!(refused("/api/(v1").contains("unclosed group"));
    assert!(refused("[a-").contains("weft-proxy"));
    // RE2 takes these, weft-proxy does not.
    assert!(refused(r"\Qa.b\E").contains("weft-proxy"));
    assert!(refused(r"\0").contains("weft-proxy"));
    assert!(refused(r"\123").contains("backreference"));
    assert!(refused(r"\p{^Greek}").contains("weft-proxy"));
}

#[test]
fn empty_long_and_huge_regexes_are_refused() {
    assert!(refused("").contains("empty"));
    let long = "a".repeat(MAX_LENGTH + 1);
    assert!(refused(&long).contains("1025 characters"));
    accepted(&"a".repeat(MAX_LENGTH));
    // Within RE2's counts, but far beyond the program-size stand-in.
    assert!(refused(r"\w{100}").contains("too complex"));
    assert!(refused(r"(\pL{10}){50}").contains("too complex"));
    // Within the bound: 2004 and 24004 instructions in Envoy, 3004 for the ASCII word class.
    accepted(".{1000}");
    accepted("(?:ab|cd|ef|gh|ij|kl|mn|op|qr|st|uv|wx){1000}");
    accepted("[a-zA-Z0-9_]{1000}");
    // Rust's Unicode \w is what costs: 20 fit, 21 do not.
    accepted(r"\w{20}");
    assert!(refused(r"\w{21}").contains("[a-zA-Z0-9_]"));
}
