//! The families perf records into, made and registered together: each one's name (from
//! `contract.rs`), help text, label names, buckets and what its histograms keep.

use prometheus::core::Collector;
use prometheus::Registry;

use super::collector::Registered;
use super::contract::*;
use super::count_histogram::CountHistogram;
use super::counter::Counter;
use super::family::{Family, Series};
use super::float::{FloatCounter, Gauge};
use super::gathered::kind_of;
use super::histogram::Histogram;
use super::in_flight::InFlight;
use super::reading::{openmetrics_names, Extras, Kind, ReadFamily};
use super::stage_percentage::StageShares;
use super::InstallError;

/// The families, created and registered together.
pub(crate) struct Families {
    pub backend_ttfb: Family<Histogram>,
    pub streaming_duration: Family<Histogram>,
    pub frontend_processing: Family<Histogram>,
    pub stage_duration: Family<Histogram>,
    pub stage_percentage: Family<StageShares>,
    pub operation_duration: Family<Histogram>,
    pub requests: Family<Counter>,
    pub http_responses: Family<Counter>,
    pub requests_in_flight: Family<InFlight>,
    pub backend_in_flight: Family<InFlight>,
    pub backend_errors: Family<Counter>,
    pub backend_ttft: Family<Histogram>,
    pub backend_chunk_gap: Family<Histogram>,
    pub backend_tokens: Family<Counter>,
    pub request_duration: Family<Histogram>,
    pub gateway_overhead: Family<Histogram>,
    pub backend_call_duration: Family<Histogram>,
    pub backend_call_tokens: Family<CountHistogram>,
    pub request_ttft: Family<Histogram>,
    pub request_time_per_output_token: Family<Histogram>,
    pub http_request_duration: Family<Histogram>,
    pub backend_cost: Family<FloatCounter>,
    pub backend_unpriced_tokens: Family<Counter>,
    pub tenant_requests: Family<Counter>,
    pub tenant_tokens: Family<Counter>,
    pub tenant_cost: Family<FloatCounter>,
    pub ratelimit_remaining: Family<Gauge>,
    pub ratelimit_limit: Family<Gauge>,
    pub ratelimit_reset: Family<Gauge>,
}

fn histogram(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    detail: Extras,
) -> Family<Histogram> {
    Family::new(name, help, labels, &[], move || {
        Histogram::new(buckets, detail)
    })
}

/// Exemplars and native buckets: the families that answer "which request?" and "how many µs?".
const DETAILED: Extras = Extras::ALL;
/// Exemplars only.
const TRACED: Extras = Extras {
    exemplars: true,
    native: false,
};
const PLAIN: Extras = Extras {
    exemplars: false,
    native: false,
};

impl Families {
    /// The families, each name preceded by `prefix` (checked by the caller).
    pub fn new(prefix: &str) -> Self {
        // Made once per `Metrics`, which lives for the process.
        let name = |name: &'static str| -> &'static str {
            if prefix.is_empty() {
                name
            } else {
                Box::leak(format!("{prefix}{name}").into_boxed_str())
            }
        };
        Families {
            backend_ttfb: histogram(
                name(BACKEND_TTFB),
                "Time from sending the request to the LLM provider until its first byte came back.",
                &["provider", "model", "endpoint"],
                &BACKEND_BUCKETS,
                DETAILED,
            ),
            streaming_duration: histogram(
                name(STREAMING_DURATION),
                "Time spent streaming the provider's answer back to the client, until the stream ended or was dropped.",
                &["provider", "model", "endpoint"],
                &BACKEND_BUCKETS,
                DETAILED,
            ),
            frontend_processing: histogram(
                name(FRONTEND_PROCESSING),
                "Gateway's own work before the backend call (parsing, auth, preparation) per request; should stay under 3 ms.",
                &["endpoint"],
                &FRONTEND_BUCKETS,
                DETAILED,
            ),
            stage_duration: histogram(
                name(REQUEST_STAGE_DURATION),
                "Duration of each stage of a request (request_parsing, auth_validation, request_preparation, backend_fetch, stream_processing, or a declared one).",
                &["stage", "endpoint"],
                &STAGE_BUCKETS,
                DETAILED,
            ),
            stage_percentage: Family::new(
                name(STAGE_PERCENTAGE),
                "Share of the last completed request's tracked time spent in frontend_processing, backend_response and stream_processing, in percent.",
                &["endpoint"],
                &["stage"],
                StageShares::new,
            ),
            operation_duration: histogram(
                name(OPERATION_DURATION),
                "Duration of custom operations timed with perf_runtime::track_duration.",
                &["operation"],
                &STAGE_BUCKETS,
                PLAIN,
            ),
            requests: Family::new(
                name(REQUESTS_TOTAL),
                "Requests by how they ended: completed, error (an error returned, a 5xx answer under PerfLayer, a broken answer, a panic), cancelled (dropped before its end, e.g. the client went away).",
                &["endpoint", "outcome"],
                &[],
                Counter::new,
            ),
            http_responses: Family::new(
                name(HTTP_RESPONSES_TOTAL),
                "Answers of the requests PerfLayer saw, by HTTP status code.",
                &["endpoint", "status"],
                &[],
                Counter::new,
            ),
            requests_in_flight: Family::new(
                name(REQUESTS_IN_FLIGHT),
                "Requests begun and not yet ended (the handler runs, or its answer still streams).",
                &["endpoint"],
                &[],
                InFlight::new,
            ),
            backend_in_flight: Family::new(
                name(BACKEND_IN_FLIGHT),
                "Backend calls sent and waiting for the provider's first byte.",
                &["provider"],
                &[],
                InFlight::new,
            ),
            backend_errors: Family::new(
                name(BACKEND_ERRORS),
                "Backend calls that failed, by kind: timeout, connect, status, protocol, broken_off.",
                &["provider", "model", "endpoint", "kind"],
                &[],
                Counter::new,
            ),
            backend_ttft: histogram(
                name(BACKEND_TTFT),
                "Time from sending the request to the LLM provider until its first chunk with content (not the headers, a role-only delta or a keep-alive), as a stream that reads the answer's chunks sees it.",
                &["provider", "model", "endpoint"],
                &TTFT_BUCKETS,
                TRACED,
            ),
            backend_chunk_gap: histogram(
                name(BACKEND_CHUNK_GAP),
                "Time between two consecutive content chunks of a streamed answer, one observation per gap.",
                &["provider", "model", "endpoint"],
                &CHUNK_GAP_BUCKETS,
                PLAIN,
            ),
            backend_tokens: Family::new(
                name(BACKEND_TOKENS),
                "Tokens of the provider's usage, by type: input, output, cached_input, reasoning.",
                &["provider", "model", "endpoint", "type"],
                &[],
                Counter::new,
            ),
            request_duration: histogram(
                name(REQUEST_DURATION),
                "Whole requests, from their start (PerfLayer's, else the handler's) to the end of their answer, by outcome.",
                &["endpoint", "outcome"],
                &REQUEST_BUCKETS,
                TRACED,
            ),
            gateway_overhead: histogram(
                name(GATEWAY_OVERHEAD),
                "A request's time outside its backend windows (sending a backend call to the end of the provider's answer): the gateway's own cost.",
                &["endpoint"],
                &OVERHEAD_BUCKETS,
                PLAIN,
            ),
            backend_call_duration: histogram(
                name(BACKEND_CALL_DURATION),
                "A whole backend call, from sending it to the end of its answer (or its failure).",
                &["provider", "model", "endpoint"],
                &CALL_BUCKETS,
                TRACED,
            ),
            backend_call_tokens: Family::new(
                name(BACKEND_CALL_TOKENS),
                "Input and output tokens of each backend call's usage, by type: one observation per call.",
                &["provider", "model", "endpoint", "type"],
                &[],
                || CountHistogram::new(&TOKEN_BUCKETS),
            ),
            request_ttft: histogram(
                name(REQUEST_TTFT),
                "From a completed request's start to the first content chunk of its answer: the time to first token its client sees.",
                &["endpoint"],
                &TTFT_BUCKETS,
                TRACED,
            ),
            request_time_per_output_token: histogram(
                name(REQUEST_TIME_PER_OUTPUT_TOKEN),
                "A completed request's time after its first content chunk, per output token after the first.",
                &["endpoint"],
                &CHUNK_GAP_BUCKETS,
                PLAIN,
            ),
            http_request_duration: histogram(
                name(HTTP_REQUEST_DURATION),
                "HTTP exchanges of PerfLayer, from the request to the end of the response body, by method and status code.",
                &["endpoint", "method", "status"],
                &REQUEST_BUCKETS,
                PLAIN,
            ),
            backend_cost: Family::new(
                name(BACKEND_COST),
                "What the backend calls cost in US dollars: each call's usage at the price table's rates for its provider and model.",
                &["provider", "model", "endpoint"],
                &[],
                FloatCounter::new,
            ),
            backend_unpriced_tokens: Family::new(
                name(BACKEND_UNPRICED_TOKENS),
                "Tokens of backend calls whose model the price table does not have, by type: their cost is not in backend_cost_usd_total.",
                &["provider", "model", "endpoint", "type"],
                &[],
                Counter::new,
            ),
            tenant_requests: Family::new(
                name(TENANT_REQUESTS),
                "Requests of each tenant (from the API key, say), by endpoint and how they ended.",
                &["tenant", "endpoint", "outcome"],
                &[],
                Counter::new,
            ),
            tenant_tokens: Family::new(
                name(TENANT_TOKENS),
                "Tokens of each tenant's backend calls, by type: input, output, cached_input, reasoning, cache_write.",
                &["tenant", "type"],
                &[],
                Counter::new,
            ),
            tenant_cost: Family::new(
                name(TENANT_COST),
                "What each tenant's backend calls cost in US dollars.",
                &["tenant"],
                &[],
                FloatCounter::new,
            ),
            ratelimit_remaining: Family::new(
                name(BACKEND_RATELIMIT_REMAINING),
                "What is left of the provider's rate limit, by resource (requests, tokens, input_tokens, output_tokens), as its latest answer's headers said.",
                &["provider", "model", "resource"],
                &[],
                Gauge::new,
            ),
            ratelimit_limit: Family::new(
                name(BACKEND_RATELIMIT_LIMIT),
                "The provider's rate limit, by resource, as its latest answer's headers said.",
                &["provider", "model", "resource"],
                &[],
                Gauge::new,
            ),
            ratelimit_reset: Family::new(
                name(BACKEND_RATELIMIT_RESET),
                "Seconds until the provider's rate limit is replenished, by resource, as its latest answer's headers said.",
                &["provider", "model", "resource"],
                &[],
                Gauge::new,
            ),
        }
    }

    /// One collector per family, each with the family's name; `requests_total`, the name an
    /// application most likely has already, first (see [`register`](Self::register)).
    fn collectors(&'static self) -> [(&'static str, Box<dyn Collector>); 29] {
        fn registered<T: Series>(family: &'static Family<T>) -> (&'static str, Box<dyn Collector>) {
            (family.name(), Box::new(Registered(family)))
        }
        [
            registered(&self.requests),
            registered(&self.operation_duration),
            registered(&self.backend_ttfb),
            registered(&self.streaming_duration),
            registered(&self.frontend_processing),
            registered(&self.stage_duration),
            registered(&self.stage_percentage),
            registered(&self.requests_in_flight),
            registered(&self.backend_in_flight),
            registered(&self.backend_errors),
            registered(&self.backend_ttft),
            registered(&self.backend_chunk_gap),
            registered(&self.backend_tokens),
            registered(&self.request_duration),
            registered(&self.gateway_overhead),
            registered(&self.http_responses),
            registered(&self.backend_call_duration),
            registered(&self.backend_call_tokens),
            registered(&self.request_ttft),
            registered(&self.request_time_per_output_token),
            registered(&self.http_request_duration),
            registered(&self.backend_cost),
            registered(&self.backend_unpriced_tokens),
            registered(&self.tenant_requests),
            registered(&self.tenant_tokens),
            registered(&self.tenant_cost),
            registered(&self.ratelimit_remaining),
            registered(&self.ratelimit_limit),
            registered(&self.ratelimit_reset),
        ]
    }

    /// Each family under its contract name (without the prefix), for the readers that rename
    /// them (the OTLP export).
    pub fn by_contract_name(&self) -> [(&'static str, &dyn ReadFamily); 29] {
        [
            (REQUESTS_TOTAL, &self.requests),
            (OPERATION_DURATION, &self.operation_duration),
            (BACKEND_TTFB, &self.backend_ttfb),
            (STREAMING_DURATION, &self.streaming_duration),
            (FRONTEND_PROCESSING, &self.frontend_processing),
            (REQUEST_STAGE_DURATION, &self.stage_duration),
            (STAGE_PERCENTAGE, &self.stage_percentage),
            (REQUESTS_IN_FLIGHT, &self.requests_in_flight),
            (BACKEND_IN_FLIGHT, &self.backend_in_flight),
            (BACKEND_ERRORS, &self.backend_errors),
            (BACKEND_TTFT, &self.backend_ttft),
            (BACKEND_CHUNK_GAP, &self.backend_chunk_gap),
            (BACKEND_TOKENS, &self.backend_tokens),
            (REQUEST_DURATION, &self.request_duration),
            (GATEWAY_OVERHEAD, &self.gateway_overhead),
            (HTTP_RESPONSES_TOTAL, &self.http_responses),
            (BACKEND_CALL_DURATION, &self.backend_call_duration),
            (BACKEND_CALL_TOKENS, &self.backend_call_tokens),
            (REQUEST_TTFT, &self.request_ttft),
            (
                REQUEST_TIME_PER_OUTPUT_TOKEN,
                &self.request_time_per_output_token,
            ),
            (HTTP_REQUEST_DURATION, &self.http_request_duration),
            (BACKEND_COST, &self.backend_cost),
            (BACKEND_UNPRICED_TOKENS, &self.backend_unpriced_tokens),
            (TENANT_REQUESTS, &self.tenant_requests),
            (TENANT_TOKENS, &self.tenant_tokens),
            (TENANT_COST, &self.tenant_cost),
            (BACKEND_RATELIMIT_REMAINING, &self.ratelimit_remaining),
            (BACKEND_RATELIMIT_LIMIT, &self.ratelimit_limit),
            (BACKEND_RATELIMIT_RESET, &self.ratelimit_reset),
        ]
    }

    /// Every family, for the readers that take their names as they are (the exposition, the
    /// snapshots).
    pub fn all(&self) -> [&dyn ReadFamily; 29] {
        self.by_contract_name().map(|(_, family)| family)
    }

    /// Each family's name and type.
    fn kinds(&self) -> [(&'static str, Kind); 29] {
        fn of<T: Series>(family: &Family<T>) -> (&'static str, Kind) {
            (family.name(), T::KIND)
        }
        [
            of(&self.requests),
            of(&self.operation_duration),
            of(&self.backend_ttfb),
            of(&self.streaming_duration),
            of(&self.frontend_processing),
            of(&self.stage_duration),
            of(&self.stage_percentage),
            of(&self.requests_in_flight),
            of(&self.backend_in_flight),
            of(&self.backend_errors),
            of(&self.backend_ttft),
            of(&self.backend_chunk_gap),
            of(&self.backend_tokens),
            of(&self.request_duration),
            of(&self.gateway_overhead),
            of(&self.http_responses),
            of(&self.backend_call_duration),
            of(&self.backend_call_tokens),
            of(&self.request_ttft),
            of(&self.request_time_per_output_token),
            of(&self.http_request_duration),
            of(&self.backend_cost),
            of(&self.backend_unpriced_tokens),
            of(&self.tenant_requests),
            of(&self.tenant_tokens),
            of(&self.tenant_cost),
            of(&self.ratelimit_remaining),
            of(&self.ratelimit_limit),
            of(&self.ratelimit_reset),
        ]
    }

    /// Fails if a family of `registry` takes a name that one of perf's takes in OpenMetrics
    /// (see [`openmetrics_names`]): checked before registering, so that the registry is left as
    /// it was. A family of the very same name is left to [`register`](Self::register), which
    /// says so as [`InstallError::NameTaken`].
    ///
    /// Only families with series are gathered: one without yet, or one registered later, is
    /// handled when `/metrics` is rendered (`exposition::openmetrics::without_clashes`).
    pub fn check_openmetrics(&self, registry: &Registry) -> Result<(), InstallError> {
        // Before perf's own are registered: every family is another's.
        let theirs = registry.gather();
        if theirs.is_empty() {
            return Ok(());
        }
        for (name, kind) in self.kinds() {
            let ours: Vec<String> = openmetrics_names(name, kind).collect();
            for family in &theirs {
                if family.name() == name {
                    continue;
                }
                if openmetrics_names(family.name(), kind_of(family)).any(|n| ours.contains(&n)) {
                    return Err(InstallError::OpenMetricsClash {
                        name,
                        theirs: family.name().to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Registers every family in `registry`, or none: if a name is taken, the families
    /// registered before it are taken out again and the error names it.
    ///
    /// The `prometheus` registry remembers the label names of every name it ever registered,
    /// even once unregistered: a family taken out again still reserves its name for perf's
    /// label names. Registering the likeliest clash first makes that rare.
    pub fn register(&'static self, registry: &Registry) -> Result<(), InstallError> {
        for (done, (name, collector)) in self.collectors().into_iter().enumerate() {
            if let Err(error) = registry.register(collector) {
                for (_, collector) in self.collectors().into_iter().take(done) {
                    let _ = registry.unregister(collector);
                }
                return Err(InstallError::NameTaken { name, error });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn perfs_families_take_distinct_openmetrics_names() {
        for prefix in ["", "llm_"] {
            let families = Families::new(prefix);
            let mut seen = HashSet::new();
            for (name, kind) in families.kinds() {
                for taken in openmetrics_names(name, kind) {
                    assert!(seen.insert(taken.clone()), "{taken} twice");
                }
            }
            assert!(seen.contains(&format!("{prefix}requests")));
            assert!(seen.contains(&format!("{prefix}backend_ttfb_seconds_created")));
        }
    }
}
