//! The report: one markdown table per measurement, every figure with its ratio to Envoy's and
//! to the direct connection's, and the same data as JSON for the smoke test.

use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum Unit {
    /// Requests per second.
    Rps,
    /// Microseconds.
    Micros,
    Millis,
    Seconds,
    Mib,
    /// Percent of one core.
    Percent,
}

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub header: String,
    pub unit: Unit,
    /// Print "×E" (ratio to the Envoy row) next to each figure.
    pub vs_envoy: bool,
    /// Print "×D" (ratio to the direct row).
    pub vs_direct: bool,
}

impl Column {
    pub fn new(header: &str, unit: Unit) -> Column {
        Column {
            header: header.to_string(),
            unit,
            vs_envoy: false,
            vs_direct: false,
        }
    }

    /// With ratios to Envoy and to direct.
    pub fn both(header: &str, unit: Unit) -> Column {
        Column {
            vs_envoy: true,
            vs_direct: true,
            ..Column::new(header, unit)
        }
    }

    /// With the ratio to Envoy only (where direct has no such figure, e.g. proxy CPU).
    pub fn vs_envoy(header: &str, unit: Unit) -> Column {
        Column {
            vs_envoy: true,
            ..Column::new(header, unit)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub label: String,
    pub cells: Vec<Option<f64>>,
    /// Errors, or why there is no figure.
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub id: String,
    pub title: String,
    /// How it was measured, in one or two sentences under the title.
    pub about: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

pub const ENVOY_ROW: &str = "Envoy";
pub const DIRECT_ROW: &str = "direct";

impl Table {
    pub fn new(id: &str, title: &str, about: &str, columns: Vec<Column>) -> Table {
        Table {
            id: id.to_string(),
            title: title.to_string(),
            about: about.to_string(),
            columns,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, label: &str, cells: Vec<Option<f64>>, note: impl Into<String>) {
        self.rows.push(Row {
            label: label.to_string(),
            cells,
            note: note.into(),
        });
    }

    pub fn has_row(&self, label: &str) -> bool {
        self.rows.iter().any(|r| r.label == label)
    }

    /// A row with no figures, saying why.
    pub fn missing(&mut self, label: &str, why: &str) {
        let cells = vec![None; self.columns.len()];
        self.row(label, cells, format!("n/a: {why}"));
    }

    fn reference(&self, label: &str, col: usize) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.label == label)
            .and_then(|r| r.cells.get(col).copied().flatten())
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        if !self.about.is_empty() {
            let _ = writeln!(out, "{}\n", self.about);
        }
        out.push_str("| |");
        for c in &self.columns {
            let _ = write!(out, " {} |", c.header);
        }
        out.push_str(" notes |\n|---|");
        for _ in &self.columns {
            out.push_str("---:|");
        }
        out.push_str("---|\n");
        let mut any_ratio = false;
        for r in &self.rows {
            let _ = write!(out, "| {} |", r.label);
            for (i, c) in self.columns.iter().enumerate() {
                let cell = match r.cells.get(i).copied().flatten() {
                    None => "—".to_string(),
                    Some(v) => {
                        let mut s = format_value(v, c.unit);
                        let mut ratios = Vec::new();
                        if c.vs_envoy && r.label != ENVOY_ROW {
                            if let Some(e) = self.reference(ENVOY_ROW, i).filter(|e| *e > 0.0) {
                                ratios.push(format!("{:.2}×E", v / e));
                            }
                        }
                        if c.vs_direct && r.label != DIRECT_ROW {
                            if let Some(d) = self.reference(DIRECT_ROW, i).filter(|d| *d > 0.0) {
                                ratios.push(format!("{:.2}×D", v / d));
                            }
                        }
                        if !ratios.is_empty() {
                            any_ratio = true;
                            let _ = write!(s, " ({})", ratios.join(" "));
                        }
                        s
                    }
                };
                let _ = write!(out, " {cell} |");
            }
            let _ = writeln!(out, " {} |", r.note.replace('|', "/").replace('\n', " "));
        }
        if any_ratio {
            out.push_str("\n×E: ratio to Envoy's figure; ×D: ratio to the direct connection's.\n");
        }
        out
    }
}

pub fn format_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Rps => thousands(v.round() as i64),
        Unit::Micros => {
            if v.abs() >= 10_000.0 {
                format!("{:.1} ms", v / 1000.0)
            } else {
                format!("{} µs", v.round() as i64)
            }
        }
        Unit::Millis => format!("{v:.1} ms"),
        Unit::Seconds => format!("{v:.2} s"),
        Unit::Mib => format!("{v:.1} MiB"),
        Unit::Percent => format!("{v:.0}%"),
    }
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The headline figures, one line each, picked from the tables: (table id, column, label).
const HEADLINES: [(&str, usize, &str); 13] = [
    (
        "throughput-h1-64b-c16",
        0,
        "Max throughput, HTTP/1.1 64 B, 16 conns (req/s)",
    ),
    (
        "throughput-h1-16k-c128",
        0,
        "Max throughput, HTTP/1.1 16 KiB, 128 conns (req/s)",
    ),
    ("throughput-h2", 0, "Max throughput, HTTP/2 16×16 (req/s)"),
    ("throughput-grpc", 0, "Max throughput, gRPC unary (req/s)"),
    ("added-latency", 0, "Added latency p50 at 1,000 req/s"),
    ("added-latency", 2, "Added latency p99 at 1,000 req/s"),
    ("added-latency", 3, "Added latency p99.9 at 1,000 req/s"),
    ("cpu", 0, "CPU per request at 1,000 req/s"),
    ("memory", 0, "RSS idle"),
    ("memory", 1, "RSS with 1,000 connections"),
    (
        "routing-added-latency",
        2,
        "Added latency p99, 10,000 routes",
    ),
    ("routing-memory", 0, "RSS with 10,000 routes"),
    ("xds-push-proxies", 0, "xDS push to one proxy, p50"),
];

/// One table of the headline figures: each contender side by side and weft-proxy ÷ Envoy.
pub fn summary(tables: &[Table]) -> Option<Table> {
    let contenders = [DIRECT_ROW, "weft-proxy", ENVOY_ROW, "HAProxy"];
    let mut lines = Vec::new();
    for (id, col, label) in HEADLINES {
        let Some(t) = tables.iter().find(|t| t.id == id) else {
            continue;
        };
        let Some(c) = t.columns.get(col) else {
            continue;
        };
        let get = |who: &str| {
            t.rows
                .iter()
                .find(|r| r.label == who)
                .and_then(|r| r.cells.get(col).copied().flatten())
        };
        let values: Vec<Option<f64>> = contenders.iter().map(|w| get(w)).collect();
        let ratio = match (values[1], values[2]) {
            (Some(w), Some(e)) if e > 0.0 => Some(w / e),
            _ => None,
        };
        lines.push((label, c.unit, values, ratio));
    }
    if lines.is_empty() {
        return None;
    }
    let mut md = String::from("| | direct | weft-proxy | Envoy | HAProxy | weft-proxy ÷ Envoy |\n|---|---:|---:|---:|---:|---:|\n");
    for (label, unit, values, ratio) in &lines {
        let _ = write!(md, "| {label} |");
        for v in values {
            let _ = write!(
                md,
                " {} |",
                v.map_or("—".to_string(), |v| format_value(v, *unit))
            );
        }
        let _ = writeln!(
            md,
            " {} |",
            ratio.map_or("—".to_string(), |r| format!("{r:.2}"))
        );
    }
    Some(Table {
        id: "summary".into(),
        title: "Summary".into(),
        about: md,
        columns: Vec::new(),
        rows: Vec::new(),
    })
}

/// The whole document: title, how it was run, the machine, then every table.
pub fn document(
    mode: &str,
    machine: &[(String, String)],
    tables: &[Table],
    wall_secs: f64,
) -> String {
    let mut out = String::from("# Weft load benchmark — results\n\n");
    let _ = writeln!(
        out,
        "Mode `{mode}`, run with `benches/run --mode {mode}` (took {wall_secs:.0} s). \
         Each proxy has one worker pinned to core 0; the load generator and the upstream share core 1. \
         See benches/README.md for what each column means.\n"
    );
    out.push_str("## Machine\n\n| | |\n|---|---|\n");
    for (k, v) in machine {
        let _ = writeln!(out, "| {k} | {} |", v.replace('|', "/"));
    }
    out.push('\n');
    if let Some(s) = summary(tables) {
        let _ = writeln!(
            out,
            "## Summary\n\nThe headline figures from the tables below (for throughput higher is better, for everything else lower).\n\n{}",
            s.about
        );
    }
    out.push_str("## Measurements\n\n");
    for t in tables {
        out.push_str(&t.to_markdown());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_to_envoy_and_direct() {
        let mut t = Table::new("t", "T", "", vec![Column::both("rps", Unit::Rps)]);
        t.row("direct", vec![Some(200.0)], "");
        t.row("weft-proxy", vec![Some(100.0)], "");
        t.row("Envoy", vec![Some(50.0)], "");
        t.missing("HAProxy", "not installed");
        let md = t.to_markdown();
        assert!(md.contains("| weft-proxy | 100 (2.00×E 0.50×D) |"), "{md}");
        assert!(md.contains("| Envoy | 50 (0.25×D) |"), "{md}");
        assert!(md.contains("| direct | 200 (4.00×E) |"), "{md}");
        assert!(md.contains("| HAProxy | — | n/a: not installed |"), "{md}");
    }

    #[test]
    fn summary_picks_headlines() {
        let mut t = Table::new(
            "cpu",
            "CPU",
            "",
            vec![Column::vs_envoy("CPU per request", Unit::Micros)],
        );
        t.row("weft-proxy", vec![Some(50.0)], "");
        t.row("Envoy", vec![Some(100.0)], "");
        let s = summary(&[t]).unwrap();
        assert!(
            s.about
                .contains("| CPU per request at 1,000 req/s | — | 50 µs | 100 µs | — | 0.50 |"),
            "{}",
            s.about
        );
    }

    #[test]
    fn formats() {
        assert_eq!(format_value(1234567.4, Unit::Rps), "1,234,567");
        assert_eq!(format_value(950.2, Unit::Micros), "950 µs");
        assert_eq!(format_value(12_500.0, Unit::Micros), "12.5 ms");
    }
}
