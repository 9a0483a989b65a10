//! Is a regex safe to send to every proxy? weftd answers before anything is pushed, so that a
//! proxy never has to NACK a whole route configuration for one team's bad regex.
//!
//! Two engines read the regexes weftd sends: Envoy compiles them with RE2, weft-proxy with the
//! Rust `regex` crate (anchored as `^(?:...)$`, on bytes). A regex is accepted only when both
//! would compile it *and* both would give it the same meaning. Three checks, in order:
//!
//! 1. Istio's own rules: not empty, at most [`MAX_LENGTH`] characters.
//! 2. A scan for what one engine takes and the other refuses or reads differently
//!    ([`scan`]): look-around, atomic groups and backreferences (neither engine; named for a
//!    clear message), possessive or doubled repetition operators (`a*+`, `a{2}+`: RE2 refuses,
//!    Rust reads them as nested repetition), counts above 1000 and nested counts whose product
//!    is above 1000 (RE2 refuses), the flags `u`, `x` and `R` (Rust only), nested classes and
//!    class set operations (`[[a]]`, `[a&&b]`, `[a--b]`, `[a~~b]`: RE2 reads `[` `&` `-` `~`
//!    as literals), `\u`/`\U` escapes, `\<`, `\>` and `\b{...}` (word boundaries to Rust,
//!    literals to RE2), and `\p{...}` names RE2 does not know.
//! 3. Compiling with the Rust crate under a size limit ([`SIZE_LIMIT`]) that stands in for
//!    Envoy's RE2 program-size limit. Whatever Rust refuses besides (`\Q...\E`, `\C`, octal
//!    escapes) is refused with Rust's own reason.

mod unicode_names;

use regex::bytes::RegexBuilder;
use std::fmt;
use unicode_names::{GENERAL_CATEGORIES, SCRIPTS};

/// Istio's validation refuses a regex longer than this: it cannot measure RE2's program size
/// from Go, so it bounds the length instead, and raises Envoy's program-size limit to 32768.
pub const MAX_LENGTH: usize = 1024;

/// RE2 refuses a counted repetition above this, and nested counted repetitions whose counts
/// multiply to more than this.
const MAX_REPEAT: u64 = 1000;

/// The bound on the compiled size, in bytes of the Rust crate's program, standing in for
/// Envoy's limit on RE2's program size (instructions).
///
/// Envoy refuses a regex whose RE2 program is larger than the runtime value
/// `re2.max_program_size.error_level`: 100 by default, which istiod raises to 32768 in the
/// bootstrap it gives every Envoy (and then relies on its 1024-character limit). Weft follows
/// istiod: nothing weftd accepts may exceed 32768 instructions in Envoy.
///
/// The two sizes are not in the same unit, so the bound was calibrated by compiling the same
/// patterns with both: Envoy 1.40 (`envoy --mode validate`, whose error names the program
/// size) and the Rust crate (the smallest `size_limit` that compiles the anchored pattern).
/// Per RE2 instruction the Rust program takes 32 bytes for literals and `[a-zA-Z0-9_]`, 45-72
/// for alternations and small classes, and far more where Rust's classes span all of Unicode
/// and Envoy's RE2 does not: ~230 for `\s`, ~500 for `.` and `[^/]`, ~960 for `(?s:.)`,
/// thousands for `\d`, `\w` and `\pN`. Since the Rust program never spends less than 32
/// bytes on an instruction, a program within 32768 x 32 bytes = 1 MiB is within Envoy's 32768
/// instructions, whatever the pattern; and 1 MiB is far below weft-proxy's own limit (the
/// crate's default, 10 MiB). The price is paid by Unicode-wide classes: `.{1000}` fits, `\w{21}`
/// does not, and `[a-zA-Z0-9_]` or `[0-9]` (which is what RE2's `\w` and `\d` mean) cost what
/// Envoy pays.
pub const SIZE_LIMIT: usize = 1 << 20;

/// Why a regex is refused; displays as a sentence for a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexProblem(String);

impl fmt::Display for RegexProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn problem(message: impl Into<String>) -> Result<(), RegexProblem> {
    Err(RegexProblem(message.into()))
}

/// Checks that `pattern` compiles, means the same, and is small enough for RE2 (Envoy) and
/// for the Rust crate (weft-proxy).
pub fn check(pattern: &str) -> Result<(), RegexProblem> {
    if pattern.is_empty() {
        return problem("a regex must not be empty");
    }
    let length = pattern.chars().count();
    if length > MAX_LENGTH {
        return problem(format!(
            "the regex is {length} characters long; Istio allows at most {MAX_LENGTH}"
        ));
    }
    scan(pattern)?;
    compile(pattern)
}

fn compile(pattern: &str) -> Result<(), RegexProblem> {
    let anchored = format!("^(?:{pattern})$");
    let Err(err) = RegexBuilder::new(&anchored).size_limit(SIZE_LIMIT).build() else {
        return Ok(());
    };
    if let regex::Error::CompiledTooBig(_) = err {
        return problem(format!(
            "the regex is too complex: its compiled program exceeds {} MiB, which stands for \
             Envoy's RE2 program-size limit (\\d, \\w and \\s are Unicode classes in \
             weft-proxy and cost far more than [0-9] or [a-zA-Z0-9_])",
            SIZE_LIMIT >> 20
        ));
    }
    // The crate's message spans several lines (pattern, caret, reason); the last says why.
    let text = err.to_string();
    let why = text
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .trim_start_matches("error: ");
    problem(format!("{why} (weft-proxy's regex engine refuses it)"))
}

/// Walks the pattern once, refusing the constructs listed in the module documentation.
fn scan(pattern: &str) -> Result<(), RegexProblem> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut s = Scanner {
        chars: &chars,
        at: 0,
        groups: vec![Group::default()],
        last: Last::Nothing,
    };
    while let Some(c) = s.peek(0) {
        match c {
            '\\' => {
                s.escape()?;
                s.atom(1);
            }
            '[' => {
                s.class()?;
                s.atom(1);
            }
            '(' => s.open_group()?,
            ')' => s.close_group(),
            '|' => {
                s.at += 1;
                s.last = Last::Nothing;
            }
            '*' | '+' | '?' => {
                s.at += 1;
                s.repetition(c, None)?;
            }
            '{' => match counted(&chars[s.at..]) {
                Some((len, count)) => {
                    let text: String = chars[s.at..s.at + len].iter().collect();
                    s.at += len;
                    s.repetition('{', Some((count, text)))?;
                }
                // RE2 reads a brace that is not a count as a literal; compiling decides
                // whether Rust agrees.
                None => {
                    s.at += 1;
                    s.atom(1);
                }
            },
            _ => {
                s.at += 1;
                s.atom(1);
            }
        }
    }
    Ok(())
}

/// What came last, for the repetition rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Start of the pattern, of a group, or after `|`.
    Nothing,
    /// Something a repetition applies to, with the product of the counted repetitions inside
    /// it (1 when none).
    Atom(u64),
    /// A repetition operator; `lazy` once its `?` suffix has been seen.
    Repetition { lazy: bool },
}

#[derive(Debug, Default)]
struct Group {
    /// The largest product of nested counts seen so far in this group.
    weight: u64,
}

struct Scanner<'a> {
    chars: &'a [char],
    at: usize,
    groups: Vec<Group>,
    last: Last,
}

impl Scanner<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn starts_with(&self, text: &str) -> bool {
        let rest = self.chars.get(self.at..).unwrap_or(&[]);
        text.chars().zip(rest).filter(|(a, b)| a == *b).count() == text.chars().count()
    }

    fn atom(&mut self, weight: u64) {
        if let Some(group) = self.groups.last_mut() {
            group.weight = group.weight.max(weight);
        }
        self.last = Last::Atom(weight);
    }

    /// `op` was just read (`{` for a counted repetition, with its count and text).
    fn repetition(&mut self, op: char, count: Option<(u64, String)>) -> Result<(), RegexProblem> {
        match self.last {
            Last::Repetition { lazy: false } if op == '?' => {
                self.last = Last::Repetition { lazy: true };
                Ok(())
            }
            Last::Repetition { .. } => {
                let shown = count.map_or_else(|| op.to_string(), |(_, text)| text);
                problem(format!(
                    "a repetition operator ({shown}) right after another one: RE2 refuses \
                     possessive and doubled operators such as a*+ or a{{2}}+, and weft-proxy \
                     would read them as nested repetitions; group explicitly, as in (?:a*)+"
                ))
            }
            // A leading operator: both engines refuse it, and compiling says so.
            Last::Nothing => {
                self.last = Last::Repetition { lazy: false };
                Ok(())
            }
            Last::Atom(inner) => {
                if let Some((count, text)) = count {
                    if count > MAX_REPEAT {
                        return problem(format!(
                            "repetition count {text} is above {MAX_REPEAT}, RE2's maximum"
                        ));
                    }
                    let weight = inner.saturating_mul(count.max(1));
                    if weight > MAX_REPEAT {
                        return problem(format!(
                            "nested counted repetitions ({text} around a repetition) repeat \
                             {weight} times in all; RE2 allows at most {MAX_REPEAT}"
                        ));
                    }
                    if let Some(group) = self.groups.last_mut() {
                        group.weight = group.weight.max(weight);
                    }
                }
                self.last = Last::Repetition { lazy: false };
                Ok(())
            }
        }
    }

    fn open_group(&mut self) -> Result<(), RegexProblem> {
        self.at += 1;
        if self.peek(0) == Some('?') {
            self.at += 1;
            self.group_kind()?;
        }
        self.groups.push(Group::default());
        self.last = Last::Nothing;
        Ok(())
    }

    fn close_group(&mut self) {
        self.at += 1;
        // An unbalanced `)` is left for compiling to report.
        if self.groups.len() > 1 {
            let inner = self.groups.pop().map_or(1, |g| g.weight.max(1));
            self.atom(inner);
        } else {
            self.atom(1);
        }
    }

    /// After `(?`: named groups, flags, and the Perl extensions neither engine has.
    fn group_kind(&mut self) -> Result<(), RegexProblem> {
        if self.starts_with("=")
            || self.starts_with("!")
            || self.starts_with("<=")
            || self.starts_with("<!")
        {
            return problem(
                "look-ahead and look-behind ((?=, (?!, (?<=, (?<!) are not supported by RE2",
            );
        }
        if self.starts_with(">") {
            return problem("atomic groups ((?>...)) are not supported by RE2");
        }
        if self.starts_with("P<") || self.starts_with("<") {
            // A named group: both engines take (?P<name>...) and (?<name>...).
            while let Some(c) = self.peek(0) {
                self.at += 1;
                if c == '>' {
                    break;
                }
            }
            return Ok(());
        }
        // Flags, up to `:` or `)`.
        while let Some(c) = self.peek(0) {
            match c {
                ':' => {
                    self.at += 1;
                    return Ok(());
                }
                ')' => return Ok(()),
                'u' | 'x' | 'R' => {
                    return problem(format!(
                        "the flag {c} is not an RE2 flag (RE2 has i, m, s and U)"
                    ))
                }
                _ => self.at += 1,
            }
        }
        Ok(())
    }

    /// At a backslash outside a class.
    fn escape(&mut self) -> Result<(), RegexProblem> {
        self.at += 1;
        let Some(c) = self.peek(0) else {
            // A trailing backslash: compiling reports it.
            return Ok(());
        };
        self.at += 1;
        match c {
            '1'..='9' => problem(format!(
                "\\{c} is a backreference, which RE2 does not support (for a character \
                 code, write \\x{{...}})"
            )),
            'Z' => problem("\\Z is not supported by RE2: use \\z (or $)"),
            'u' | 'U' => problem(format!(
                "\\{c} escapes are not RE2: write the code point as \\x{{...}}"
            )),
            '<' | '>' => problem(format!(
                "\\{c} is a word boundary to weft-proxy but a literal {c} to RE2: write {c} \
                 unescaped for the character, \\b for a boundary"
            )),
            'b' | 'B' if self.peek(0) == Some('{') => problem(format!(
                "\\{c}{{...}} word boundaries are not RE2: use \\b or \\B"
            )),
            'p' | 'P' => self.property(),
            'x' if self.peek(0) == Some('{') => {
                self.skip_braces();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// After `\p` or `\P`: the name must be one RE2 knows.
    fn property(&mut self) -> Result<(), RegexProblem> {
        let name: String = match self.peek(0) {
            Some('{') => {
                let start = self.at + 1;
                self.skip_braces();
                let end = self.at.saturating_sub(1).max(start);
                self.chars[start..end].iter().collect()
            }
            Some(c) => {
                self.at += 1;
                c.to_string()
            }
            // `\p` at the end: compiling reports it.
            None => return Ok(()),
        };
        // RE2 also takes `\p{^Greek}`; weft-proxy does not, and compiling says so.
        let bare = name.strip_prefix('^').unwrap_or(&name);
        if bare == "Any" || GENERAL_CATEGORIES.contains(&bare) || SCRIPTS.contains(&bare) {
            Ok(())
        } else {
            problem(format!(
                "\\p{{{name}}} is not a Unicode class RE2 knows: RE2 takes general categories \
                 (L, Lu, Nd, ...), scripts spelt as in Unicode (Greek, Old_Italic) and Any"
            ))
        }
    }

    /// Skips `{...}` (the position is at `{`); an unclosed brace is left for compiling.
    fn skip_braces(&mut self) {
        while let Some(c) = self.peek(0) {
            self.at += 1;
            if c == '}' {
                break;
            }
        }
    }

    /// At `[`: walks the class to its closing `]`.
    fn class(&mut self) -> Result<(), RegexProblem> {
        self.at += 1;
        if self.peek(0) == Some('^') {
            self.at += 1;
        }
        // A `]` first in the class is a literal in both engines.
        if self.peek(0) == Some(']') {
            self.at += 1;
        }
        while let Some(c) = self.peek(0) {
            match c {
                ']' => {
                    self.at += 1;
                    return Ok(());
                }
                '\\' => {
                    self.at += 1;
                    match self.peek(0) {
                        Some('p' | 'P') => {
                            self.at += 1;
                            self.property()?;
                        }
                        Some('u' | 'U') => {
                            return problem(
                                "\\u escapes are not RE2: write the code point as \\x{...}",
                            )
                        }
                        Some('x') if self.peek(1) == Some('{') => {
                            self.at += 1;
                            self.skip_braces();
                        }
                        Some(_) => self.at += 1,
                        None => {}
                    }
                }
                '[' if self.peek(1) == Some(':') => {
                    // A POSIX class, [:alpha:], which both engines take.
                    while let Some(c) = self.peek(0) {
                        self.at += 1;
                        if c == ']' {
                            break;
                        }
                    }
                }
                '[' => {
                    return problem(
                        "a [ inside a class opens a nested class for weft-proxy but is a literal \
                         for RE2: escape it as \\[",
                    )
                }
                '&' | '-' | '~' if self.peek(1) == Some(c) => {
                    return problem(format!(
                        "{c}{c} inside a class is a set operation for weft-proxy but literal \
                         characters for RE2: escape them, as in \\{c}"
                    ))
                }
                _ => self.at += 1,
            }
        }
        // Unclosed: compiling reports it.
        Ok(())
    }
}

/// A counted repetition at the start of `chars` (`{n}`, `{n,}`, `{n,m}`): its length in
/// characters and the count RE2 weighs it by (the maximum, or the minimum when unbounded).
fn counted(chars: &[char]) -> Option<(usize, u64)> {
    let close = chars.iter().position(|c| *c == '}')?;
    let inner: String = chars[1..close].iter().collect();
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().unwrap_or(u64::MAX))
    };
    let count = match inner.split_once(',') {
        None => number(&inner)?,
        Some((min, "")) => number(min)?,
        Some((min, max)) => {
            number(min)?;
            number(max)?
        }
    };
    Some((close + 1, count))
}

#[cfg(test)]
mod tests;
