//! Variant 3: the handler with perf's attributes, as the README shows them (on functions), under
//! `PerfLayer`: the stage (`request_stage_duration_seconds{stage="request_parsing"}` and the
//! front-end time), the backend call (TTFB, `backend_fetch`, the call's duration) and the
//! streaming of its answer, all part of the layer's request.

use axum::body::Bytes;
use axum::response::Response;
use futures_util::stream::Stream;
use perf_runtime::{perf_backend, perf_stage, perf_stream};

use super::{answer, check_work, provider_work, ChatError, Checked, Chunks, PROVIDER};

#[perf_stage(request_parsing)]
fn check(body: &[u8]) -> Result<Checked<'_>, ChatError> {
    check_work(body)
}

#[perf_backend(provider = PROVIDER, model = model)]
async fn call_provider(model: &str, prepared: u64) -> Result<Chunks, ChatError> {
    provider_work(model, prepared)
}

#[perf_stream]
fn relay(chunks: Chunks) -> impl Stream<Item = Bytes> + Send + 'static {
    chunks
}

/// The handler with perf's attributes.
pub async fn chat(body: Bytes) -> Result<Response, ChatError> {
    let checked = check(&body)?;
    let chunks = call_provider(checked.model, checked.prepared).await?;
    Ok(answer(relay(chunks)))
}
