//! Which of weftd's log lines `weftctl up` shows in its own output.
//!
//! weftd logs in tracing's default text format, without colours when it writes to a pipe:
//! `2026-01-02T03:04:05.678901Z  INFO weftd::config: reloaded: version 3-2 pushed ...`.
//! Shown are: every line of the configuration's target (loads, reloads, each problem with
//! file:line:col, resource and field), every warning and error, and any line that is not in
//! that format (a panic, a fatal error at startup). The rest stays in the log file.

use weft_control_plane::daemon::CONFIG_LOG_TARGET;

/// The text to show for one weftd log line, or None to leave it in the log only.
pub fn weftd_line(line: &str) -> Option<String> {
    if line.trim().is_empty() {
        return None;
    }
    let Some(parsed) = parse(line) else {
        return Some(line.to_string());
    };
    if parsed.target == CONFIG_LOG_TARGET {
        // Problems already say "error:" or "warning:" after their position.
        return Some(parsed.message.to_string());
    }
    match parsed.level {
        "WARN" => Some(format!("warning: {}", parsed.message)),
        "ERROR" => Some(format!("error: {}", parsed.message)),
        _ => None,
    }
}

struct Line<'a> {
    level: &'a str,
    target: &'a str,
    message: &'a str,
}

/// `<timestamp> <LEVEL> <target>: <message>`; None for anything else.
fn parse(line: &str) -> Option<Line<'_>> {
    let (timestamp, rest) = line.trim_start().split_once(' ')?;
    if !timestamp.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (level, rest) = rest.trim_start().split_once(' ')?;
    if !matches!(level, "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR") {
        return None;
    }
    let (target, message) = rest.trim_start().split_once(": ")?;
    if target.contains(char::is_whitespace) {
        return None;
    }
    Some(Line {
        level,
        target,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_lines_are_shown_as_they_are() {
        assert_eq!(
            weftd_line(
                "2026-01-02T03:04:05.678901Z ERROR weftd::config: r.yaml:3:7: error: \
                 VirtualService default/reviews: spec.http[0].route: weights sum to 90"
            )
            .as_deref(),
            Some(
                "r.yaml:3:7: error: VirtualService default/reviews: spec.http[0].route: \
                 weights sum to 90"
            )
        );
        assert_eq!(
            weftd_line(
                "2026-01-02T03:04:05.678901Z  INFO weftd::config: reloaded: version 3-2 pushed"
            )
            .as_deref(),
            Some("reloaded: version 3-2 pushed")
        );
    }

    #[test]
    fn other_warnings_and_errors_are_shown_with_their_level() {
        assert_eq!(
            weftd_line(
                "2026-01-02T03:04:05.678901Z  WARN weft_control_plane::xds::sotw: NACK node=a"
            )
            .as_deref(),
            Some("warning: NACK node=a")
        );
    }

    #[test]
    fn routine_information_stays_in_the_log() {
        assert_eq!(
            weftd_line(
                "2026-01-02T03:04:05.678901Z  INFO weft_control_plane::daemon: weftd serving"
            ),
            None
        );
        assert_eq!(weftd_line(""), None);
    }

    #[test]
    fn lines_in_no_known_format_are_shown() {
        let fatal = "Error: cannot bind the xDS address 127.0.0.1:15010";
        assert_eq!(weftd_line(fatal).as_deref(), Some(fatal));
    }
}
