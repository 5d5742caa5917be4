//! The handler shapes real gateways write, through the macros as users write them, each with the
//! numbers it must give: an error after the stream took the request, one stream marked twice, a
//! fallback, a front-end stage around a backend call, a provider called lazily, a stream made
//! inside the backend call, a stage future finished by another request.
//!
//! The macros record into the global metrics: each test has an endpoint of its own.

use std::future::Future;
use std::time::Duration;

use futures_util::stream::{self, Stream, StreamExt};
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream};
use perf_test_kit::global;

const MS: Duration = Duration::from_millis(1);

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

/// The global metrics' registry, the one the macros record into.
fn outcome(endpoint: &str, outcome: &str) -> u64 {
    perf_test_kit::outcome(global(), endpoint, outcome)
}

/// `(count, sum)` of the histogram `family` over the series with `labels`.
fn histogram(family: &str, labels: &[(&str, &str)]) -> (u64, f64) {
    perf_test_kit::histogram_total(global(), family, labels)
}

fn split_set(endpoint: &str) -> bool {
    !perf_test_kit::series(global(), "stage_percentage", &[("endpoint", endpoint)]).is_empty()
}

/// A provider that answers after `ms`.
async fn provider(ms: u64) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

// 1. An `Err` after the stream took the request: the handler peeks the first chunk to turn a
//    provider error into a 502.

#[perf_endpoint("/shapes/peek")]
async fn peek(provider_failed: bool) -> Result<Vec<u32>, String> {
    #[perf_backend(provider = "shapes", model = "peek")]
    let () = provider(1).await?;
    #[perf_stream]
    let mut chunks = stream::iter([1u32, 2, 3]);
    let first = chunks.next().await;
    if provider_failed {
        return Err(format!(
            "the provider's first chunk was an error: {first:?}"
        ));
    }
    Ok(chunks.collect().await)
}

#[test]
fn an_err_after_the_stream_took_the_request_is_an_error() {
    const EP: &str = "/shapes/peek";
    assert!(block_on(peek(true)).is_err());
    assert_eq!(outcome(EP, "error"), 1);
    assert_eq!(outcome(EP, "cancelled"), 0);
    assert!(!split_set(EP), "no split for a failed request");
    assert_eq!(block_on(peek(false)), Ok(vec![2, 3]));
    assert_eq!(outcome(EP, "completed"), 1);
    assert!(split_set(EP));
}

// 2. One stream marked twice: a `#[perf_stream]` statement over a `#[perf_stream]` fn.

#[perf_stream]
fn relayed(chunks: u32) -> impl Stream<Item = u32> {
    stream::iter(0..chunks)
}

#[perf_endpoint("/shapes/twice")]
async fn twice() -> impl Stream<Item = u32> {
    #[perf_backend(provider = "shapes", model = "twice")]
    let () = provider(1).await.unwrap();
    #[perf_stream]
    let chunks = relayed(3);
    chunks
}

#[test]
fn one_stream_marked_twice_records_its_streaming_once() {
    const EP: &str = "/shapes/twice";
    let body = block_on(async { twice().await.collect::<Vec<_>>().await });
    assert_eq!(body, [0, 1, 2]);
    let streaming = histogram("streaming_duration_seconds", &[("endpoint", EP)]);
    assert_eq!(streaming.0, 1);
    let stage = histogram(
        "request_stage_duration_seconds",
        &[("endpoint", EP), ("stage", "stream_processing")],
    );
    assert_eq!(stage.0, 1);
    assert_eq!(outcome(EP, "completed"), 1);
}

// 3. A fallback: the first stream is dropped unused, a second is returned and read to its end.

#[perf_endpoint("/shapes/fallback")]
async fn fallback() -> impl Stream<Item = u32> {
    #[perf_backend(provider = "shapes", model = "fallback")]
    let () = provider(1).await.unwrap();
    #[perf_stream]
    let first = stream::iter([0u32]);
    drop(first); // its first chunk said "try the other model"
    #[perf_stream]
    let second = stream::iter([1u32, 2]);
    second
}

#[test]
fn a_fallback_stream_read_to_its_end_completes_the_request() {
    const EP: &str = "/shapes/fallback";
    let body = block_on(async { fallback().await.collect::<Vec<_>>().await });
    assert_eq!(body, [1, 2]);
    assert_eq!(outcome(EP, "completed"), 1);
    assert_eq!(outcome(EP, "cancelled"), 0);
    assert!(split_set(EP));
}

// 4. A front-end stage around a backend call, and a stage joined with one.

#[perf_backend(provider = "shapes", model = "around")]
async fn call_provider(ms: u64) -> Result<(), String> {
    provider(ms).await
}

#[perf_stage(request_preparation)]
async fn cache_lookup_then_provider() -> Result<(), String> {
    tokio::time::sleep(2 * MS).await; // the cache missed
    call_provider(80).await
}

#[perf_stage(auth_validation)]
async fn auth() {
    tokio::time::sleep(60 * MS).await;
}

#[perf_endpoint("/shapes/around")]
async fn around() -> Result<(), String> {
    cache_lookup_then_provider().await
}

#[perf_endpoint("/shapes/joined")]
async fn joined() -> Result<(), String> {
    let ((), answer) = tokio::join!(auth(), call_provider(80));
    answer
}

#[test]
fn front_end_time_stops_where_a_backend_call_starts() {
    for ep in ["/shapes/around", "/shapes/joined"] {
        let answer = block_on(async {
            match ep {
                "/shapes/around" => around().await,
                _ => joined().await,
            }
        });
        assert_eq!(answer, Ok(()));
        let (count, frontend) = histogram("frontend_processing_seconds", &[("endpoint", ep)]);
        let (_, ttfb) = histogram("backend_ttfb_seconds", &[("endpoint", ep)]);
        assert_eq!(count, 1, "{ep}");
        assert!(ttfb >= 0.08, "{ep}: the provider took {ttfb} s");
        // The stage around the call (or beside it) is front end only until the call starts:
        // 2 ms (or nothing). Counted to its end, it would hold the call (at least its TTFB), or
        // the 60 ms of the auth stage beside it.
        let to_its_end = if ep == "/shapes/around" { ttfb } else { 0.06 };
        assert!(
            frontend < to_its_end,
            "{ep}: front end {frontend} s counts the provider's {ttfb} s"
        );
    }
}

// 5. A provider called lazily, when the client starts reading, with stages per chunk.

#[perf_stage(request_preparation)]
fn reframe(chunk: u32) -> u32 {
    chunk * 10
}

#[perf_endpoint("/shapes/lazy")]
async fn lazy() -> impl Stream<Item = u32> {
    #[perf_stream]
    let chunks = stream::once(async {
        #[perf_backend(provider = "shapes", model = "lazy")]
        let answered = call_lazily().await;
        answered
    })
    .flat_map(|answer| stream::iter(answer.unwrap_or_default()))
    .map(reframe);
    chunks
}

async fn call_lazily() -> Result<Vec<u32>, String> {
    provider(40).await.map(|()| vec![1, 2, 3])
}

#[test]
fn a_provider_called_as_the_stream_is_read_records_into_its_request() {
    const EP: &str = "/shapes/lazy";
    let body = block_on(async { lazy().await.collect::<Vec<_>>().await });
    assert_eq!(body, [10, 20, 30]);
    let labels = [("provider", "shapes"), ("model", "lazy"), ("endpoint", EP)];
    let (answered, ttfb) = histogram("backend_ttfb_seconds", &labels);
    assert_eq!(
        answered, 1,
        "the TTFB is the request's, not endpoint=\"none\"'s"
    );
    let (streamed, streaming) = histogram("streaming_duration_seconds", &labels);
    assert_eq!(
        streamed, 1,
        "streaming under the backend that answered, not unknown"
    );
    assert!(
        streaming < ttfb,
        "the wait for the provider ({ttfb} s) is backend time, not streaming ({streaming} s)"
    );
    let per_chunk = histogram(
        "request_stage_duration_seconds",
        &[("endpoint", EP), ("stage", "request_preparation")],
    );
    assert_eq!(per_chunk.0, 3);
    assert_eq!(outcome(EP, "completed"), 1);
    assert!(split_set(EP));
}

// 6. The relayed stream made inside the `#[perf_backend]` call, which returns it.

#[perf_backend(provider = "shapes", model = "inside")]
async fn call_and_relay() -> Result<impl Stream<Item = u32>, String> {
    provider(5).await?;
    Ok(relayed(2))
}

#[perf_endpoint("/shapes/inside")]
async fn inside() -> Result<impl Stream<Item = u32>, String> {
    call_and_relay().await
}

#[test]
fn a_stream_made_inside_the_backend_call_is_labelled_with_it() {
    const EP: &str = "/shapes/inside";
    let body = block_on(async { inside().await.unwrap().collect::<Vec<_>>().await });
    assert_eq!(body, [0, 1]);
    let labels = [
        ("provider", "shapes"),
        ("model", "inside"),
        ("endpoint", EP),
    ];
    assert_eq!(histogram("streaming_duration_seconds", &labels).0, 1);
    assert_eq!(
        histogram(
            "streaming_duration_seconds",
            &[("provider", "unknown"), ("endpoint", EP)]
        )
        .0,
        0
    );
    assert_eq!(outcome(EP, "completed"), 1);
    assert!(split_set(EP), "the backend answered: the split is set");
}

// 8. A stage future started in request A and finished in request B (request coalescing).

#[perf_stage(request_parsing)]
async fn shared_work() {
    tokio::time::sleep(20 * MS).await;
}

#[perf_endpoint("/shapes/coalesce-a")]
async fn request_a() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    let mut work: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(shared_work());
    // Started here: its stage guard opens in request A.
    let pending =
        std::future::poll_fn(|cx| std::task::Poll::Ready(work.as_mut().poll(cx).is_pending()))
            .await;
    assert!(pending);
    work
}

#[perf_endpoint("/shapes/coalesce-b")]
async fn request_b(work: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) {
    work.await;
    #[perf_stage(auth_validation)]
    let () = tokio::time::sleep(5 * MS).await;
}

#[test]
fn a_stage_finished_by_another_request_closes_on_its_own() {
    block_on(async {
        let work = request_a().await;
        request_b(work).await;
    });
    // B's own stage counts as its front end: A's guard did not close on B.
    let (count, frontend) = histogram(
        "frontend_processing_seconds",
        &[("endpoint", "/shapes/coalesce-b")],
    );
    assert_eq!(count, 1);
    assert!(frontend >= 0.005, "{frontend}");
    let parsing = histogram(
        "request_stage_duration_seconds",
        &[
            ("endpoint", "/shapes/coalesce-a"),
            ("stage", "request_parsing"),
        ],
    );
    assert_eq!(
        parsing.0, 1,
        "the stage belongs to the request it started in"
    );
    assert_eq!(outcome("/shapes/coalesce-b", "completed"), 1);
}
