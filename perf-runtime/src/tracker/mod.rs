//! The life of a request, from the attribute (or the layer) to the histograms.
//!
//! 1. `PerfLayer` (`crate::layer`) makes each HTTP exchange a request; `#[perf_endpoint]` wraps
//!    the handler's body in a [`Run`] future (`run.rs`) that makes one, or joins the one already
//!    current. Its [`RequestState`](state) sits in a pooled slot (`pool.rs`), which the handler's
//!    share (`handler.rs`, inside a [`PerformanceTracker`], `performance_tracker.rs`) holds.
//! 2. While the handler (or the response body, or a stream) is polled, `on_thread.rs` makes the
//!    request current on the thread: `#[perf_stage]`, `#[perf_backend]` and `#[perf_stream]`
//!    (through `current.rs`) find it there, however deep the call that reaches them.
//! 3. Each stage or backend call is a guard (`guards.rs`) that holds the request it opened on
//!    (`owner.rs`).
//!    When dropped (returned, `?`, panic, cancellation alike) it observes its histogram and
//!    closes its interval in the request's unions (`phases.rs`); the next stage may begin at the
//!    same clock reading (`handoff.rs`). A caller that holds the request alone changes it with
//!    loads and stores, else with locked operations (`access.rs`). Each backend call is a
//!    record (`call_record.rs`); a `#[perf_backend]` fn's future makes it current for each poll
//!    (`backend_call.rs`), so the facts found inside belong to it (`facts.rs`).
//! 4. A stream handed the request (`stream.rs`) takes a share of it: the request stays open past
//!    the handler's return, is current again while the stream is read, and the stream relays the
//!    call that answered last before it was made. Its classifier (`classify.rs`) tells content
//!    from the rest: TTFT, gaps and usage (`content.rs`), priced for the request's tenant
//!    (`spend.rs`).
//! 5. When every owner has let go, the request ends once (`end.rs`): `requests_total{outcome}`,
//!    `frontend_processing_seconds`, the streaming, the overhead, the calls' own families, and
//!    for a completed request that a backend answered, the `stage_percentage` split.
//! 6. A scrape reads the histograms (`crate::metrics`) and writes them out
//!    (`crate::exposition`).

mod access;
mod backend_call;
mod call_record;
pub(crate) mod classify;
mod content;
pub mod current;
mod end;
mod facts;
mod guards;
mod handler;
mod handoff;
pub(crate) mod on_thread;
mod owner;
mod performance_tracker;
mod phases;
mod pool;
mod run;
mod server_timing;
mod spend;
mod state;
mod stream;
mod unwind;

pub use backend_call::BackendCall;
pub use guards::{BackendGuard, StageGuard, StreamingGuard};
pub(crate) use handoff::after_last_close;
pub use performance_tracker::PerformanceTracker;
#[cfg(feature = "axum")]
pub(crate) use pool::StateRef;
pub use run::Run;
#[cfg(feature = "axum")]
pub(crate) use state::HandlerExit;
pub use stream::TrackedStream;
#[cfg(feature = "axum")]
pub(crate) use unwind::UnwindWatch;
