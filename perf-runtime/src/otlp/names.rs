//! What each of perf's families is called in OTLP, and what its labels become: the OpenTelemetry
//! GenAI semantic conventions where they name the same thing, the HTTP ones for routes and
//! status codes, and a `perf.` namespace for the rest. docs/metrics.md has the table.

// Matched as paths (`m::NAME`): a name missing here is a compile error, never a catch-all.
use crate::metrics as m;
use crate::metrics::reading::SeriesReading;

/// How a family is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A monotonic sum (a Prometheus counter).
    Counter,
    /// A sum that goes up and down (requests under way: an `UpDownCounter`).
    UpDown,
    /// A gauge (a value set, not added).
    Gauge,
    /// A histogram: exponential where the family keeps native buckets, else explicit buckets.
    Histogram,
}

/// One family's OTLP name, unit and shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Name {
    pub otlp: &'static str,
    pub unit: &'static str,
    pub shape: Shape,
}

/// The OTLP name of the family of contract name `prometheus`; `None` for none of perf's.
pub(crate) fn of(prometheus: &str) -> Option<Name> {
    use Shape::*;
    let (otlp, unit, shape) = match prometheus {
        // The GenAI conventions' client side: perf's backend call is a GenAI client operation.
        m::BACKEND_CALL_DURATION => ("gen_ai.client.operation.duration", "s", Histogram),
        m::BACKEND_CALL_TOKENS => ("gen_ai.client.token.usage", "{token}", Histogram),
        m::BACKEND_TTFT => (
            "gen_ai.client.operation.time_to_first_chunk",
            "s",
            Histogram,
        ),
        m::BACKEND_CHUNK_GAP => (
            "gen_ai.client.operation.time_per_output_chunk",
            "s",
            Histogram,
        ),
        // Its server side: the gateway's request, from its client's side of it.
        m::REQUEST_DURATION => ("gen_ai.server.request.duration", "s", Histogram),
        m::REQUEST_TTFT => ("gen_ai.server.time_to_first_token", "s", Histogram),
        m::REQUEST_TIME_PER_OUTPUT_TOKEN => ("gen_ai.server.time_per_output_token", "s", Histogram),
        // The HTTP conventions: the layer's exchanges.
        m::HTTP_REQUEST_DURATION => ("http.server.request.duration", "s", Histogram),
        // perf's own.
        m::BACKEND_TTFB => ("perf.backend.time_to_first_byte", "s", Histogram),
        m::STREAMING_DURATION => ("perf.backend.streaming.duration", "s", Histogram),
        m::BACKEND_TOKENS => ("perf.backend.tokens", "{token}", Counter),
        m::BACKEND_ERRORS => ("perf.backend.errors", "{error}", Counter),
        m::BACKEND_IN_FLIGHT => ("perf.backend.active_calls", "{call}", UpDown),
        m::FRONTEND_PROCESSING => ("perf.frontend.duration", "s", Histogram),
        m::REQUEST_STAGE_DURATION => ("perf.stage.duration", "s", Histogram),
        m::STAGE_PERCENTAGE => ("perf.stage.share", "%", Gauge),
        m::OPERATION_DURATION => ("perf.operation.duration", "s", Histogram),
        m::REQUESTS_TOTAL => ("perf.requests", "{request}", Counter),
        m::REQUESTS_IN_FLIGHT => ("perf.requests.active", "{request}", UpDown),
        m::GATEWAY_OVERHEAD => ("perf.gateway.overhead", "s", Histogram),
        m::HTTP_RESPONSES_TOTAL => ("perf.http.responses", "{response}", Counter),
        m::BACKEND_COST => ("perf.backend.cost", "USD", Counter),
        m::BACKEND_UNPRICED_TOKENS => ("perf.backend.unpriced_tokens", "{token}", Counter),
        m::TENANT_REQUESTS => ("perf.tenant.requests", "{request}", Counter),
        m::TENANT_TOKENS => ("perf.tenant.tokens", "{token}", Counter),
        m::TENANT_COST => ("perf.tenant.cost", "USD", Counter),
        m::BACKEND_RATELIMIT_REMAINING => ("perf.backend.ratelimit.remaining", "1", Gauge),
        m::BACKEND_RATELIMIT_LIMIT => ("perf.backend.ratelimit.limit", "1", Gauge),
        m::BACKEND_RATELIMIT_RESET => ("perf.backend.ratelimit.reset", "s", Gauge),
        _ => return None,
    };
    Some(Name { otlp, unit, shape })
}

/// An attribute of a data point: its key and value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Attribute {
    Str(&'static str, String),
    Int(&'static str, i64),
}

/// The attributes a series' labels become. `endpoint` gives `http.route` and the GenAI
/// operation it serves (`gen_ai.operation.name`); an `outcome` other than `completed` gives
/// `error.type`, as an error `kind` does.
pub(crate) fn attributes(labels: &[(impl AsRef<str>, impl AsRef<str>)]) -> Vec<Attribute> {
    let mut out = Vec::with_capacity(labels.len() + 1);
    for (name, value) in labels {
        let value = value.as_ref();
        match name.as_ref() {
            "endpoint" => {
                out.push(Attribute::Str("http.route", value.to_owned()));
                if let Some(operation) = operation_name(value) {
                    out.push(Attribute::Str(
                        "gen_ai.operation.name",
                        operation.to_owned(),
                    ));
                }
            }
            "provider" => out.push(Attribute::Str("gen_ai.provider.name", value.to_owned())),
            "model" => out.push(Attribute::Str("gen_ai.request.model", value.to_owned())),
            "type" => out.push(Attribute::Str("gen_ai.token.type", value.to_owned())),
            "kind" => out.push(Attribute::Str("error.type", value.to_owned())),
            "outcome" => {
                out.push(Attribute::Str("perf.outcome", value.to_owned()));
                if value != "completed" {
                    out.push(Attribute::Str("error.type", value.to_owned()));
                }
            }
            "status" => match value.parse() {
                Ok(code) => out.push(Attribute::Int("http.response.status_code", code)),
                Err(_) => out.push(Attribute::Str("perf.status", value.to_owned())),
            },
            "stage" => out.push(Attribute::Str("perf.stage", value.to_owned())),
            "method" => out.push(Attribute::Str("http.request.method", value.to_owned())),
            "tenant" => out.push(Attribute::Str("perf.tenant", value.to_owned())),
            "resource" => out.push(Attribute::Str("perf.resource", value.to_owned())),
            "operation" => out.push(Attribute::Str("perf.operation", value.to_owned())),
            other => out.push(Attribute::Str(leak_unknown(other), value.to_owned())),
        }
    }
    out
}

/// Whether `series` is of a route that serves a GenAI operation (see [`operation_name`]).
pub(crate) fn is_genai_operation(series: &SeriesReading) -> bool {
    series
        .labels
        .iter()
        .any(|(name, value)| name == "endpoint" && operation_name(value).is_some())
}

/// The `gen_ai.operation.name` of a gateway route, from its last segments: `chat` for chat
/// completions, the Responses API and Anthropic's messages, `embeddings`, `text_completion` for
/// the legacy completions; `None` for other routes (a listing of models, a health check).
pub(crate) fn operation_name(route: &str) -> Option<&'static str> {
    let route = route.trim_end_matches('/');
    if route.ends_with("/chat/completions")
        || route.ends_with("/responses")
        || route.ends_with("/messages")
    {
        Some("chat")
    } else if route.ends_with("/embeddings") {
        Some("embeddings")
    } else if route.ends_with("/completions") {
        Some("text_completion")
    } else {
        None
    }
}

/// A label name perf does not map, as an attribute key: `perf.` and the name. perf's families
/// have none; kept for a family added without a mapping here.
fn leak_unknown(name: &str) -> &'static str {
    match name {
        "le" => "perf.le",
        _ => "perf.label",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_their_operation() {
        assert_eq!(operation_name("/v1/chat/completions"), Some("chat"));
        assert_eq!(operation_name("/v1/responses"), Some("chat"));
        assert_eq!(operation_name("/v1/messages"), Some("chat"));
        assert_eq!(operation_name("/v1/embeddings"), Some("embeddings"));
        assert_eq!(operation_name("/v1/completions"), Some("text_completion"));
        assert_eq!(operation_name("/v1/models"), None);
    }

    #[test]
    fn labels_become_semantic_attributes() {
        let attributes = attributes(&[
            ("endpoint", "/v1/chat/completions"),
            ("model", "gpt-4o"),
            ("outcome", "error"),
            ("provider", "openai"),
            ("status", "503"),
        ]);
        assert_eq!(
            attributes,
            [
                Attribute::Str("http.route", "/v1/chat/completions".into()),
                Attribute::Str("gen_ai.operation.name", "chat".into()),
                Attribute::Str("gen_ai.request.model", "gpt-4o".into()),
                Attribute::Str("perf.outcome", "error".into()),
                Attribute::Str("error.type", "error".into()),
                Attribute::Str("gen_ai.provider.name", "openai".into()),
                Attribute::Int("http.response.status_code", 503),
            ]
        );
    }
}
