//! The expressions under test: every dashboard target and template variable, substituted as
//! Grafana sends them, every README `promql` block; and what the rules and query answers say.

use serde_json::Value;

use super::{read, DASHBOARD, MONITORING, README, RULE_FILES};

/// A Grafana expression as Prometheus receives it, with "All" selected in every variable:
///
/// | in the dashboard | sent as | why |
/// |---|---|---|
/// | `$endpoint`, `$provider`, `$model` (and `${…}`) | `.*` | the variables' `allValue`; they are only used in `=~` matchers |
/// | `$__rate_interval` | `1m` | Grafana's value for a 15 s scrape interval (4 × scrape); with the test's 1 s scrape it spans ~60 samples |
/// | `$__interval` | `15s` | |
/// | `$__range` | `1h` | the dashboard's default time range |
pub fn substitute(expr: &str) -> String {
    let mut out = expr.to_owned();
    for (from, to) in [
        ("${__rate_interval}", "1m"),
        ("$__rate_interval", "1m"),
        ("${__interval}", "15s"),
        ("$__interval", "15s"),
        ("${__range}", "1h"),
        ("$__range", "1h"),
    ] {
        out = out.replace(from, to);
    }
    for var in ["endpoint", "provider", "model"] {
        out = out.replace(&format!("${{{var}}}"), ".*");
        out = out.replace(&format!("${var}"), ".*");
    }
    assert!(
        !out.contains('$'),
        "a Grafana variable without a substitution in: {expr}"
    );
    out
}

/// A query to check: where it comes from, and the PromQL sent to Prometheus.
#[derive(Debug, Clone)]
pub struct Query {
    pub origin: String,
    pub promql: String,
}

pub fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is valid JSON")
}

/// Every panel of the dashboard, rows' nested panels included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Every `expr` of every panel target, substituted.
pub fn dashboard_queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            out.push(Query {
                origin: format!(
                    "dashboard panel {:?} target {}",
                    panel["title"].as_str().unwrap_or("?"),
                    target["refId"].as_str().unwrap_or("?")
                ),
                promql: substitute(expr),
            });
        }
    }
    out
}

/// A template variable's `label_values(selector, label)` query, substituted.
#[derive(Debug)]
pub struct VariableQuery {
    pub name: String,
    pub selector: String,
    pub label: String,
}

pub fn variable_queries(dashboard: &Value) -> Vec<VariableQuery> {
    let vars = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    vars.iter()
        .map(|var| {
            let name = var["name"].as_str().expect("variable name").to_owned();
            let query = var["query"]
                .as_str()
                .or_else(|| var["query"]["query"].as_str())
                .unwrap_or_else(|| panic!("variable {name}: no query"));
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable {name}: not label_values(selector, label)"));
            let (selector, label) = inner
                .rsplit_once(',')
                .expect("label_values(selector, label)");
            VariableQuery {
                name,
                selector: substitute(selector.trim()),
                label: label.trim().to_owned(),
            }
        })
        .collect()
}

/// Every fenced ```promql block of the README and of docs/monitoring.md: one query per block.
pub fn readme_queries() -> Vec<Query> {
    [README, MONITORING]
        .into_iter()
        .flat_map(|page| promql_blocks(page, &read(page)))
        .collect()
}

/// Every fenced ```promql block of `text` (the page `page`).
fn promql_blocks(page: &str, text: &str) -> Vec<Query> {
    let mut out = Vec::new();
    let mut block: Option<(usize, Vec<&str>)> = None;
    for (number, line) in text.lines().enumerate() {
        match &mut block {
            None if line.trim_start().starts_with("```promql") => {
                block = Some((number + 1, vec![]))
            }
            None => {}
            Some((start, lines)) => {
                if line.trim_start().starts_with("```") {
                    let promql = lines.join("\n");
                    assert!(
                        !promql.trim().is_empty(),
                        "{page} line {start}: empty promql block"
                    );
                    out.push(Query {
                        origin: format!("{page} promql block at line {start}"),
                        promql,
                    });
                    block = None;
                } else {
                    lines.push(line);
                }
            }
        }
    }
    assert!(block.is_none(), "{page}: unterminated promql block");
    out
}

/// The number of rules in the repository's rule files (`- alert:` and `- record:` entries).
pub fn rule_count() -> usize {
    RULE_FILES
        .iter()
        .map(|f| {
            read(f)
                .lines()
                .filter(|l| {
                    let l = l.trim_start();
                    l.starts_with("- alert:") || l.starts_with("- record:")
                })
                .count()
        })
        .sum()
}

/// Why the rules are not all loaded and healthy, if they are not.
pub fn rules_problem(rules: &[Value]) -> Option<String> {
    let expected = rule_count();
    if rules.len() != expected {
        return Some(format!("{} rules loaded, {expected} expected", rules.len()));
    }
    let unhealthy: Vec<String> = rules
        .iter()
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{} health={} {}", r["name"], r["health"], r["lastError"]))
        .collect();
    (!unhealthy.is_empty()).then(|| unhealthy.join("; "))
}

/// Whether a query result holds data: at least one sample, with a finite value.
pub fn has_data(data: &Value) -> bool {
    let finite = |sample: &Value| {
        sample[1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .is_some_and(|r| r.iter().any(|s| finite(&s["value"]))),
        Some("scalar") => finite(&data["result"]),
        _ => false,
    }
}

/// For an alert on a histogram's quantile above a threshold (`… rate(FAMILY_bucket[…]) … > T`,
/// the rule's `query`): its family, its threshold, and the observations of that family above the
/// threshold in this process's registry (the live gateway's), counted from the classic buckets
/// (at most the threshold: the last bucket not above it). A quantile cannot exceed the threshold
/// unless at least one observation does: an alert pending with none is the rule's fault, not the
/// machine's.
pub fn observations_above(rule: &Value) -> Option<(String, f64, u64)> {
    let query = rule["query"].as_str()?;
    let family = query.split("rate(").nth(1)?.split("_bucket[").next()?;
    let threshold: f64 = query.rsplit('>').next()?.trim().parse().ok()?;
    let gathered = perf_runtime::Metrics::global().registry().gather();
    let metrics = gathered.iter().find(|f| f.name() == family)?.get_metric();
    let above = metrics
        .iter()
        .map(|m| {
            let h = m.get_histogram();
            let at_most = h
                .get_bucket()
                .iter()
                .take_while(|b| b.upper_bound() <= threshold)
                .last()
                .map_or(0, |b| b.cumulative_count());
            h.get_sample_count() - at_most
        })
        .sum();
    Some((family.to_owned(), threshold, above))
}
