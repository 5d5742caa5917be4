//! OpenMetrics 1.0 text: what Prometheus asks for first, and the format that carries exemplars.
//!
//! The same series as the text format, with OpenMetrics' rules: a counter family is named without
//! its `_total` (its samples keep it), durations declare `# UNIT … seconds`, help text escapes
//! quotes, infinities are `+Inf`, every histogram bucket carries its latest exemplar
//! (`# {trace_id="…"} value timestamp`), and the exposition ends with `# EOF`. Bucket bounds are
//! written as in the text format, so a Prometheus switching between the two keeps its series.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::Mutex;

use super::text::{escape, type_line};
use crate::metrics::reading::{openmetrics_name, openmetrics_names, FamilyReading};

/// The `Content-Type` of OpenMetrics 1.0 text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A family's `# TYPE`, `# UNIT` and `# HELP` lines in OpenMetrics; the name its samples start
/// with (a counter's without its `_total`).
pub(super) fn header<'a>(family: &'a FamilyReading, out: &mut String) -> &'a str {
    let name = openmetrics_name(&family.name, family.kind);
    type_line(out, name, family.kind, "unknown");
    if let Some(unit) = family.unit() {
        let _ = writeln!(out, "# UNIT {name} {unit}");
    }
    if !family.help.is_empty() {
        let _ = write!(out, "# HELP {name} ");
        escape(out, &family.help, true);
        out.push('\n');
    }
    name
}

/// Ends the exposition.
pub(super) fn finish(out: &mut String) {
    out.push_str("# EOF\n");
}

/// `theirs` (the application's families, in name order) without those that would make the page
/// invalid: a family that takes one of the OpenMetrics names (`openmetrics_names`) of one of
/// perf's families, or of an application family kept before it, is left out, and said once.
///
/// perf's families keep their names: they are a contract (docs/metrics.md) that dashboards and
/// alerts are written against. The text and protobuf formats, which have no such clash, still
/// show the family left out. An application family registered before perf's metrics were made
/// is caught then instead ([`InstallError::OpenMetricsClash`](crate::InstallError)); this covers
/// one registered after.
pub(super) fn without_clashes(
    ours: &[FamilyReading],
    theirs: Vec<FamilyReading>,
) -> Vec<FamilyReading> {
    // perf's families take their names even before their first series: an application family
    // is then left out from the start, not once perf first records into the family.
    let mut taken: HashMap<String, String> = HashMap::new();
    for family in ours {
        for name in openmetrics_names(&family.name, family.kind) {
            taken.insert(name, family.name.to_string());
        }
    }
    let mut kept = Vec::with_capacity(theirs.len());
    for family in theirs {
        if family.series.is_empty() {
            kept.push(family);
            continue;
        }
        let names: Vec<String> = openmetrics_names(&family.name, family.kind).collect();
        if let Some((name, owner)) = names
            .iter()
            .find_map(|name| taken.get(name).map(|owner| (name, owner)))
        {
            report_clash(&family.name, name, owner);
            continue;
        }
        for name in names {
            taken.insert(name, family.name.to_string());
        }
        kept.push(family);
    }
    kept
}

/// Says, once per family left out, which family it clashes with and what to do.
fn report_clash(left_out: &str, name: &str, owner: &str) {
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = SAID
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(left_out.to_owned());
    if first {
        log::error!(
            "perf: the family `{left_out}` is left out of the OpenMetrics exposition: it takes \
             the name `{name}`, which the family `{owner}` takes too (OpenMetrics names a \
             counter without `_total`, and a family's samples after it with `_total`, \
             `_created`, `_bucket`, `_count` or `_sum`), and a strict parser rejects a page with \
             both. The text and protobuf formats still show it. Rename it, or give perf's \
             families a prefix (`perf_runtime::Metrics::builder().prefix(\"llm_\")`)"
        );
    }
}
