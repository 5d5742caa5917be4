//! PENDING: not compiled yet. The shapes of `tests/shapes_calls.rs` (a backend marked twice,
//! hedged calls, coalesced and nested requests: shapes 3, 4 and 7) under the tower layer
//! `perf_runtime::PerfLayer`, which does not exist yet. Cargo does not compile a subdirectory
//! of `tests/`; once the layer exists, `git mv tests/pending/shapes_layer_calls.rs tests/`
//! switches these on.
//!
//! The layer's API: `Router::new().route(..).layer(PerfLayer::with_metrics(metrics))`; the
//! `endpoint` label is axum's `MatchedPath`, and `#[perf_endpoint]` is optional: the handlers
//! here have none, except the nested one, which must not make a second request. Each test has
//! a fresh registry of its own.
//!
//! Each test states the truth; the layer must make them pass.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::future::{BoxFuture, Either, FutureExt, Shared};
use perf_runtime::{
    current, perf_backend, perf_endpoint, perf_statements, BackendErrorKind, PerfLayer,
};
use serde_json::{json, Value};

mod common;
use common::{client, ms, relay, serve, sse_response, Answer, Numbers, Outcomes};

type ApiError = (StatusCode, String);

/// Serves `router` behind a layer recording into fresh metrics: the numbers and the base URL.
async fn serve_layered(router: Router) -> (Numbers, String) {
    let (numbers, metrics) = Numbers::private();
    let base = serve(router.layer(PerfLayer::with_metrics(metrics))).await;
    (numbers, base)
}

async fn post_ok(url: String) -> reqwest::Response {
    let response = client().post(url).send().await.expect("the server answers");
    assert_eq!(response.status(), 200);
    response
}

// Shape 3. A `#[perf_backend]` statement around a call to a `#[perf_backend]` fn.

#[perf_backend(provider = "twice", model = "marked")]
async fn call_marked(ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(0, 2, 0))
}

#[perf_statements]
async fn backend_twice() -> Result<Json<Value>, ApiError> {
    #[perf_backend(provider = "twice", model = "marked")]
    let answer = call_marked(30).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

/// Shape 3: a `#[perf_backend]` statement around a `#[perf_backend]` fn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_backend_call_marked_twice_is_one_call() {
    let (numbers, base) = serve_layered(Router::new().route("/twice", post(backend_twice))).await;
    post_ok(format!("{base}/twice")).await;
    assert_eq!(numbers.ended("/twice", 1).await, Outcomes::new(1, 0, 0));
    let ttfb = numbers.count("backend_ttfb_seconds", &[("endpoint", "/twice")]);
    let fetch = numbers.stage_count("/twice", "backend_fetch");
    assert_eq!((ttfb, fetch), (1, 1), "(TTFB count, backend_fetch count)");
}

// Shape 4. Hedged calls raced with `tokio::select!`.

#[perf_backend(provider = "a", model = "hedge")]
async fn call_a(answer_ms: u64, fails: bool) -> Result<Answer, ApiError> {
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

#[perf_backend(provider = "b", model = "hedge")]
async fn call_b(answer_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(answer_ms)).await;
    Ok(Answer::new(0, 3, 10))
}

/// The hedge: B, 200 ms after the request, answering 800 ms later.
async fn hedge() -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(200)).await;
    call_b(800).await
}

async fn hedge_win() -> Result<Response, ApiError> {
    let answer = tokio::select! {
        a = call_a(500, false) => a?,
        b = hedge() => b?,
    };
    Ok(sse_response(relay(answer)))
}

async fn hedge_fail() -> Result<Json<Value>, ApiError> {
    let mut a = std::pin::pin!(call_a(300, true));
    let mut b = std::pin::pin!(hedge());
    let first = tokio::select! {
        a = &mut a => Either::Left(a),
        b = &mut b => Either::Right(b),
    };
    let answer = match first {
        Either::Left(Ok(answer)) => answer,
        Either::Left(Err(_)) => b.await?,
        Either::Right(b) => b?,
    };
    Ok(Json(json!({ "tokens": answer.tokens })))
}

/// Shape 4: hedged calls, A wins, B dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_hedged_call_won_by_a_times_the_first_token_from_a() {
    let (numbers, base) = serve_layered(Router::new().route("/hedge", post(hedge_win))).await;
    let text = post_ok(format!("{base}/hedge")).await.text().await;
    assert_eq!(
        text.expect("the whole answer").matches("content").count(),
        3
    );
    assert_eq!(numbers.ended("/hedge", 1).await, Outcomes::new(1, 0, 0));
    let of = |provider| [("provider", provider), ("endpoint", "/hedge")];
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
        "(TTFT of a, [TTFT, gaps, streaming, TTFB] of b)"
    );
    assert!(
        (0.5..2.5).contains(&a_seconds),
        "TTFT runs from a's start (a answered at 500 ms): {a_seconds} s"
    );
}

/// Shape 4 (variant): hedged calls, A fails while B is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_hedged_call_whose_first_call_fails_counts_the_error_against_it() {
    let (numbers, base) = serve_layered(Router::new().route("/hedge", post(hedge_fail))).await;
    post_ok(format!("{base}/hedge")).await;
    assert_eq!(numbers.ended("/hedge", 1).await, Outcomes::new(1, 0, 0));
    let errors = |provider, kind: Option<&'static str>| {
        let mut labels = vec![("provider", provider), ("endpoint", "/hedge")];
        labels.extend(kind.map(|kind| ("kind", kind)));
        numbers.counter("backend_errors_total", &labels)
    };
    assert_eq!(
        (errors("a", Some("status")), errors("b", None)),
        (1, 0),
        "(errors of a, errors of b)"
    );
}

// Shape 7a. Coalesced requests sharing one provider call through app state.

type SharedAnswer = Shared<BoxFuture<'static, Result<String, String>>>;

#[derive(Clone, Default)]
struct Coalescer(Arc<Mutex<Option<SharedAnswer>>>);

impl Coalescer {
    fn answer(&self) -> SharedAnswer {
        let mut slot = self.0.lock().expect("an unpoisoned slot");
        slot.get_or_insert_with(|| slow_call().boxed().shared())
            .clone()
    }
}

#[perf_backend(provider = "coalesce", model = "shared")]
async fn slow_call() -> Result<String, String> {
    tokio::time::sleep(ms(500)).await;
    Ok("the shared answer".to_owned())
}

async fn coalesced(State(calls): State<Coalescer>) -> Result<String, ApiError> {
    calls
        .answer()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e))
}

/// Shape 7a: coalesced requests sharing one call, the first client leaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_request_joining_a_coalesced_call_records_its_wait_as_backend() {
    let router = Router::new()
        .route("/first", post(coalesced))
        .route("/joined", post(coalesced))
        .with_state(Coalescer::default());
    let (numbers, base) = serve_layered(router).await;
    let first = tokio::spawn(
        client()
            .post(format!("{base}/first"))
            .timeout(ms(150))
            .send(),
    );
    tokio::time::sleep(ms(100)).await;
    let joined = post_ok(format!("{base}/joined")).await;
    assert_eq!(joined.text().await.unwrap(), "the shared answer");
    assert!(first.await.unwrap().is_err(), "the first client gave up");
    assert_eq!(numbers.ended("/first", 1).await, Outcomes::new(0, 0, 1));
    assert_eq!(numbers.ended("/joined", 1).await, Outcomes::new(1, 0, 0));

    let labels = [("endpoint", "/joined")];
    let ttfb = numbers.count("backend_ttfb_seconds", &labels);
    let (overheads, overhead) = numbers.histogram("gateway_overhead_seconds", &labels);
    assert_eq!(
        (ttfb, overheads, overhead < 0.1),
        (1, 1, true),
        "(TTFB count, overhead count, overhead < 0.1 s) of the joined request ({overhead} s)"
    );
}

// Shape 7b. A `#[perf_endpoint]` fn awaited by a layered handler.

#[perf_backend(provider = "nested", model = "inner")]
async fn call_nested(ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(0, 2, 0))
}

#[perf_endpoint("/inner")]
async fn inner() -> Result<Json<Value>, ApiError> {
    let answer = call_nested(400).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

async fn outer() -> Result<Json<Value>, ApiError> {
    inner().await
}

/// Shape 7b: a `#[perf_endpoint]` fn awaited by a layered handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_an_endpoint_fn_inside_a_layered_request_is_the_same_request() {
    let (numbers, base) = serve_layered(Router::new().route("/outer", post(outer))).await;
    post_ok(format!("{base}/outer")).await;
    let outer_outcomes = numbers.ended("/outer", 1).await;
    let (overheads, overhead) =
        numbers.histogram("gateway_overhead_seconds", &[("endpoint", "/outer")]);
    assert_eq!(
        (
            outer_outcomes,
            numbers.outcomes("/inner"),
            overheads,
            overhead < 0.1
        ),
        (Outcomes::new(1, 0, 0), Outcomes::default(), 1, true),
        "(outcomes of /outer, of /inner, overhead count and < 0.1 s of /outer: {overhead} s)"
    );
}
