//! Variant 5: `#[autometrics]` on the handler and on the two functions it calls, as its README
//! shows (`prometheus_exporter::init()` at start, here with the prometheus 0.14 backend). Each
//! call of each function counts `function_calls_total` and observes
//! `function_calls_duration_seconds`; the streamed answer is not a function call, so its time is
//! not recorded (autometrics has no stream support).

use autometrics::autometrics;
use axum::body::Bytes;
use axum::response::Response;

use super::{answer, check_work, provider_work, ChatError, Checked, Chunks};

#[autometrics]
fn check(body: &[u8]) -> Result<Checked<'_>, ChatError> {
    check_work(body)
}

#[autometrics]
async fn call_provider(model: &str, prepared: u64) -> Result<Chunks, ChatError> {
    provider_work(model, prepared)
}

/// The handler with `#[autometrics]`.
#[autometrics]
pub async fn chat(body: Bytes) -> Result<Response, ChatError> {
    let checked = check(&body)?;
    let chunks = call_provider(checked.model, checked.prepared).await?;
    Ok(answer(chunks))
}
