//! The Prometheus text format, written straight from perf's metric core into one `String`.
//!
//! The same bytes as the `prometheus` crate's `TextEncoder` gives for the same families, at a
//! fraction of its cost: each series' label block is escaped once, bucket bounds are formatted
//! once per render, and counts are written as integers.

use std::fmt::Write;

use crate::metrics::reading::{FamilyReading, Kind, Value};

/// Formats families one after another, keeping what can be reused between them.
#[derive(Default)]
pub(crate) struct TextWriter {
    bounds: BoundCache,
    labels: String,
}

impl TextWriter {
    /// Appends `family` to `out` (nothing for a family without series, as `gather` drops it).
    pub fn family(&mut self, family: &FamilyReading, out: &mut String) {
        if family.series.is_empty() {
            return;
        }
        let name = family.name;
        if !family.help.is_empty() {
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            escape(out, family.help, false);
            out.push('\n');
        }
        out.push_str("# TYPE ");
        out.push_str(name);
        out.push_str(match family.kind {
            Kind::Counter => " counter\n",
            Kind::Gauge => " gauge\n",
            Kind::Histogram => " histogram\n",
        });
        for series in &family.series {
            self.labels.clear();
            for (i, (label, value)) in series.labels.iter().enumerate() {
                if i > 0 {
                    self.labels.push(',');
                }
                self.labels.push_str(label);
                self.labels.push_str("=\"");
                escape(&mut self.labels, value, true);
                self.labels.push('"');
            }
            let line = Line {
                name,
                labels: &self.labels,
            };
            match &series.value {
                Value::Counter(count) => line.count("", None, *count, out),
                Value::Gauge(value) => line.float("", None, *value, out),
                Value::Histogram {
                    buckets,
                    count,
                    sum,
                } => {
                    for &(bound, cumulative) in buckets {
                        let le = self.bounds.text(bound);
                        line.count("_bucket", Some(("le", le)), cumulative, out);
                    }
                    line.count("_bucket", Some(("le", "+Inf")), *count, out);
                    line.float("_sum", None, *sum, out);
                    line.count("_count", None, *count, out);
                }
            }
        }
    }
}

/// One series' sample lines.
struct Line<'a> {
    name: &'a str,
    labels: &'a str,
}

impl Line<'_> {
    fn start(&self, suffix: &str, extra: Option<(&str, &str)>, out: &mut String) {
        out.push_str(self.name);
        out.push_str(suffix);
        if self.labels.is_empty() && extra.is_none() {
            out.push(' ');
            return;
        }
        out.push('{');
        out.push_str(self.labels);
        if let Some((name, value)) = extra {
            if !self.labels.is_empty() {
                out.push(',');
            }
            out.push_str(name);
            out.push_str("=\"");
            escape(out, value, true);
            out.push('"');
        }
        out.push_str("} ");
    }

    fn float(&self, suffix: &str, extra: Option<(&str, &str)>, value: f64, out: &mut String) {
        self.start(suffix, extra, out);
        let _ = writeln!(out, "{value}");
    }

    /// A count: the same text as the float it converts to, below 2^53, without float formatting.
    fn count(&self, suffix: &str, extra: Option<(&str, &str)>, value: u64, out: &mut String) {
        if value >= 1 << 53 {
            return self.float(suffix, extra, value as f64, out);
        }
        self.start(suffix, extra, out);
        let _ = writeln!(out, "{value}");
    }
}

/// Bucket bounds as text, formatted once per render: a registry has only a few dozen distinct
/// bounds, repeated on every series.
#[derive(Default)]
struct BoundCache(Vec<(u64, String)>);

impl BoundCache {
    fn text(&mut self, bound: f64) -> &str {
        let bits = bound.to_bits();
        let index = match self.0.iter().position(|(b, _)| *b == bits) {
            Some(index) => index,
            None => {
                self.0.push((bits, bound.to_string()));
                self.0.len() - 1
            }
        };
        &self.0[index].1
    }
}

/// Escapes `\` and newlines (and `"` in label values) as the text format wants.
fn escape(out: &mut String, value: &str, quotes: bool) {
    let special = |c: char| c == '\\' || c == '\n' || (quotes && c == '"');
    if !value.contains(special) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}
