//! The seed's two examples (chat completions with streaming; `/v1/responses`) written twice:
//! with the attributes, and by hand with the runtime API as the seed wrote them. Both must record
//! the same families, with the same labels and the same counts.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{stream, Stream, StreamExt};
use perf_runtime::PerformanceTracker;
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream, track_request_stages};

struct Request {
    model: String,
    stream: bool,
}

async fn validate_api_key(key: &str) -> bool {
    tokio::time::sleep(Duration::from_millis(1)).await;
    key == "demo-key"
}

async fn make_backend_request(model: &str) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    vec![format!("{model}:"), "hello".into(), " world".into()]
}

fn stream_response(chunks: Vec<String>) -> impl Stream<Item = String> {
    stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        chunk
    })
}

// ---- The seed's first example, with the attributes ----

#[perf_endpoint("/seed/macros/chat")]
async fn chat_with_macros(req: Request, api_key: &str) -> Vec<String> {
    #[perf_stage(request_parsing)]
    let model = req.model.clone();
    #[perf_stage(auth_validation)]
    let _user = validate_api_key(api_key).await;
    #[perf_stage(request_preparation)]
    let _headers = format!("Bearer {api_key}");
    #[perf_backend(provider = "openrouter", model = &model)]
    let response = make_backend_request(&model).await;
    if req.stream {
        #[perf_stream]
        let chunks = stream_response(response);
        return chunks.collect().await;
    }
    response
}

// ---- The same, by hand, as the seed wrote it ----

async fn chat_by_hand(req: Request, api_key: &str) -> Vec<String> {
    let tracker = PerformanceTracker::new("/seed/hand/chat");
    let model = {
        let _stage = tracker.stage("request_parsing");
        req.model.clone()
    };
    {
        let _stage = tracker.stage("auth_validation");
        validate_api_key(api_key).await;
    }
    {
        let _stage = tracker.stage("request_preparation");
        let _headers = format!("Bearer {api_key}");
    }
    let backend = tracker.backend_request("openrouter", &model);
    let response = make_backend_request(&model).await;
    backend.first_byte();
    let out = if req.stream {
        let _streaming = tracker.streaming();
        stream_response(response).collect().await
    } else {
        response
    };
    tracker.record_percentages();
    out
}

// ---- The seed's second example: `/v1/responses` ----

#[perf_endpoint("/seed/macros/responses")]
async fn responses_with_macros(req: Request) -> Vec<String> {
    #[perf_stage(request_parsing)]
    let model = req.model.clone();
    #[perf_backend(provider = "portkey", model = &model)]
    let response = make_backend_request(&model).await;
    response
}

async fn responses_by_hand(req: Request) -> Vec<String> {
    let tracker = track_request_stages("/seed/hand/responses");
    let model = {
        let _stage = tracker.stage("request_parsing");
        req.model.clone()
    };
    let backend = tracker.backend_request("portkey", &model);
    let response = make_backend_request(&model).await;
    backend.first_byte();
    response
}

/// `family{labels without endpoint}` → observation count (or 1 per gauge series), for the
/// series of `endpoint`.
fn recorded(endpoint: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for family in prometheus::gather() {
        for metric in family.get_metric() {
            let labels = metric.get_label();
            if !labels
                .iter()
                .any(|l| l.name() == "endpoint" && l.value() == endpoint)
            {
                continue;
            }
            let key: Vec<String> = labels
                .iter()
                .filter(|l| l.name() != "endpoint")
                .map(|l| format!("{}={}", l.name(), l.value()))
                .collect();
            let count = match family.name() {
                "stage_percentage" => 1,
                "requests_total" => metric.get_counter().get_value() as u64,
                _ => metric.get_histogram().get_sample_count(),
            };
            out.insert(format!("{}{{{}}}", family.name(), key.join(",")), count);
        }
    }
    out
}

fn request(model: &str, stream: bool) -> Request {
    Request {
        model: model.into(),
        stream,
    }
}

#[tokio::test]
async fn chat_example_records_the_same_with_attributes_and_by_hand() {
    for (model, stream) in [("gpt-4o", true), ("gpt-4o", false), ("claude-3", true)] {
        let a = chat_with_macros(request(model, stream), "demo-key").await;
        let b = chat_by_hand(request(model, stream), "demo-key").await;
        assert_eq!(a, b);
    }
    let with_macros = recorded("/seed/macros/chat");
    let by_hand = recorded("/seed/hand/chat");
    assert_eq!(with_macros, by_hand);
    assert_eq!(
        with_macros["request_stage_duration_seconds{stage=auth_validation}"],
        3
    );
    assert_eq!(
        with_macros["backend_ttfb_seconds{model=gpt-4o,provider=openrouter}"],
        2
    );
    assert_eq!(
        with_macros["streaming_duration_seconds{model=claude-3,provider=openrouter}"],
        1
    );
    assert_eq!(with_macros["frontend_processing_seconds{}"], 3);
    assert_eq!(with_macros["stage_percentage{stage=backend_response}"], 1);
    assert_eq!(with_macros["requests_total{outcome=completed}"], 3);
}

#[tokio::test]
async fn responses_example_records_the_same_with_attributes_and_by_hand() {
    for model in ["gpt-4o-mini", "gpt-4o-mini", "o3"] {
        let a = responses_with_macros(request(model, false)).await;
        let b = responses_by_hand(request(model, false)).await;
        assert_eq!(a, b);
    }
    let with_macros = recorded("/seed/macros/responses");
    assert_eq!(with_macros, recorded("/seed/hand/responses"));
    assert_eq!(
        with_macros["backend_ttfb_seconds{model=gpt-4o-mini,provider=portkey}"],
        2
    );
    assert_eq!(with_macros["frontend_processing_seconds{}"], 3);
}
