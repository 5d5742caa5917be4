//! #[perf_stage] and #[perf_backend] on sync fns returning a future (the methods of an
//! `#[async_trait]` impl, hand-written `BoxFuture` and `impl Future` returners) time the future
//! while it runs, not its creation, and a backend call is answered on the future's output.
//!
//! The macros record into the global metrics; tests run in parallel on them, so each test uses
//! label values of its own: a provider, an endpoint, or a stage declared for it in this crate's
//! Cargo.toml.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use perf_runtime::metrics::snapshot::{histogram, HistogramSnapshot};
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, Metrics};

fn read(family: &str, labels: &[(&str, &str)]) -> Option<HistogramSnapshot> {
    histogram(Metrics::init().registry(), family, labels)
}

fn stage(stage: &str) -> Option<HistogramSnapshot> {
    read("request_stage_duration_seconds", &[("stage", stage)])
}

fn ttfb(provider: &str) -> Option<HistogramSnapshot> {
    read("backend_ttfb_seconds", &[("provider", provider)])
}

/// Asserts that `recorded` holds one observation of at least `ms` (and not absurdly more: the
/// guard ran while the future did, not for the life of the test).
fn assert_one_of_at_least(recorded: Option<HistogramSnapshot>, ms: u64) {
    let recorded = recorded.expect("the series was recorded");
    assert_eq!(recorded.count, 1);
    let least = ms as f64 / 1000.0;
    assert!(
        (least..5.0).contains(&recorded.sum),
        "recorded {} s for {ms} ms",
        recorded.sum
    );
}

/// The number of observations of `snapshot` (none when the series does not exist).
fn count(snapshot: &Option<HistogramSnapshot>) -> u64 {
    snapshot.as_ref().map_or(0, |s| s.count)
}

#[derive(Debug)]
struct Refused;

#[async_trait]
trait Backend {
    async fn wait(&self, ms: u64);
    async fn call(&self, provider: &'static str, ms: u64, fail: bool) -> Result<u32, Refused>;
}

struct Upstream;

#[async_trait]
impl Backend for Upstream {
    #[perf_stage(boxed_trait_stage)]
    async fn wait(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    #[perf_backend(provider = provider, model = "trait")]
    async fn call(&self, provider: &'static str, ms: u64, fail: bool) -> Result<u32, Refused> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if fail {
            return Err(Refused);
        }
        Ok(7)
    }
}

/// Answers after `ms`, counted from its first poll: the timer starts when the instrumented
/// future first polls it, never before the guard opens.
async fn respond(ms: u64, fail: bool) -> Result<u32, Refused> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    if fail {
        Err(Refused)
    } else {
        Ok(7)
    }
}

/// A boxed future not made by `Box::pin(async move { .. })` in the body: wrapped.
#[perf_backend(provider = provider, model = "boxed")]
fn boxed_call(
    provider: &'static str,
    ms: u64,
    fail: bool,
) -> BoxFuture<'static, Result<u32, Refused>> {
    respond(ms, fail).boxed()
}

/// An `impl Future` made elsewhere: wrapped.
#[perf_stage(boxed_wrapped_stage)]
fn wrapped_wait(ms: u64) -> impl Future<Output = u64> + Send {
    respond(ms, false).map(move |_| ms)
}

#[tokio::test]
async fn an_async_trait_stage_is_timed_while_its_future_runs() {
    Upstream.wait(200).await;
    assert_one_of_at_least(stage("boxed_trait_stage"), 200);
}

#[tokio::test]
async fn a_wrapped_impl_future_stage_is_timed_while_it_runs_and_not_before() {
    // Made and dropped unpolled: nothing ran, nothing is recorded.
    drop(wrapped_wait(1));
    assert_eq!(count(&stage("boxed_wrapped_stage")), 0);
    assert_eq!(wrapped_wait(150).await, 150);
    assert_one_of_at_least(stage("boxed_wrapped_stage"), 150);
}

#[tokio::test]
async fn an_async_trait_backend_failing_after_100_ms_records_no_ttfb() {
    assert!(Upstream.call("boxed-trait-err", 100, true).await.is_err());
    assert_eq!(count(&ttfb("boxed-trait-err")), 0);
}

#[tokio::test]
async fn an_async_trait_backend_answering_after_100_ms_records_its_ttfb() {
    assert_eq!(
        Upstream.call("boxed-trait-ok", 100, false).await.unwrap(),
        7
    );
    assert_one_of_at_least(ttfb("boxed-trait-ok"), 100);
}

#[tokio::test]
async fn a_wrapped_boxed_backend_failing_after_100_ms_records_no_ttfb() {
    assert!(boxed_call("boxed-wrapped-err", 100, true).await.is_err());
    assert_eq!(count(&ttfb("boxed-wrapped-err")), 0);
}

#[tokio::test]
async fn a_wrapped_boxed_backend_answering_after_100_ms_records_its_ttfb() {
    assert_eq!(boxed_call("boxed-wrapped-ok", 100, false).await.unwrap(), 7);
    assert_one_of_at_least(ttfb("boxed-wrapped-ok"), 100);
}

#[tokio::test]
async fn a_boxed_backend_dropped_before_it_answers_records_no_ttfb() {
    let call = Upstream.call("boxed-trait-dropped", 5_000, false);
    assert!(tokio::time::timeout(Duration::from_millis(20), call)
        .await
        .is_err());
    assert_eq!(count(&ttfb("boxed-trait-dropped")), 0);
}

#[perf_endpoint("/test/boxed-backend-fetch")]
async fn handler() -> Result<u32, Refused> {
    boxed_call("boxed-endpoint", 100, true).await
}

#[tokio::test]
async fn the_backend_fetch_stage_of_a_failed_boxed_call_is_the_time_it_ran() {
    assert!(handler().await.is_err());
    let fetch = read(
        "request_stage_duration_seconds",
        &[
            ("stage", "backend_fetch"),
            ("endpoint", "/test/boxed-backend-fetch"),
        ],
    );
    assert_one_of_at_least(fetch, 100);
    assert_eq!(count(&ttfb("boxed-endpoint")), 0);
}

/// An async fn may return a future: the expansion's own async blocks then yield one, as the user
/// wrote, which clippy's `async_yields_async` must not flag (`cargo clippy --all-targets` checks
/// this file).
#[perf_endpoint("/test/returns-a-future")]
async fn endpoint_returning_a_future() -> BoxFuture<'static, u32> {
    backend_returning_a_future().await
}

#[perf_backend(provider = "boxed-returns-a-future", model = "m")]
async fn backend_returning_a_future() -> BoxFuture<'static, u32> {
    async { 3 }.boxed()
}

#[tokio::test]
async fn an_async_fn_may_return_a_future() {
    assert_eq!(endpoint_returning_a_future().await.await, 3);
    assert_eq!(count(&ttfb("boxed-returns-a-future")), 1);
}
