//! The Prometheus text format, written straight from perf's metric core into one `String`.
//!
//! The same bytes as the `prometheus` crate's `TextEncoder` gives for the same families, at a
//! fraction of its cost: each series' label block is escaped once, bucket bounds are formatted
//! once per render, and counts are written as integers.

use std::borrow::Cow;
use std::fmt::Write;

use crate::metrics::reading::{ExemplarReading, FamilyReading, Kind, Value};

/// A family's `# HELP` and `# TYPE` lines in the text format; the name its samples take.
pub(super) fn header<'a>(family: &'a FamilyReading, out: &mut String) -> &'a str {
    let name: &str = &family.name;
    if !family.help.is_empty() {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape(out, &family.help, false);
        out.push('\n');
    }
    type_line(out, name, family.kind, "untyped");
    name
}

/// A family's `# TYPE` line; `untyped` is how the format names a family of no known type.
pub(super) fn type_line(out: &mut String, name: &str, kind: Kind, untyped: &str) {
    out.push_str("# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
        Kind::Summary => "summary",
        Kind::Untyped => untyped,
    });
    out.push('\n');
}

/// Calls `sample` with each series of `family`: the [`Line`] its samples start with (`name`, its
/// labels written once into `labels`), and its value.
pub(super) fn each_series(
    labels: &mut String,
    family: &FamilyReading,
    name: &str,
    openmetrics: bool,
    mut sample: impl FnMut(&Line<'_>, &Value),
) {
    for series in &family.series {
        label_block(labels, &series.labels);
        let line = Line {
            name,
            labels,
            openmetrics,
        };
        sample(&line, &series.value);
    }
}

/// `labels` as the text inside a sample's braces: `a="x",b="y"`, values escaped.
pub(super) fn label_block(block: &mut String, labels: &[(Cow<'static, str>, String)]) {
    block.clear();
    for (i, (label, value)) in labels.iter().enumerate() {
        if i > 0 {
            block.push(',');
        }
        block.push_str(label);
        block.push_str("=\"");
        escape(block, value, true);
        block.push('"');
    }
}

/// One series' sample lines.
pub(super) struct Line<'a> {
    pub name: &'a str,
    pub labels: &'a str,
    /// OpenMetrics spells infinities `+Inf` and `-Inf`; the text format as the `prometheus`
    /// crate's `TextEncoder` does (`inf`), for the same bytes.
    pub openmetrics: bool,
}

impl Line<'_> {
    pub fn start(&self, suffix: &str, extra: Option<(&str, &str)>, out: &mut String) {
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

    pub fn float(&self, suffix: &str, extra: Option<(&str, &str)>, value: f64, out: &mut String) {
        self.start(suffix, extra, out);
        if self.openmetrics {
            float(out, value);
        } else {
            let _ = write!(out, "{value}");
        }
        out.push('\n');
    }

    /// A summary's quantile, sum and count samples (the application's families only).
    pub fn summary(
        &self,
        bounds: &mut BoundCache,
        quantiles: &[(f64, f64)],
        count: u64,
        sum: f64,
        out: &mut String,
    ) {
        for &(quantile, value) in quantiles {
            self.float("", Some(("quantile", bounds.text(quantile))), value, out);
        }
        self.float("_sum", None, sum, out);
        self.count("_count", None, count, out);
    }

    /// A counter's or gauge's value: as a count when it is a whole number.
    pub fn number(&self, suffix: &str, extra: Option<(&str, &str)>, value: f64, out: &mut String) {
        if value.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&value) {
            self.count(suffix, extra, value as u64, out)
        } else {
            self.float(suffix, extra, value, out)
        }
    }

    /// One `_bucket` sample, with its exemplar if it has one (OpenMetrics only).
    pub fn bucket(
        &self,
        le: &str,
        count: u64,
        exemplar: Option<ExemplarReading>,
        out: &mut String,
    ) {
        let Some(exemplar) = exemplar else {
            return self.count("_bucket", Some(("le", le)), count, out);
        };
        self.start("_bucket", Some(("le", le)), out);
        let _ = write!(out, "{count} # {{trace_id=\"{}\"}} ", exemplar.trace);
        float(out, exemplar.value);
        let _ = writeln!(out, " {:.3}", exemplar.timestamp);
    }

    /// A count: the same text as the float it converts to, below 2^53, without float formatting.
    pub fn count(&self, suffix: &str, extra: Option<(&str, &str)>, value: u64, out: &mut String) {
        if value >= 1 << 53 {
            return self.float(suffix, extra, value as f64, out);
        }
        self.start(suffix, extra, out);
        let _ = writeln!(out, "{value}");
    }
}

/// A float as Prometheus writes it (`+Inf`, `-Inf`, `NaN`, else Rust's shortest form).
pub(super) fn float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

/// Bucket bounds as text, formatted once per render: a registry has only a few dozen distinct
/// bounds, repeated on every series.
#[derive(Default)]
pub(super) struct BoundCache(Vec<(u64, String)>);

impl BoundCache {
    pub fn text(&mut self, bound: f64) -> &str {
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
pub(super) fn escape(out: &mut String, value: &str, quotes: bool) {
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
