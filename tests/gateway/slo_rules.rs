//! perf's SLO kit: `prometheus-slo-rules.yml` is what `slo.toml` generates, promtool accepts
//! it, and each of its alerts has a unit test that fires and one that stays quiet
//! (`tests/prometheus/slo_rules_test.yml`, run with the other unit tests by tests/gateway/promtool.rs).

use crate::common;

use std::path::Path;
use std::process::Command;

use common::promtool_or_skip;
use perf::slo::SloDefinition;

const RULES: &str = "prometheus-slo-rules.yml";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

#[test]
fn the_rule_file_is_what_the_definition_generates() {
    let definition = SloDefinition::from_toml(&read("slo.toml")).expect("slo.toml is valid");
    assert!(
        read(RULES) == definition.rules(),
        "{RULES} is not what slo.toml generates: run \
         `cargo run --example slo_rules -- slo.toml > {RULES}`"
    );
}

#[test]
fn every_slo_alert_fires_and_stays_quiet_in_the_unit_tests() {
    let rules = read(RULES);
    let tests = read("tests/prometheus/slo_rules_test.yml");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    assert_eq!(
        alerts,
        [
            "AvailabilityBudgetBurnFast",
            "AvailabilityBudgetBurnSlow",
            "TimeToFirstTokenBudgetBurnFast",
            "TimeToFirstTokenBudgetBurnSlow",
            "SpendOverBudget",
            "ProviderLimitNearlySpent",
        ]
    );
    for alert in alerts {
        let cases: Vec<&str> = tests
            .split("alertname: ")
            .skip(1)
            .filter(|case| case.starts_with(&format!("{alert}\n")))
            .collect();
        let firing = cases.iter().filter(|c| c.contains("exp_alerts:")).count();
        assert!(firing >= 1, "{alert}: no case where it fires");
        assert!(
            cases.len() > firing,
            "{alert}: no case where it stays quiet"
        );
    }
}

#[test]
fn promtool_accepts_the_rule_file() {
    let Some(promtool) = promtool_or_skip("promtool_accepts_the_rule_file") else {
        return;
    };
    let output = Command::new(promtool)
        .args(["check", "rules", RULES])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("promtool runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("SUCCESS: 18 rules found"), "{text}");
}
