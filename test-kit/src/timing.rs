//! Bounds on measured times that hold on a busy machine, for the tests of the runtime and of the
//! example gateway.
//!
//! A time that holds a wait is never shorter than the wait (less [`CLOCK_MS`]: perf's clock and
//! tokio's timer are read apart), and a busy machine only adds to it: the upper bound is the wait
//! plus [`SLACK_MS`]. Orderings (TTFB before TTFT before the request's end) and the identities
//! between families (the overhead is what the backend windows leave of the request) hold
//! whatever the load. How close a measure comes to the truth is no test's business: the accuracy
//! report prints it (`cargo bench --bench accuracy`, BENCHMARKS.md "Accuracy").

use std::future::Future;
use std::pin::Pin;

use futures_util::FutureExt;

/// How much shorter than a wait of tokio's timer perf's clock may read it, in milliseconds.
pub const CLOCK_MS: f64 = 1.0;

/// The most a busy machine is allowed to add to a measured wait, in milliseconds.
pub const SLACK_MS: f64 = 2000.0;

/// What sums of the same clock readings may differ by in different families, per request, in
/// milliseconds: a histogram keeps its sum in units of 1,024 ticks, each observation rounded.
pub const ROUNDING_MS: f64 = 0.01;

/// Asserts that `measured_ms` is a time holding a wait of `truth_ms`: at least the wait (less
/// [`CLOCK_MS`]), and less than the wait plus [`SLACK_MS`].
#[track_caller]
pub fn assert_lasted(what: &str, measured_ms: f64, truth_ms: f64) {
    assert!(
        measured_ms >= truth_ms - CLOCK_MS,
        "{what}: {measured_ms:.3} ms, shorter than the {truth_ms} ms it holds"
    );
    assert!(
        measured_ms < truth_ms + SLACK_MS,
        "{what}: {measured_ms:.3} ms, more than {SLACK_MS} ms past the {truth_ms} ms it holds"
    );
}

/// Asserts that a split (`stage_percentage`: front end, backend, streaming) is the one of the
/// `phases` recorded for the same request, in the same order, in any unit.
#[track_caller]
pub fn assert_split_of(split: [f64; 3], phases: [f64; 3]) {
    let total: f64 = phases.iter().sum();
    assert!(total > 0.0, "no time in {phases:?}");
    for (share, phase) in split.iter().zip(phases) {
        let expected = 100.0 * phase / total;
        assert!(
            (share - expected).abs() < 0.01,
            "split {split:?}, phases {phases:?}: {share} % is not {expected} %"
        );
    }
}

/// Polls `future` once; it must not finish there. What it starts on its first poll (a tracker's
/// clock readings) has then started, so a timer armed afterwards bounds its time from below.
#[track_caller]
pub fn poll_once<F: Future>(future: Pin<&mut F>) {
    assert!(
        future.now_or_never().is_none(),
        "the future finished at its first poll"
    );
}
