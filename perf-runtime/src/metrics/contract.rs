//! The metric contract in code: the families' names, their buckets and the outcome labels.
//! Their help texts and label names are given where they are made (`families.rs`).
//!
//! Names, labels and buckets are a public contract (docs/metrics.md): dashboards and alert rules
//! are written against them, so they never change. A prefix (`MetricsBuilder::prefix`) puts
//! perf's families beside an application's own families of the same names.

/// Buckets of `backend_ttfb_seconds` and `streaming_duration_seconds`, in seconds.
pub const BACKEND_BUCKETS: [f64; 9] = [0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0];

/// Buckets of `frontend_processing_seconds`, in seconds: front-end work should stay under 3 ms.
pub const FRONTEND_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5];

/// Buckets of `request_stage_duration_seconds` and `operation_duration_seconds`, in seconds.
///
/// One histogram carries both the front-end stages (parsing and auth take 0.1–3 ms) and the
/// backend stages (TTFB and streaming take 0.5–10 s), so the buckets follow the 1–2.5–5 series
/// from 100 µs to 10 s: three buckets per decade keep `histogram_quantile` within a factor of
/// about 2 of the truth at every scale, for 16 series per stage and endpoint.
pub const STAGE_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// `backend_ttfb_seconds{provider, model, endpoint}`.
pub const BACKEND_TTFB: &str = "backend_ttfb_seconds";
/// `streaming_duration_seconds{provider, model, endpoint}`.
pub const STREAMING_DURATION: &str = "streaming_duration_seconds";
/// `frontend_processing_seconds{endpoint}`.
pub const FRONTEND_PROCESSING: &str = "frontend_processing_seconds";
/// `request_stage_duration_seconds{stage, endpoint}`.
pub const REQUEST_STAGE_DURATION: &str = "request_stage_duration_seconds";
/// `stage_percentage{stage, endpoint}`.
pub const STAGE_PERCENTAGE: &str = "stage_percentage";
/// `operation_duration_seconds{operation}`: the histogram of [`track_duration`](crate::track_duration).
pub const OPERATION_DURATION: &str = "operation_duration_seconds";

/// `requests_total{endpoint, outcome}`: how each request ended (`completed`, `error`,
/// `cancelled`). Beyond the seed's families; it adds no label to them.
pub const REQUESTS_TOTAL: &str = "requests_total";

/// `http_responses_total{endpoint, status}`: the layer's answers by HTTP status code
/// ([`PerfLayer`](crate::PerfLayer) only: a `#[perf_endpoint]` handler alone does not see its
/// response's status).
pub const HTTP_RESPONSES_TOTAL: &str = "http_responses_total";

/// `requests_in_flight{endpoint}`: requests begun and not yet ended.
pub const REQUESTS_IN_FLIGHT: &str = "requests_in_flight";

/// `backend_in_flight{provider}`: backend calls waiting for their first byte.
pub const BACKEND_IN_FLIGHT: &str = "backend_in_flight";

/// `backend_errors_total{provider, model, endpoint, kind}`: backend calls that failed, by kind
/// (see [`BackendErrorKind`](crate::BackendErrorKind)).
pub const BACKEND_ERRORS: &str = "backend_errors_total";

/// Buckets of `backend_ttft_seconds`, in seconds: the first token comes within a second or two
/// of a healthy provider, so the buckets are dense there (every 100 ms up to half a second),
/// and reach the same 10 s as TTFB for a provider that thinks long.
pub const TTFT_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0,
];

/// Buckets of `backend_chunk_gap_seconds`, in seconds: a provider streams tokens every 5–100 ms;
/// a stall is a gap of a quarter second or more, which the upper buckets tell apart.
pub const CHUNK_GAP_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
];

/// Buckets of `request_duration_seconds`, in seconds: [`STAGE_BUCKETS`] (a 401 answered in
/// microseconds) continued to 100 s (a long answer streamed out).
pub const REQUEST_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 25.0, 50.0, 100.0,
];

/// Buckets of `gateway_overhead_seconds`, in seconds: the gateway's own share of a request,
/// 100 µs to 1 s, with the 1–2.5–5 series of the stage buckets.
pub const OVERHEAD_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// `backend_ttft_seconds{provider, model, endpoint}`: from sending the request to the first
/// chunk that carries content. Streamed answers only.
pub const BACKEND_TTFT: &str = "backend_ttft_seconds";

/// `backend_chunk_gap_seconds{provider, model, endpoint}`: each gap between two content chunks.
pub const BACKEND_CHUNK_GAP: &str = "backend_chunk_gap_seconds";

/// `backend_tokens_total{provider, model, endpoint, type}`: tokens of the provider's `usage`, by
/// `type` (`input`, `output`, `cached_input`, `reasoning`).
pub const BACKEND_TOKENS: &str = "backend_tokens_total";

/// `request_duration_seconds{endpoint, outcome}`: a whole request, from its handler's start to
/// its end (its answer streamed out), by outcome.
pub const REQUEST_DURATION: &str = "request_duration_seconds";

/// `gateway_overhead_seconds{endpoint}`: a request's time outside its backend windows (from
/// sending each backend call to the end of the provider's answer).
pub const GATEWAY_OVERHEAD: &str = "gateway_overhead_seconds";

/// Buckets of `backend_call_duration_seconds`, in seconds: the OpenTelemetry GenAI semantic
/// conventions' advice for `gen_ai.client.operation.duration` (10 ms doubling to 82 s).
pub const CALL_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// Buckets of `backend_call_tokens`, in tokens: the GenAI conventions' advice for
/// `gen_ai.client.token.usage` (powers of 4 from 1 to 67,108,864).
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// `backend_call_duration_seconds{provider, model, endpoint}`: a whole backend call, from
/// sending it to the end of its answer (the last item of the stream that read it), or to its
/// failure.
pub const BACKEND_CALL_DURATION: &str = "backend_call_duration_seconds";

/// `backend_call_tokens{provider, model, endpoint, type}`: the tokens of each call's usage, by
/// type: one observation per call and type it reported.
pub const BACKEND_CALL_TOKENS: &str = "backend_call_tokens";

/// `request_ttft_seconds{endpoint}`: from a request's start to the first content chunk of its
/// answer, as the client sees it (completed requests).
pub const REQUEST_TTFT: &str = "request_ttft_seconds";

/// `request_time_per_output_token_seconds{endpoint}`: a completed request's time after its
/// first content chunk, per output token after the first.
pub const REQUEST_TIME_PER_OUTPUT_TOKEN: &str = "request_time_per_output_token_seconds";

/// `http_request_duration_seconds{endpoint, method, status}`: the layer's HTTP exchanges, by
/// method and status code ([`PerfLayer`](crate::PerfLayer) only).
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";

/// `backend_cost_usd_total{provider, model, endpoint}`: what the backend calls cost, in US
/// dollars, from each call's usage and the price table ([`crate::prices`]).
pub const BACKEND_COST: &str = "backend_cost_usd_total";

/// `backend_unpriced_tokens_total{provider, model, endpoint, type}`: tokens of calls whose model
/// the price table does not have (counted while a table is set), by `type`.
pub const BACKEND_UNPRICED_TOKENS: &str = "backend_unpriced_tokens_total";

/// `tenant_requests_total{tenant, endpoint, outcome}`: requests of a tenant
/// ([`current::set_tenant`](crate::current::set_tenant)), by outcome.
pub const TENANT_REQUESTS: &str = "tenant_requests_total";

/// `tenant_tokens_total{tenant, type}`: tokens of a tenant's requests, by `type`.
pub const TENANT_TOKENS: &str = "tenant_tokens_total";

/// `tenant_cost_usd_total{tenant}`: what a tenant's requests cost, in US dollars.
pub const TENANT_COST: &str = "tenant_cost_usd_total";

/// `backend_ratelimit_remaining{provider, model, resource}`: what the provider said is left of
/// its limit (`resource`: `requests`, `tokens`, `input_tokens`, `output_tokens`).
pub const BACKEND_RATELIMIT_REMAINING: &str = "backend_ratelimit_remaining";

/// `backend_ratelimit_limit{provider, model, resource}`: the provider's limit.
pub const BACKEND_RATELIMIT_LIMIT: &str = "backend_ratelimit_limit";

/// `backend_ratelimit_reset_seconds{provider, model, resource}`: how long until the limit is
/// replenished, as the provider said at its latest answer.
pub const BACKEND_RATELIMIT_RESET: &str = "backend_ratelimit_reset_seconds";

/// The values of the `outcome` label of `requests_total`.
pub const OUTCOMES: [&str; 3] = ["completed", "error", "cancelled"];
