//! The Prometheus rule files, checked by `promtool` (Debian's `prometheus` package):
//!
//! * `promtool check rules` on `prometheus-alerts.yml` and `prometheus-recording-rules.yml`:
//!   they parse, every expression is valid PromQL, every template renders, and the lint finds no
//!   duplicate rule;
//! * `promtool test rules` on every unit-test file of `tests/prometheus/`: each alert fires just
//!   above its threshold (README's alert table) once its `for` has elapsed (and not before), and
//!   stays silent just below it (`BackendStalled`: with calls in flight and no first byte, with
//!   no TTFB series at all, and not while first bytes come); the recording rules give the
//!   time-weighted shares over several replicas.
//!
//! Without `promtool` on `PATH` the tests say that they were skipped and why, and pass; under
//! `CI=true` a missing `promtool` is a failure.

use std::path::Path;
use std::process::{Command, Output};

use crate::common;
use common::promtool_or_skip;

const ALERTS: &str = "prometheus-alerts.yml";
const RECORDING_RULES: &str = "prometheus-recording-rules.yml";
const UNIT_TESTS_DIR: &str = "tests/prometheus";

/// The six alerts of README's alert table.
const DOCUMENTED_ALERTS: [&str; 6] = [
    "HighBackendTTFB",
    "CriticalBackendTTFB",
    "HighStreamingDuration",
    "HighTimeToFirstToken",
    "HighFrontendProcessing",
    "BackendStalled",
];

/// What README's alert table says of each alert, in the order of [`DOCUMENTED_ALERTS`]: how its
/// expression ends (the threshold), its `for`, and the comments that mark its unit-test cases
/// above and below the threshold in `alerts_test.yml`.
const SPEC: [(&str, &str, [&str; 2]); 6] = [
    ("))) > 2.0\n", "5m", ["p95 just above", "p95 just below"]),
    ("))) > 3.0\n", "2m", ["p95 just above", "p95 just below"]),
    ("))) > 1.5\n", "5m", ["p95 just above", "p95 just below"]),
    ("))) > 2.0\n", "5m", ["p95 just above", "p95 just below"]),
    ("))) > 0.01\n", "5m", ["p95 just above", "p95 just below"]),
    (
        "(rate(backend_ttfb_seconds_count[2m])) > 0\n",
        "1m",
        ["above", "below"],
    ),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(promtool: &Path, args: &[&str]) -> (Output, String) {
    let output = Command::new(promtool)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    let text = format!(
        "$ promtool {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// The unit-test files of `tests/prometheus/`, sorted, relative to the package root.
fn unit_test_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(UNIT_TESTS_DIR))
        .expect("tests/prometheus/ exists")
        .map(|entry| entry.expect("readable directory").file_name())
        .filter_map(|name| name.to_str().map(str::to_owned))
        .filter(|name| name.ends_with(".yml") || name.ends_with(".yaml"))
        .map(|name| format!("{UNIT_TESTS_DIR}/{name}"))
        .collect();
    files.sort();
    files
}

#[test]
fn rule_files_pass_promtool_check() {
    let Some(promtool) = promtool_or_skip("rule_files_pass_promtool_check") else {
        return;
    };
    let (output, text) = run(&promtool, &["check", "rules", ALERTS, RECORDING_RULES]);
    assert!(
        output.status.success(),
        "promtool check rules failed:\n{text}"
    );
    // promtool prints one "SUCCESS: N rules found" per file.
    assert!(
        text.contains("SUCCESS: 6 rules found"),
        "{ALERTS} should hold exactly the six documented alerts:\n{text}"
    );
    assert_eq!(text.matches("SUCCESS").count(), 2, "{text}");
}

#[test]
fn rule_unit_tests_pass() {
    let Some(promtool) = promtool_or_skip("rule_unit_tests_pass") else {
        return;
    };
    let files = unit_test_files();
    for expected in [
        "tests/prometheus/alerts_test.yml",
        "tests/prometheus/recording_rules_test.yml",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} is missing: {files:?}"
        );
    }
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    let (output, text) = run(&promtool, &args);
    assert!(
        output.status.success(),
        "promtool test rules failed:\n{text}"
    );
    assert!(!text.contains("FAILED"), "{text}");
    assert_eq!(text.matches("SUCCESS").count(), files.len(), "{text}");
}

/// Every alert of the rule file is in the unit tests, above and below its threshold, and the
/// rule file has exactly the documented alerts, with their thresholds, `for` and a severity.
#[test]
fn every_alert_is_unit_tested() {
    let rules = read(ALERTS);
    let tests = read("tests/prometheus/alerts_test.yml");
    let readme = read("README.md");
    for alert in DOCUMENTED_ALERTS {
        assert!(
            readme.contains(&format!("\n| `{alert}` |")),
            "{alert} is not in README's alert table"
        );
    }
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    assert_eq!(alerts, DOCUMENTED_ALERTS, "the alerts of {ALERTS}");
    let blocks: Vec<&str> = rules.split("- alert:").skip(1).collect();
    for ((alert, block), (threshold, for_, cases)) in alerts.iter().zip(&blocks).zip(SPEC) {
        let tested = tests.matches(&format!("alertname: {alert}\n")).count();
        assert!(
            tested >= 2,
            "{alert} needs unit tests above and below its threshold in alerts_test.yml"
        );
        for case in cases {
            assert!(
                tests.contains(&format!("# {alert}: {case}")),
                "{alert}: no '{case}' case"
            );
        }
        assert!(
            block.contains(threshold),
            "{alert}: threshold {threshold:?}"
        );
        assert!(
            block.contains(&format!("for: {for_}\n")),
            "{alert}: for {for_}"
        );
        assert!(block.contains("severity: "), "{alert}: severity label");
        assert!(block.contains("summary: "), "{alert}: summary");
        assert!(block.contains("description: "), "{alert}: description");
    }
}

/// `scripts/prefix-metrics.sh llm_ OUT` gives rule files and unit tests that pass promtool as the
/// originals do, and a dashboard whose every family name has the prefix: what README tells an
/// application that installs perf's metrics with `.prefix("llm_")`.
#[test]
fn prefixed_artifacts_pass_promtool() {
    let Some(promtool) = promtool_or_skip("prefixed_artifacts_pass_promtool") else {
        return;
    };
    let out = std::env::temp_dir().join(format!("perf-prefixed-{}", std::process::id()));
    let status = Command::new(root().join("scripts/prefix-metrics.sh"))
        .arg("llm_")
        .arg(&out)
        .status()
        .expect("scripts/prefix-metrics.sh runs");
    assert!(status.success());
    let at = |relative: &str| out.join(relative).to_string_lossy().into_owned();

    let (output, text) = run(
        &promtool,
        &["check", "rules", &at(ALERTS), &at(RECORDING_RULES)],
    );
    assert!(output.status.success(), "{text}");
    let tests: Vec<String> = unit_test_files().iter().map(|f| at(f)).collect();
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    let (output, text) = run(&promtool, &args);
    assert!(
        output.status.success(),
        "prefixed unit tests failed:\n{text}"
    );
    assert_eq!(text.matches("SUCCESS").count(), tests.len(), "{text}");

    let dashboard = std::fs::read_to_string(at("dashboards/performance-monitoring.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("still JSON");
    for family in [
        "backend_ttfb_seconds",
        "streaming_duration_seconds",
        "frontend_processing_seconds",
        "requests_in_flight",
        "backend_in_flight",
        "backend_errors_total",
        "backend_ttft_seconds",
        "backend_chunk_gap_seconds",
        "backend_tokens_total",
        "request_duration_seconds",
        "gateway_overhead_seconds",
    ] {
        let all = dashboard.matches(family).count();
        let prefixed = dashboard.matches(&format!("llm_{family}")).count();
        assert!(
            all > 0 && prefixed == all,
            "{family}: {prefixed} of {all} prefixed"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
