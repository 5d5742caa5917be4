//! Every `#[perf_endpoint]` of the program has its series from the moment the metrics are made,
//! before its first request: dashboards and `absent()` alerts see them from the first scrape.
//!
//! In a binary of its own: it checks the default registry before any request.

use perf_runtime::{perf_endpoint, Metrics};

#[perf_endpoint("/v1/known/never-called")]
async fn never_called() -> &'static str {
    "not called in this test"
}

struct Handlers;

impl Handlers {
    #[perf_endpoint("/v1/known/method")]
    async fn method(&self) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn endpoints_have_their_series_before_their_first_request() {
    let _ = (never_called, Handlers::method);
    let text = perf_runtime::exposition::render(Metrics::init());
    for endpoint in ["/v1/known/never-called", "/v1/known/method"] {
        for outcome in ["completed", "error", "cancelled"] {
            let line = format!("requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} 0");
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        let line = format!("frontend_processing_seconds_count{{endpoint=\"{endpoint}\"}} 0");
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }
    // The same through the prometheus crate's own gather, as an application reads it.
    let gathered = prometheus::gather();
    assert!(gathered.iter().any(|f| f.name() == "requests_total"));
}
