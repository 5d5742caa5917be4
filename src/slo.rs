//! perf's SLO kit: Prometheus recording rules and alerts generated from a small definition
//! (`slo.toml`): multi-window, multi-burn-rate alerts (Google's SRE workbook) for availability
//! per endpoint and for the time to first token per model, a spend alert and a rate-limit
//! alert.
//!
//! ```sh
//! cargo run --example slo_rules -- slo.toml > prometheus-slo-rules.yml
//! ```

use std::fmt::Write as _;

use serde::Deserialize;

/// What the rules are generated from: `slo.toml`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SloDefinition {
    /// Requests that do not end in `error`, per endpoint.
    pub availability: Objective,
    /// Streamed answers whose first token comes in time, per model.
    pub ttft: TtftObjective,
    /// The spending budget.
    pub spend: Spend,
    /// The rate-limit margin.
    pub limits: Limits,
}

/// A share of good events.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// The share of good events, below 1 (`0.999`).
    pub objective: f64,
}

/// A share of answers whose time to first token is at most a threshold.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TtftObjective {
    /// The share of good answers, below 1.
    pub objective: f64,
    /// The threshold, a bucket bound of `backend_ttft_seconds` (`TTFT_BUCKETS`).
    pub threshold_seconds: f64,
}

/// The spending budget.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spend {
    /// US dollars per hour over which `SpendOverBudget` fires.
    pub budget_usd_per_hour: f64,
}

/// The rate-limit margin.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The share of a provider's limit under which `ProviderLimitNearlySpent` fires.
    pub remaining_ratio: f64,
}

/// The burn-rate alerts of the workbook: `(long window, short window, burn rate, for,
/// severity)`.
const BURNS: [(&str, &str, f64, &str, &str); 2] = [
    ("1h", "5m", 14.4, "2m", "critical"),
    ("6h", "30m", 6.0, "15m", "warning"),
];

/// Every rate window the rules record.
const WINDOWS: [&str; 4] = ["5m", "30m", "1h", "6h"];

impl SloDefinition {
    /// The definition in `text` (TOML), checked: objectives in (0, 1), the TTFT threshold a
    /// bucket bound, the budget and ratio positive.
    pub fn from_toml(text: &str) -> Result<SloDefinition, String> {
        let definition: SloDefinition = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, objective) in [
            ("availability", definition.availability.objective),
            ("ttft", definition.ttft.objective),
        ] {
            if !(objective > 0.0 && objective < 1.0) {
                return Err(format!(
                    "{name}.objective is {objective}: it must be in (0, 1)"
                ));
            }
        }
        let threshold = definition.ttft.threshold_seconds;
        if !perf_runtime::metrics::TTFT_BUCKETS.contains(&threshold) {
            return Err(format!(
                "ttft.threshold_seconds is {threshold}: it must be a bucket bound of \
                 backend_ttft_seconds, one of {:?}",
                perf_runtime::metrics::TTFT_BUCKETS
            ));
        }
        let budget = definition.spend.budget_usd_per_hour;
        if !budget.is_finite() || budget <= 0.0 {
            return Err("spend.budget_usd_per_hour must be above 0".into());
        }
        let ratio = definition.limits.remaining_ratio;
        if !(ratio > 0.0 && ratio < 1.0) {
            return Err(format!(
                "limits.remaining_ratio is {ratio}: it must be in (0, 1)"
            ));
        }
        Ok(definition)
    }

    /// The rule file: recording rules of each ratio over each window, then the alerts.
    pub fn rules(&self) -> String {
        let mut out = String::from(
            "# Generated from slo.toml by `cargo run --example slo_rules -- slo.toml`: edit the \
             definition,\n# not this file (tests/gateway/slo_rules.rs checks they agree). docs/monitoring.md, \
             \"The SLO kit\".\n#\n# promtool check rules prometheus-slo-rules.yml\n# promtool test \
             rules tests/prometheus/slo_rules_test.yml\ngroups:\n",
        );
        // Recorded series are named `level:slo_…:ratio_rate<window>` (no family name of perf's
        // after a word boundary: scripts/prefix-metrics.sh leaves them as they are).
        out.push_str("  - name: perf_slo_ratios\n    rules:\n");
        let le = self.ttft.threshold_seconds;
        for window in WINDOWS {
            let _ = write!(
                out,
                "      # Share of requests that ended in error, per endpoint, over {window}.\n\
                 \x20     - record: endpoint:slo_errors:ratio_rate{window}\n\
                 \x20       expr: |\n\
                 \x20         sum by (endpoint) (rate(requests_total{{outcome=\"error\"}}[{window}]))\n\
                 \x20           / sum by (endpoint) (rate(requests_total[{window}]))\n\
                 \x20     # Share of streamed answers whose first token took more than {le} s, per model, over {window}.\n\
                 \x20     - record: model:slo_ttft_slow:ratio_rate{window}\n\
                 \x20       expr: |\n\
                 \x20         1 - sum by (model) (rate(backend_ttft_seconds_bucket{{le=\"{le}\"}}[{window}]))\n\
                 \x20           / sum by (model) (rate(backend_ttft_seconds_count[{window}]))\n"
            );
        }
        // The burn rates the dashboard draws: how many times faster than the objective allows
        // the error budget is spent (1: exactly spent in 30 days).
        for (record, objective) in [
            ("endpoint:slo_errors", self.availability.objective),
            ("model:slo_ttft_slow", self.ttft.objective),
        ] {
            let budget = ((1.0 - objective) * 1e9).round() / 1e9;
            for window in ["1h", "6h"] {
                let _ = write!(
                    out,
                    "      - record: {record}:burn_rate{window}\n\
                     \x20       expr: {record}:ratio_rate{window} / {budget}\n"
                );
            }
        }
        out.push_str("  - name: perf_slo_alerts\n    rules:\n");
        let slos = [
            (
                "Availability",
                "endpoint:slo_errors",
                "endpoint",
                self.availability.objective,
                "requests of {{ $labels.endpoint }} end in error",
            ),
            (
                "TimeToFirstToken",
                "model:slo_ttft_slow",
                "model",
                self.ttft.objective,
                "answers of {{ $labels.model }} take too long to their first token",
            ),
        ];
        for (name, record, by, objective, what) in slos {
            let budget = 1.0 - objective;
            let budget = (budget * 1e9).round() / 1e9;
            for (long, short, burn, for_, severity) in BURNS {
                let speed = if severity == "critical" {
                    "Fast"
                } else {
                    "Slow"
                };
                let _ = write!(
                    out,
                    "      - alert: {name}BudgetBurn{speed}\n\
                     \x20       expr: |\n\
                     \x20         {record}:ratio_rate{long} > ({burn} * {budget})\n\
                     \x20           and {record}:ratio_rate{short} > ({burn} * {budget})\n\
                     \x20       for: {for_}\n\
                     \x20       labels:\n\
                     \x20         severity: {severity}\n\
                     \x20         slo: {slo}\n\
                     \x20       annotations:\n\
                     \x20         summary: \"{name} error budget burning {burn}x too fast ({{{{ $labels.{by} }}}})\"\n\
                     \x20         description: \"{what}: {{{{ $value | humanizePercentage }}}} over {long} (and over {short}), against a budget of {pct} (objective {objective}).\"\n",
                    slo = name.to_lowercase(),
                    pct = format_percent(budget),
                );
            }
        }
        let _ = write!(
            out,
            "      - alert: SpendOverBudget\n\
             \x20       expr: |\n\
             \x20         sum(rate(backend_cost_usd_total[1h])) * 3600 > {budget}\n\
             \x20       for: 15m\n\
             \x20       labels:\n\
             \x20         severity: warning\n\
             \x20       annotations:\n\
             \x20         summary: \"LLM spend over its budget\"\n\
             \x20         description: \"The backend calls cost {{{{ $value | humanize }}}} USD per hour over the last hour: above the budget of {budget} USD per hour.\"\n\
             \x20     - alert: ProviderLimitNearlySpent\n\
             \x20       expr: |\n\
             \x20         backend_ratelimit_remaining / backend_ratelimit_limit < {ratio}\n\
             \x20       for: 2m\n\
             \x20       labels:\n\
             \x20         severity: warning\n\
             \x20       annotations:\n\
             \x20         summary: \"{{{{ $labels.provider }}}} {{{{ $labels.resource }}}} limit nearly spent ({{{{ $labels.model }}}})\"\n\
             \x20         description: \"{{{{ $value | humanizePercentage }}}} of the {{{{ $labels.resource }}}} limit of {{{{ $labels.provider }}}} for {{{{ $labels.model }}}} is left (under {pct}): requests will be refused with 429 until it resets.\"\n",
            budget = self.spend.budget_usd_per_hour,
            ratio = self.limits.remaining_ratio,
            pct = format_percent(self.limits.remaining_ratio),
        );
        out
    }
}

/// `0.001` as `0.1%`.
fn format_percent(share: f64) -> String {
    format!("{}%", (share * 100.0 * 1e6).round() / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_is_checked() {
        let good = include_str!("../slo.toml");
        assert!(SloDefinition::from_toml(good).is_ok());
        let off_bucket = good.replace("threshold_seconds = 2.0", "threshold_seconds = 1.7");
        let error = SloDefinition::from_toml(&off_bucket).unwrap_err();
        assert!(error.contains("bucket bound"), "{error}");
        let whole = good.replace("objective = 0.999", "objective = 1.0");
        assert!(SloDefinition::from_toml(&whole).is_err());
        let typo = good.replace("[spend]", "[spend]\nbudget = 3");
        assert!(SloDefinition::from_toml(&typo).is_err());
    }
}
