//! Handler shapes around the provider calls, over real HTTP: a backend marked twice (shape 3),
//! hedged calls raced with `tokio::select!` (shape 4), and coalesced and nested requests
//! (shape 7). Each call is a simulated provider (a tokio sleep) with known timing.
//!
//! Each test states the truth; today's runtime gets several of them wrong, and these tests are
//! what its rewrite must pass. The handlers record into the global metrics; each test has
//! endpoints of its own.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::future::{BoxFuture, Either, FutureExt, Shared};
use perf_runtime::{current, perf_backend, perf_endpoint, BackendErrorKind};
use serde_json::{json, Value};

mod common;
use common::{backend_errors, client, ms, relay, serve, sse_response, Answer, Numbers, Outcomes};

type ApiError = (StatusCode, String);

/// POSTs to `url`; the response, after checking it is a 200.
async fn post_ok(url: String) -> reqwest::Response {
    let response = client().post(url).send().await.expect("the server answers");
    assert_eq!(response.status(), 200);
    response
}

// Shape 3. A `#[perf_backend]` statement around a call to a `#[perf_backend]` fn: one call.

const TWICE: &str = "/shapes/calls/backend-twice";

#[perf_backend(provider = "twice", model = "marked")]
async fn call_marked(ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(0, 2, 0))
}

#[perf_endpoint("/shapes/calls/backend-twice")]
async fn backend_twice() -> Result<Json<Value>, ApiError> {
    #[perf_backend(provider = "twice", model = "marked")]
    let answer = call_marked(30).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

/// Shape 3: a `#[perf_backend]` statement around a `#[perf_backend]` fn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_call_marked_twice_is_one_call() {
    let numbers = Numbers::global();
    let base = serve(Router::new().route(TWICE, post(backend_twice))).await;
    post_ok(format!("{base}{TWICE}")).await;
    assert_eq!(numbers.ended(TWICE, 1).await, Outcomes::new(1, 0, 0));

    let labels = [("endpoint", TWICE)];
    let ttfb = numbers.count("backend_ttfb_seconds", &labels);
    let fetch = numbers.stage_count(TWICE, "backend_fetch");
    assert_eq!(
        (ttfb, fetch),
        (1, 1),
        "(backend_ttfb_seconds count, backend_fetch stage count) for one call"
    );
}

// Shape 4. Hedged calls: call A at once, a hedge B 200 ms later, raced with `tokio::select!`.

/// Provider A: answers after `answer_ms`, or fails then with an error status (counted where
/// it is found, inside its own call). Its answer's first token comes at once.
#[perf_backend(provider = "a", model = model)]
async fn call_a(model: &'static str, answer_ms: u64, fails: bool) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(answer_ms)).await;
    if fails {
        current::backend_error(BackendErrorKind::Status);
        return Err((
            StatusCode::BAD_GATEWAY,
            "provider a answered 503".to_owned(),
        ));
    }
    Ok(Answer::new(0, 3, 10))
}

/// Provider B: answers after `answer_ms`.
#[perf_backend(provider = "b", model = model)]
async fn call_b(model: &'static str, answer_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(answer_ms)).await;
    Ok(Answer::new(0, 3, 10))
}

/// The hedge: B, started 200 ms after the request; it answers 800 ms later (at 1 s).
async fn hedge(model: &'static str) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(200)).await;
    call_b(model, 800).await
}

const HEDGE_WIN: &str = "/shapes/calls/hedge-win";

#[perf_endpoint("/shapes/calls/hedge-win")]
async fn hedge_win() -> Result<Response, ApiError> {
    let answer = tokio::select! {
        a = call_a("hedge-win", 500, false) => a?,
        b = hedge("hedge-win") => b?,
    };
    Ok(sse_response(relay(answer)))
}

/// Shape 4: hedged calls, A wins, B dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_call_won_by_a_times_the_first_token_from_a() {
    let numbers = Numbers::global();
    let base = serve(Router::new().route(HEDGE_WIN, post(hedge_win))).await;
    let text = post_ok(format!("{base}{HEDGE_WIN}")).await.text().await;
    assert_eq!(
        text.expect("the whole answer").matches("content").count(),
        3
    );
    assert_eq!(numbers.ended(HEDGE_WIN, 1).await, Outcomes::new(1, 0, 0));

    let of = |provider| [("provider", provider), ("endpoint", HEDGE_WIN)];
    let (a_ttft, a_seconds) = numbers.histogram("backend_ttft_seconds", &of("a"));
    let b_numbers = [
        numbers.count("backend_ttft_seconds", &of("b")),
        numbers.count("backend_chunk_gap_seconds", &of("b")),
        numbers.count("streaming_duration_seconds", &of("b")),
        numbers.count("backend_ttfb_seconds", &of("b")),
    ];
    assert_eq!(
        (a_ttft, b_numbers),
        (1, [0; 4]),
        "(TTFT of a, [TTFT, gaps, streaming, TTFB] of b): a answered; b was dropped unanswered"
    );
    assert!(
        (0.5..2.5).contains(&a_seconds),
        "TTFT runs from a's start: a answered at 500 ms, its first token came at once; \
         {a_seconds} s"
    );
}

const HEDGE_FAIL: &str = "/shapes/calls/hedge-fail";

#[perf_endpoint("/shapes/calls/hedge-fail")]
async fn hedge_fail() -> Result<Json<Value>, ApiError> {
    let mut a = std::pin::pin!(call_a("hedge-fail", 300, true));
    let mut b = std::pin::pin!(hedge("hedge-fail"));
    let first = tokio::select! {
        a = &mut a => Either::Left(a),
        b = &mut b => Either::Right(b),
    };
    let answer = match first {
        Either::Left(Ok(answer)) => answer,
        Either::Left(Err(_)) => b.await?, // a failed while b is in flight: wait for b
        Either::Right(b) => b?,
    };
    Ok(Json(json!({ "tokens": answer.tokens })))
}

/// Shape 4 (variant): hedged calls, A fails while B is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_call_whose_first_call_fails_counts_the_error_against_it() {
    let numbers = Numbers::global();
    let base = serve(Router::new().route(HEDGE_FAIL, post(hedge_fail))).await;
    post_ok(format!("{base}{HEDGE_FAIL}")).await;
    assert_eq!(numbers.ended(HEDGE_FAIL, 1).await, Outcomes::new(1, 0, 0));

    let a_status = backend_errors("a", "hedge-fail", HEDGE_FAIL, "status");
    let b_any = numbers.counter(
        "backend_errors_total",
        &[("provider", "b"), ("endpoint", HEDGE_FAIL)],
    );
    assert_eq!(
        (a_status, b_any),
        (1, 0),
        "(errors of a, errors of b): a failed inside its own call while b was in flight"
    );
}

// Shape 7a. Coalesced requests: A starts a provider call shared through app state, B awaits
// the same call 100 ms later, A's client leaves at 150 ms.

type SharedAnswer = Shared<BoxFuture<'static, Result<String, String>>>;

/// The one provider call in flight, shared by the requests that want its answer.
#[derive(Clone, Default)]
struct Coalescer(Arc<Mutex<Option<SharedAnswer>>>);

impl Coalescer {
    fn answer(&self) -> SharedAnswer {
        let mut slot = self.0.lock().expect("an unpoisoned slot");
        slot.get_or_insert_with(|| slow_call().boxed().shared())
            .clone()
    }
}

/// A provider whose first byte comes after 500 ms.
#[perf_backend(provider = "coalesce", model = "shared")]
async fn slow_call() -> Result<String, String> {
    tokio::time::sleep(ms(500)).await;
    Ok("the shared answer".to_owned())
}

const COALESCE_FIRST: &str = "/shapes/calls/coalesce-first";
const COALESCE_JOINED: &str = "/shapes/calls/coalesce-joined";

#[perf_endpoint("/shapes/calls/coalesce-first")]
async fn coalesce_first(State(calls): State<Coalescer>) -> Result<String, ApiError> {
    calls
        .answer()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e))
}

#[perf_endpoint("/shapes/calls/coalesce-joined")]
async fn coalesce_joined(State(calls): State<Coalescer>) -> Result<String, ApiError> {
    calls
        .answer()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e))
}

/// Shape 7a: coalesced requests sharing one call, the first client leaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_joining_a_coalesced_call_records_its_wait_as_backend() {
    let numbers = Numbers::global();
    let router = Router::new()
        .route(COALESCE_FIRST, post(coalesce_first))
        .route(COALESCE_JOINED, post(coalesce_joined))
        .with_state(Coalescer::default());
    let base = serve(router).await;
    let first = tokio::spawn(
        client()
            .post(format!("{base}{COALESCE_FIRST}"))
            .timeout(ms(150))
            .send(),
    );
    tokio::time::sleep(ms(100)).await;
    let joined = post_ok(format!("{base}{COALESCE_JOINED}")).await;
    assert_eq!(joined.text().await.unwrap(), "the shared answer");
    assert!(
        first.await.unwrap().is_err(),
        "the first client gave up at 150 ms"
    );
    assert_eq!(
        numbers.ended(COALESCE_FIRST, 1).await,
        Outcomes::new(0, 0, 1),
        "the first client left: its handler was dropped"
    );
    assert_eq!(
        numbers.ended(COALESCE_JOINED, 1).await,
        Outcomes::new(1, 0, 0)
    );

    let labels = [("endpoint", COALESCE_JOINED)];
    let ttfb = numbers.count("backend_ttfb_seconds", &labels);
    let (overheads, overhead) = numbers.histogram("gateway_overhead_seconds", &labels);
    assert_eq!(
        (ttfb, overheads, overhead < 0.1),
        (1, 1, true),
        "(TTFB count, overhead count, overhead < 0.1 s) of the joined request: it got the \
         provider's first byte, and its ~400 ms wait for it is not overhead ({overhead} s)"
    );
}

// Shape 7b. Nested endpoints: an endpoint fn awaiting another endpoint fn that calls the
// provider.

const OUTER: &str = "/shapes/calls/outer";
const INNER: &str = "/shapes/calls/inner";

#[perf_backend(provider = "nested", model = "inner")]
async fn call_nested(ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(0, 2, 0))
}

#[perf_endpoint("/shapes/calls/inner")]
async fn inner() -> Result<Json<Value>, ApiError> {
    let answer = call_nested(400).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

#[perf_endpoint("/shapes/calls/outer")]
async fn outer() -> Result<Json<Value>, ApiError> {
    inner().await
}

/// Shape 7b: an endpoint fn awaiting another endpoint fn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_awaiting_another_is_one_request() {
    let numbers = Numbers::global();
    let base = serve(Router::new().route(OUTER, post(outer))).await;
    post_ok(format!("{base}{OUTER}")).await;
    let outer_outcomes = numbers.ended(OUTER, 1).await;
    let (overheads, overhead) =
        numbers.histogram("gateway_overhead_seconds", &[("endpoint", OUTER)]);
    assert_eq!(
        (
            outer_outcomes,
            numbers.outcomes(INNER),
            overheads,
            overhead < 0.1
        ),
        (Outcomes::new(1, 0, 0), Outcomes::default(), 1, true),
        "(outcomes of /outer, of /inner, overhead count and < 0.1 s of /outer): one request, the \
         one the client made, whose 400 ms wait for the provider is not overhead ({overhead} s)"
    );
}
