//! One writer for both text formats, the Prometheus text format and OpenMetrics 1.0: they share
//! every sample line but a counter's suffix, a bucket's exemplar and how infinities are spelled,
//! and differ in a family's header lines (`text.rs`, `openmetrics.rs`).

use super::text::{each_series, BoundCache};
use super::{openmetrics, text};
use crate::metrics::reading::{FamilyReading, Value};

/// Formats families one after another in either text format, keeping what can be reused
/// between them: the bounds' text and a series' label block.
#[derive(Default)]
pub(crate) struct TextWriter {
    bounds: BoundCache,
    labels: String,
    /// OpenMetrics 1.0 rather than the Prometheus text format.
    openmetrics: bool,
}

impl TextWriter {
    /// A writer of OpenMetrics 1.0 text.
    pub fn openmetrics() -> Self {
        TextWriter {
            openmetrics: true,
            ..Self::default()
        }
    }

    /// Appends `family` to `out` (nothing for a family without series, as `gather` drops it).
    pub fn family(&mut self, family: &FamilyReading, out: &mut String) {
        if family.series.is_empty() {
            return;
        }
        let openmetrics = self.openmetrics;
        let name = if openmetrics {
            openmetrics::header(family, out)
        } else {
            text::header(family, out)
        };
        let Self { bounds, labels, .. } = self;
        let counter = if openmetrics { "_total" } else { "" };
        each_series(
            labels,
            family,
            name,
            openmetrics,
            |line, value| match value {
                Value::Counter(value) => line.number(counter, None, *value, out),
                Value::Gauge(value) => line.number("", None, *value, out),
                Value::Histogram(histogram) => {
                    // The text format has no exemplars.
                    let exemplar = |i: usize| {
                        let exemplar = histogram.exemplars.get(i).copied().flatten();
                        exemplar.filter(|_| openmetrics)
                    };
                    for (i, &(bound, cumulative)) in histogram.buckets.iter().enumerate() {
                        line.bucket(bounds.text(bound), cumulative, exemplar(i), out);
                    }
                    let inf = exemplar(histogram.buckets.len());
                    line.bucket("+Inf", histogram.count, inf, out);
                    line.float("_sum", None, histogram.sum, out);
                    line.count("_count", None, histogram.count, out);
                }
                Value::Summary {
                    quantiles,
                    count,
                    sum,
                } => line.summary(bounds, quantiles, *count, *sum, out),
            },
        );
    }
}
