//! The one handler every variant runs, and its work.
//!
//! A request to `POST /v1/chat/completions` with a JSON body: one front-end stage (find the model
//! and the key in the body, check the key in constant time, hash what would be the provider's
//! request), one backend call (an `async fn` whose answer is ready at once: no network, so that
//! what differs between variants is their instrumentation alone), and an answer of 5 chunks
//! streamed as the response body. Each instrumented variant wraps exactly these three functions
//! (`perf.rs`, `autometrics.rs`, `by_hand.rs`); the work itself is written once, here, and
//! inlined into each wrapper alike. `floor.rs` makes perf's observations alone, by hand: what
//! perf's full request cannot cost less than.

pub mod autometrics;
pub mod by_hand;
pub mod floor;
pub mod perf;

use std::convert::Infallible;
use std::hint::black_box;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};

/// The route of every variant's one-route router.
pub const ROUTE: &str = "/v1/chat/completions";
/// The request body: the compiler cannot see through it (`black_box` at each request).
pub const BODY: &str = r#"{"model":"gpt-4o-mini","key":"sk-bench-0123456789","stream":true}"#;
/// The key the stage accepts.
const KEY: &str = "sk-bench-0123456789";
/// The provider's label for perf's backend call.
pub const PROVIDER: &str = "openrouter";
/// The answer: 5 chunks, relayed as 5 data frames.
const CHUNKS: [&str; 5] = [
    "data: {\"delta\":\"Hel\"}\n\n",
    "data: {\"delta\":\"lo, \"}\n\n",
    "data: {\"delta\":\"wor\"}\n\n",
    "data: {\"delta\":\"ld\"}\n\n",
    "data: [DONE]\n\n",
];

/// The provider's answer as it arrives: ready chunks.
pub type Chunks = stream::Iter<std::array::IntoIter<Bytes, 5>>;

/// Why a request fails (never, in the harness): a bad body or key. A `Result` as a real
/// handler's, so that each instrumentation sees its outcome as it would.
#[derive(Debug)]
pub enum ChatError {
    Unauthorized,
}

impl IntoResponse for ChatError {
    fn into_response(self) -> Response {
        match self {
            ChatError::Unauthorized => StatusCode::UNAUTHORIZED.into_response(),
        }
    }
}

/// What the stage makes of the body: the model (a slice of the body) and the provider request's
/// hash.
pub struct Checked<'a> {
    pub model: &'a str,
    pub prepared: u64,
}

fn field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let at = body.find(name)? + name.len();
    let rest = body[at..].strip_prefix("\":\"")?;
    rest.split('"').next()
}

/// The front-end stage: parse, authorize, prepare.
#[inline(always)]
pub fn check_work(body: &[u8]) -> Result<Checked<'_>, ChatError> {
    let body = std::str::from_utf8(black_box(body)).map_err(|_| ChatError::Unauthorized)?;
    let model = field(body, "\"model").ok_or(ChatError::Unauthorized)?;
    let key = field(body, "\"key").ok_or(ChatError::Unauthorized)?;
    let diff = key
        .bytes()
        .zip(KEY.bytes())
        .fold(key.len() ^ KEY.len(), |d, (a, b)| d | usize::from(a ^ b));
    if diff != 0 {
        return Err(ChatError::Unauthorized);
    }
    let mut prepared: u64 = 0xcbf2_9ce4_8422_2325;
    for b in model.bytes().chain(key.bytes()) {
        prepared = (prepared ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    Ok(Checked {
        model,
        prepared: black_box(prepared),
    })
}

/// The backend call: the provider's answer, ready at once.
#[inline(always)]
pub fn provider_work(model: &str, prepared: u64) -> Result<Chunks, ChatError> {
    black_box((model, prepared));
    Ok(stream::iter(
        CHUNKS.map(|chunk| Bytes::from_static(chunk.as_bytes())),
    ))
}

/// The chunks as the response body, streamed.
pub fn answer(chunks: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    Body::from_stream(chunks.map(Ok::<Bytes, Infallible>)).into_response()
}

// ---------------------------------------------------------------------------------------------
// The uninstrumented handler (variants 1, 2, 4, 6 and 8: no instrumentation, or a layer alone).

pub(crate) fn check(body: &[u8]) -> Result<Checked<'_>, ChatError> {
    check_work(body)
}

pub(crate) async fn call_provider(model: &str, prepared: u64) -> Result<Chunks, ChatError> {
    provider_work(model, prepared)
}

/// The handler without instrumentation.
pub async fn chat(body: Bytes) -> Result<Response, ChatError> {
    let checked = check(&body)?;
    let chunks = call_provider(checked.model, checked.prepared).await?;
    Ok(answer(chunks))
}
