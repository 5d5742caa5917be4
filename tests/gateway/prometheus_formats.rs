//! The gateway's `/metrics` formats against a real Prometheus server (Debian's `prometheus`
//! package, 2.42) scraping the example gateway every second:
//!
//! * `exemplars_lead_to_the_slow_request`: Prometheus with `--enable-feature=exemplar-storage`
//!   (it asks for OpenMetrics): after one slow request among fast ones, `/api/v1/query_exemplars`
//!   of `backend_ttfb_seconds_bucket` returns the trace id that request was answered with, on
//!   the bucket its TTFB fell in; and OpenMetrics is ingested without a scrape error;
//! * `native_histograms_read_a_stages_true_median`: Prometheus with
//!   `--enable-feature=native-histograms` (it asks for protobuf): a stage that spins exactly
//!   200 µs (a route of the test's own, `#[perf_stage(cache_lookup)]`) reads
//!   `histogram_quantile(0.5, sum(rate(request_stage_duration_seconds{stage="cache_lookup"}[1m])))`
//!   at no less than 0.9 of 200 µs (it prints how close), where the classic bucket (100 µs,
//!   250 µs] would say 175 µs; the four families with native buckets are stored as native
//!   histograms only (2.42 keeps no classic `_bucket` series for them); and protobuf is ingested
//!   without a scrape error.
//!
//! "Without a scrape error": the target is up with no `lastError`, `scrape_samples_scraped` is
//! the number of samples `/metrics` holds in that format (a native histogram is one sample), all
//! kept, and every `prometheus_target_scrapes_sample_*` counter of Prometheus stays 0. Without `prometheus` on `PATH` the tests say that they were skipped and why, and
//! pass; under `CI=true` a missing `prometheus` is a failure. Every wait is bounded.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use perf_runtime::{perf_endpoint, perf_stage};
use serde_json::{json, Value};

use crate::common;
use common::{
    assert_lasted, client, decode_families, post_traced, scrape_as, start, start_with_routes,
    tool_or_skip, trace_id_of, ttfb_bucket, ACCEPT_OPENMETRICS, ACCEPT_PROTOBUF, ZERO_MOCK,
};

use super::prometheus_live::server;
use server::Prometheus;

/// Longest a test waits for Prometheus to show what it looks for, once started.
const DEADLINE: Duration = Duration::from_secs(45);
/// The stage's true duration.
const SPIN: Duration = Duration::from_micros(200);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// Waits until `check` gives a value (polling every 500 ms), or panics after [`DEADLINE`] with
/// the last reason and Prometheus' log.
async fn wait_for<T, F, Fut>(prometheus: &Prometheus, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let why = match check().await {
            Ok(value) => return value,
            Err(why) => why,
        };
        if Instant::now() > deadline {
            panic!(
                "{what}: not within {DEADLINE:?}: {why}\ntargets: {}\nPrometheus log:\n{}",
                prometheus.target_health().await,
                prometheus.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The one number of an instant query's answer, if it has exactly one float sample.
fn single_value(data: &Value) -> Option<f64> {
    let result = data["result"].as_array()?;
    match result.as_slice() {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

/// The samples Prometheus counts in `/metrics` of `gateway` as it answers `accept`: each line of
/// OpenMetrics that is no comment; in protobuf, one per counter or gauge, one per native
/// histogram, and a classic histogram's buckets (`+Inf` included), sum and count.
async fn samples_in(gateway: &perf::Gateway, accept: &str) -> f64 {
    let (_, body) = scrape_as(&gateway.metrics_url(), Some(accept)).await;
    if accept != ACCEPT_PROTOBUF {
        let text = String::from_utf8(body).expect("UTF-8");
        return text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count() as f64;
    }
    let metrics = decode_families(&body).into_iter().flat_map(|f| f.metric);
    let samples = metrics.map(|metric| match metric.histogram {
        Some(h) if !h.positive_span.is_empty() || h.zero_count > 0 => 1,
        Some(h) => {
            let inf = h.bucket.last().is_some_and(|b| b.upper_bound.is_infinite());
            h.bucket.len() + usize::from(!inf) + 2
        }
        None => 1,
    });
    samples.sum::<usize>() as f64
}

/// The target has been scraped cleanly in the format `accept` asks for: up, no `lastError`, as
/// many samples as `/metrics` holds in that format, all kept, and none refused by Prometheus'
/// storage.
async fn check_clean_scrapes(
    prometheus: &Prometheus,
    gateway: &perf::Gateway,
    accept: &str,
) -> Result<String, String> {
    let targets = prometheus.targets().await?;
    let [target] = targets.as_slice() else {
        return Err(format!("{} targets", targets.len()));
    };
    if target["health"] != "up" || target["lastError"] != "" {
        return Err(format!("{} {}", target["health"], target["lastError"]));
    }
    let scraped = prometheus.query("scrape_samples_scraped").await?;
    let post = prometheus
        .query("scrape_samples_post_metric_relabeling")
        .await?;
    let (Some(scraped), Some(post)) = (single_value(&scraped), single_value(&post)) else {
        return Err("no scrape_samples_scraped yet".into());
    };
    let expected = samples_in(gateway, accept).await;
    if scraped != expected || scraped != post {
        return Err(format!(
            "{scraped} samples scraped, {post} kept, {expected} in /metrics"
        ));
    }
    let own = prometheus.own_metrics().await?;
    let refused: Vec<&str> = own
        .lines()
        .filter(|l| l.starts_with("prometheus_target_scrapes_sample_"))
        .filter(|l| l.rsplit(' ').next() != Some("0"))
        .collect();
    if !refused.is_empty() {
        return Err(format!("samples refused: {refused:?}"));
    }
    let exemplar_out_of_order = own
        .lines()
        .find(|l| l.starts_with("prometheus_target_scrapes_exemplar_out_of_order_total "))
        .unwrap_or("prometheus_target_scrapes_exemplar_out_of_order_total (absent)");
    Ok(format!(
        "up, {scraped} samples a scrape, none refused; {exemplar_out_of_order}"
    ))
}

/// A client sending `body` to `path` every `pause` until `stop`; counts the 200s.
fn background(
    gateway: &perf::Gateway,
    path: &'static str,
    body: Option<String>,
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>) {
    let ok = Arc::new(AtomicU64::new(0));
    let counted = ok.clone();
    let url = format!("http://{}{path}", gateway.addr());
    let task = tokio::spawn(async move {
        let http = client();
        while !stop.load(Ordering::Relaxed) {
            let request = match &body {
                Some(body) => http
                    .post(&url)
                    .bearer_auth(common::KEY)
                    .header("content-type", "application/json")
                    .body(body.clone()),
                None => http.get(&url),
            };
            if let Ok(response) = request.send().await {
                if response.status() == 200 && response.bytes().await.is_ok() {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(pause).await;
        }
    });
    (task, ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemplars_lead_to_the_slow_request() {
    common::alone!();
    const MODEL: &str = "live-exemplar";
    let test = "exemplars_lead_to_the_slow_request";
    let Some(binary) = tool_or_skip("prometheus", test) else {
        return;
    };
    let started = unix_now();
    let gateway = start(ZERO_MOCK).await;
    let prometheus =
        Prometheus::start_with(&binary, Some(gateway.addr()), &["exemplar-storage"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let fast = json!({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]});
    let (task, _) = background(
        &gateway,
        "/v1/chat/completions",
        Some(fast.to_string()),
        Duration::from_millis(100),
        stop.clone(),
    );
    wait_for(&prometheus, "the gateway scraped", || async {
        check_clean_scrapes(&prometheus, &gateway, ACCEPT_OPENMETRICS).await
    })
    .await;

    // One slow request (700 ms to the first byte: the 1.0 s bucket, or a later one if a busy
    // machine adds to it), among the fast ones.
    let slow = json!({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                      "metadata": {"mock_ttfb_ms": "700"}});
    let response = post_traced(&gateway, "/chat/completions", slow.to_string(), None).await;
    assert_eq!(response.status(), 200);
    let slow_id = trace_id_of(response.headers());

    let query = format!("backend_ttfb_seconds_bucket{{model=\"{MODEL}\"}}");
    let (le, value) = wait_for(&prometheus, "the slow request's exemplar", || async {
        let series = prometheus
            .query_exemplars(&query, started - 60.0, unix_now() + 60.0)
            .await?;
        series
            .iter()
            .flat_map(|s| {
                let exemplars = s["exemplars"].as_array().cloned().unwrap_or_default();
                exemplars
                    .into_iter()
                    .map(move |e| (s["seriesLabels"].clone(), e))
            })
            .find(|(_, e)| e["labels"]["trace_id"] == slow_id.as_str())
            .map(|(labels, e)| {
                let number = |v: &Value| v.as_str().and_then(|v| v.parse::<f64>().ok());
                (number(&labels["le"]), number(&e["value"]))
            })
            .ok_or_else(|| format!("no exemplar of {slow_id} in {}", Value::from(series)))
    })
    .await;
    let value = value.expect("a numeric exemplar value");
    assert_lasted("the slow request's TTFB", value * 1e3, 700.0);
    let le = le.expect("a numeric le");
    assert_eq!(
        le,
        ttfb_bucket(value),
        "the bucket of the exemplar's {value} s"
    );

    let clean = wait_for(&prometheus, "clean OpenMetrics scrapes", || async {
        check_clean_scrapes(&prometheus, &gateway, ACCEPT_OPENMETRICS).await
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = task.await;
    println!(
        "exemplar-storage: trace {slow_id} of the slow request is the exemplar of \
         backend_ttfb_seconds_bucket{{le=\"{le}\"}} ({value:.3} s); OpenMetrics scrapes: {clean}"
    );
    drop(prometheus);
    gateway.shutdown().await;
}

/// `GET /test/spin`: one request whose `cache_lookup` stage takes 200 µs.
#[perf_endpoint("/test/spin")]
async fn spin() -> &'static str {
    spin_for(SPIN);
    "spun"
}

/// Busy-waits `duration` on the clock (a sleep would overshoot by tens of µs).
#[perf_stage(cache_lookup)]
fn spin_for(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_histograms_read_a_stages_true_median() {
    common::alone!();
    let test = "native_histograms_read_a_stages_true_median";
    let Some(binary) = tool_or_skip("prometheus", test) else {
        return;
    };
    let routes = axum::Router::new().route("/test/spin", axum::routing::get(spin));
    let gateway = start_with_routes(ZERO_MOCK, routes).await;
    let prometheus =
        Prometheus::start_with(&binary, Some(gateway.addr()), &["native-histograms"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (task, spins) = background(
        &gateway,
        "/test/spin",
        None,
        Duration::from_millis(2),
        stop.clone(),
    );

    let selector = "request_stage_duration_seconds{stage=\"cache_lookup\"}";
    let median = format!("histogram_quantile(0.5, sum(rate({selector}[1m])))");
    let truth = SPIN.as_secs_f64();
    let read = wait_for(&prometheus, "the stage's median", || async {
        let read = single_value(&prometheus.query(&median).await?)
            .ok_or_else(|| "no median yet".to_owned())?;
        let spins = spins.load(Ordering::Relaxed);
        if spins < 500 {
            return Err(format!("{spins} spins so far (median {read})"));
        }
        // Every spin lasts at least 200 µs, and the native bucket (schema 3) holding 200 µs
        // starts at 188 µs: the median reads at least 0.9 of the truth, where the classic
        // bucket (100 µs, 250 µs] would say 175 µs. A busy machine only lengthens spins: up to
        // ten times allowed. NaN (no observation in the window yet) is within neither.
        let within = (0.9 * truth..10.0 * truth).contains(&read);
        if !within {
            return Err(format!("median {:.1} µs after {spins} spins", read * 1e6));
        }
        Ok(read)
    })
    .await;

    // Stored as a native histogram, and (Prometheus 2.42) as that only.
    let stored = prometheus.query(selector).await.expect("an instant query");
    let series = stored["result"].as_array().cloned().unwrap_or_default();
    assert!(
        !series.is_empty()
            && series
                .iter()
                .all(|s| s["histogram"][1]["buckets"].is_array()),
        "native histograms: {stored}"
    );
    let classic = "request_stage_duration_seconds_bucket{stage=\"cache_lookup\"}";
    let classic = prometheus.query(classic).await.expect("an instant query");
    assert_eq!(classic["result"], json!([]), "no classic buckets in 2.42");
    let requests = prometheus
        .query("sum(requests_total{endpoint=\"/test/spin\"})")
        .await
        .expect("an instant query");
    assert!(
        single_value(&requests).is_some_and(|n| n > 0.0),
        "{requests}"
    );

    let clean = wait_for(&prometheus, "clean protobuf scrapes", || async {
        check_clean_scrapes(&prometheus, &gateway, ACCEPT_PROTOBUF).await
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = task.await;
    println!(
        "native-histograms: median of a 200 µs stage read {:.1} µs ({:+.1} %) after {} spins; \
         protobuf scrapes: {clean}",
        read * 1e6,
        (read / truth - 1.0) * 100.0,
        spins.load(Ordering::Relaxed)
    );
    drop(prometheus);
    gateway.shutdown().await;
}
