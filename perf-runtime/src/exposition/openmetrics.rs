//! OpenMetrics 1.0 text: what Prometheus asks for first, and the format that carries exemplars.
//!
//! The same series as the text format, with OpenMetrics' rules: a counter family is named without
//! its `_total` (its samples keep it), durations declare `# UNIT … seconds`, help text escapes
//! quotes, infinities are `+Inf`, every histogram bucket carries its latest exemplar
//! (`# {trace_id="…"} value timestamp`), and the exposition ends with `# EOF`. Bucket bounds are
//! written as in the text format, so a Prometheus switching between the two keeps its series.

use std::fmt::Write;

use super::text::{escape, float, label_block, BoundCache, Line};
use crate::metrics::reading::{ExemplarReading, FamilyReading, Kind, Value};

/// The `Content-Type` of OpenMetrics 1.0 text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Formats families one after another, keeping what can be reused between them.
#[derive(Default)]
pub(crate) struct OpenMetricsWriter {
    bounds: BoundCache,
    labels: String,
}

impl OpenMetricsWriter {
    /// Appends `family` to `out` (nothing for a family without series).
    pub fn family(&mut self, family: &FamilyReading, out: &mut String) {
        if family.series.is_empty() {
            return;
        }
        let name = match family.kind {
            Kind::Counter => family.name.strip_suffix("_total").unwrap_or(&family.name),
            _ => &family.name,
        };
        out.push_str("# TYPE ");
        out.push_str(name);
        out.push_str(match family.kind {
            Kind::Counter => " counter\n",
            Kind::Gauge => " gauge\n",
            Kind::Histogram => " histogram\n",
            Kind::Summary => " summary\n",
            Kind::Untyped => " unknown\n",
        });
        if let Some(unit) = family.unit() {
            let _ = writeln!(out, "# UNIT {name} {unit}");
        }
        if !family.help.is_empty() {
            let _ = write!(out, "# HELP {name} ");
            escape(out, &family.help, true);
            out.push('\n');
        }
        for series in &family.series {
            label_block(&mut self.labels, &series.labels);
            let line = Line {
                name,
                labels: &self.labels,
                openmetrics: true,
            };
            match &series.value {
                Value::Counter(value) => line.number("_total", None, *value, out),
                Value::Gauge(value) | Value::Untyped(value) => line.number("", None, *value, out),
                Value::Histogram(histogram) => {
                    let exemplar = |i: usize| histogram.exemplars.get(i).copied().flatten();
                    for (i, &(bound, cumulative)) in histogram.buckets.iter().enumerate() {
                        let le = self.bounds.text(bound);
                        bucket(&line, le, cumulative, exemplar(i), out);
                    }
                    let inf = exemplar(histogram.buckets.len());
                    bucket(&line, "+Inf", histogram.count, inf, out);
                    line.float("_sum", None, histogram.sum, out);
                    line.count("_count", None, histogram.count, out);
                }
                Value::Summary {
                    quantiles,
                    count,
                    sum,
                } => line.summary(&mut self.bounds, quantiles, *count, *sum, out),
            }
        }
    }

    /// Ends the exposition.
    pub fn finish(out: &mut String) {
        out.push_str("# EOF\n");
    }
}

/// One `_bucket` sample, with its exemplar if it has one.
fn bucket(line: &Line, le: &str, count: u64, exemplar: Option<ExemplarReading>, out: &mut String) {
    line.start("_bucket", Some(("le", le)), out);
    let _ = write!(out, "{count}");
    if let Some(exemplar) = exemplar {
        let _ = write!(out, " # {{trace_id=\"{}\"}} ", exemplar.trace);
        float(out, exemplar.value);
        let _ = write!(out, " {:.3}", exemplar.timestamp);
    }
    out.push('\n');
}
