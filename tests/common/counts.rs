//! The example gateway's numbers in the global metrics, read with the test kit's reader
//! (`perf_test_kit::registry`): the stages its requests go through, its mock's usage and tokens,
//! a provider's errors.

use perf_test_kit::{count, counter, global};

/// `backend_errors_total{provider, model, endpoint, kind}` now, 0 if that series does not
/// exist yet.
pub fn backend_errors(provider: &str, model: &str, endpoint: &str, kind: &str) -> u64 {
    counter(
        global(),
        "backend_errors_total",
        &[
            ("provider", provider),
            ("model", model),
            ("endpoint", endpoint),
            ("kind", kind),
        ],
    )
}

/// The stages every request of the gateway goes through, in order.
pub const STAGES: [&str; 5] = [
    "request_parsing",
    "auth_validation",
    "request_preparation",
    "backend_fetch",
    "stream_processing",
];

/// The observations of each of [`STAGES`] at `endpoint`.
pub fn stage_counts(endpoint: &str) -> [u64; 5] {
    STAGES.map(|stage| perf_test_kit::stage_count(global(), endpoint, stage))
}

/// `(backend_ttfb count, streaming_duration count)` of `model` at `endpoint` (provider mock).
pub fn backend_counts(endpoint: &str, model: &str) -> (u64, u64) {
    let labels = [
        ("provider", "mock"),
        ("model", model),
        ("endpoint", endpoint),
    ];
    (
        count(global(), "backend_ttfb_seconds", &labels),
        count(global(), "streaming_duration_seconds", &labels),
    )
}

/// `after - before`, element by element.
pub fn diff<const N: usize>(after: [u64; N], before: [u64; N]) -> [u64; N] {
    std::array::from_fn(|i| after[i] - before[i])
}

/// The `usage` the mock reports for a prompt of `prompt_chars` characters and an answer of
/// `chunks` words (src/gateway/mock: a quarter of the characters rounded up, half of them
/// cached; one token per word, a quarter of them reasoning).
pub fn mock_usage(prompt_chars: u64, chunks: u64) -> perf_runtime::Usage {
    let input = prompt_chars.div_ceil(4);
    perf_runtime::Usage {
        input,
        output: chunks,
        cached_input: input / 2,
        reasoning: chunks / 4,
        cache_write: 0,
    }
}

/// `backend_tokens_total{provider="mock", model, endpoint, type}` of each type, 0 for a type
/// not counted yet.
pub fn mock_tokens(model: &str, endpoint: &str) -> perf_runtime::Usage {
    let get = |kind| {
        counter(
            global(),
            "backend_tokens_total",
            &[
                ("provider", "mock"),
                ("model", model),
                ("endpoint", endpoint),
                ("type", kind),
            ],
        )
    };
    perf_runtime::Usage {
        input: get("input"),
        output: get("output"),
        cached_input: get("cached_input"),
        reasoning: get("reasoning"),
        cache_write: get("cache_write"),
    }
}
