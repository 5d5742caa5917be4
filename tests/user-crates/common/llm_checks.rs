//! What `/metrics` must say after [`send_requests`](crate::llm::send_requests), the same with
//! `PerfLayer` and with `#[perf_endpoint]` alone: the provider calls, the streamed answers
//! (time to first token, chunk gaps and tokens, once per answer), the stages, the requests'
//! durations and the application's own counter. The outcomes, which differ, are the tests'.

use crate::exposition::Exposition;
use crate::llm::{
    AGGREGATED, ALL, BAD, DOWN, ENDPOINT, FAILED, HEAD, LEFT, MOCK, MODEL, PROMPT_TOKENS,
    SLOW_MODEL, SLOW_TOKENS, STREAMED, TOKENS,
};

/// `(completed, error, cancelled)` of `requests_total{endpoint}`.
pub fn outcomes(m: &Exposition, endpoint: &str) -> (u64, u64, u64) {
    let get = |outcome| {
        m.counter(
            "requests_total",
            &[("endpoint", endpoint), ("outcome", outcome)],
        )
    };
    (get("completed"), get("error"), get("cancelled"))
}

/// Each outcome's requests have one `request_duration_seconds` observation, and none is in
/// flight.
pub fn assert_requests_ended(m: &Exposition, endpoint: &str) {
    for outcome in ["completed", "error", "cancelled"] {
        let labels = [("endpoint", endpoint), ("outcome", outcome)];
        assert_eq!(
            m.observations("request_duration_seconds", &labels),
            m.counter("requests_total", &labels),
            "request_duration_seconds of {endpoint} {outcome}\n{}",
            m.text
        );
    }
    assert_eq!(m.kind("requests_in_flight"), Some("gauge"));
    assert_eq!(
        m.count("requests_in_flight", &[("endpoint", endpoint)]),
        0,
        "{endpoint} in flight\n{}",
        m.text
    );
}

/// Everything but the outcomes.
pub fn assert_calls_streams_and_app(m: &Exposition) {
    let ep = ("endpoint", ENDPOINT);
    let mock = [ep, ("provider", MOCK), ("model", MODEL)];
    let slow = [ep, ("provider", MOCK), ("model", SLOW_MODEL)];
    let down = [ep, ("provider", DOWN), ("model", crate::llm::BROKEN_MODEL)];
    let read = STREAMED + AGGREGATED;
    let text = &m.text;

    // One TTFB per call answered; none for the calls that failed, each counted once as an
    // error although reported twice (by the provider and by the handler).
    let ttfb = "backend_ttfb_seconds";
    assert_eq!(m.observations(ttfb, &mock), read + HEAD, "TTFB\n{text}");
    assert_eq!(
        m.observations(ttfb, &slow),
        LEFT,
        "TTFB of the left\n{text}"
    );
    assert_eq!(
        m.observations(ttfb, &down),
        0,
        "TTFB of failed calls\n{text}"
    );
    let errors = "backend_errors_total";
    assert_eq!(m.counter(errors, &[ep]), FAILED, "backend errors\n{text}");
    assert_eq!(m.counter(errors, &[("kind", "status")]), FAILED, "{text}");
    assert_eq!(m.counter(errors, &down), FAILED, "{text}");
    for provider in [MOCK, DOWN] {
        let labels = [("provider", provider)];
        assert_eq!(m.count("backend_in_flight", &labels), 0, "{text}");
    }

    // Each answer read (streamed out, or aggregated by the handler) once: its first token, the
    // gaps between its tokens and its usage. Not the HEAD's, which nobody read; the left
    // client's first token, and no usage (it comes at the end).
    let ttft = "backend_ttft_seconds";
    assert_eq!(m.observations(ttft, &mock), read, "TTFT\n{text}");
    assert_eq!(
        m.observations(ttft, &slow),
        LEFT,
        "TTFT of the left\n{text}"
    );
    let gaps = "backend_chunk_gap_seconds";
    assert_eq!(
        m.observations(gaps, &mock),
        read * (TOKENS - 1),
        "gaps\n{text}"
    );
    let slow_gaps = m.observations(gaps, &slow);
    assert!(
        slow_gaps < LEFT * (SLOW_TOKENS - 1),
        "{slow_gaps} gaps\n{text}"
    );
    let tokens = |labels: &[(&str, &str)], kind| {
        let mut labels = labels.to_vec();
        labels.push(("type", kind));
        m.counter("backend_tokens_total", &labels)
    };
    assert_eq!(tokens(&mock, "input"), read * PROMPT_TOKENS, "{text}");
    assert_eq!(tokens(&mock, "output"), read * TOKENS, "{text}");
    assert_eq!(tokens(&mock, "cached_input"), 0, "{text}");
    assert_eq!(
        tokens(&slow, "input") + tokens(&slow, "output"),
        0,
        "{text}"
    );
    let streaming = "streaming_duration_seconds";
    assert_eq!(m.observations(streaming, &mock), read, "streaming\n{text}");
    assert_eq!(m.observations(streaming, &slow), LEFT, "streaming\n{text}");

    // The stages: parsing for every request, a backend call for each but the bad ones.
    let stage = |name| {
        let labels = [ep, ("stage", name)];
        m.observations("request_stage_duration_seconds", &labels)
    };
    assert_eq!(stage("request_parsing"), ALL, "request_parsing\n{text}");
    assert_eq!(stage("backend_fetch"), ALL - BAD, "backend_fetch\n{text}");
    assert_eq!(
        stage("stream_processing"),
        read + LEFT,
        "stream_processing\n{text}"
    );
    assert_eq!(m.kind("stage_percentage"), Some("gauge"));

    assert_eq!(
        m.observations("gateway_overhead_seconds", &[ep]),
        ALL,
        "gateway_overhead_seconds\n{text}"
    );

    // The application's own counter, beside perf's families.
    let answers = |mode| m.counter("app_answers_total", &[("mode", mode)]);
    assert_eq!(answers("stream"), STREAMED + HEAD + LEFT, "{text}");
    assert_eq!(answers("json"), AGGREGATED, "{text}");
    assert!(
        text.contains("# HELP app_answers_total Answers by mode.\n"),
        "{text}"
    );
}
