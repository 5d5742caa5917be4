//! The handler every benchmark (and `tests/no_alloc.rs`) runs, in five builds that differ only in
//! their instrumentation:
//!
//! * (a) [`plain`]: no instrumentation;
//! * (b) [`macros`]: `#[perf_endpoint]`, `#[perf_stage]` on three statements, `#[perf_backend]`,
//!   `#[perf_stream]` over the 5-chunk answer (percentages recorded when the stream ends);
//! * (c) [`seed`] (`seed.rs`): the seed's hand-written style, as a straight port of its Python
//!   would be: 6 `Instant::now()` reads at the stage boundaries, and every one of the 8
//!   histogram observations and 3 gauge sets through `with_label_values` (11 label lookups per
//!   request);
//! * (d) [`manual`]: the runtime API by hand, `PerformanceTracker::at(&STATIC_ENDPOINT)`, a stage
//!   guard going on to the next with `next(..)` and to the backend call with `next_backend(..)`
//!   (one clock reading at each boundary, as the macros take), `first_byte()`,
//!   `tracker.stream(..)`;
//! * (e) `floor` (`floor.rs`, with perf-runtime's feature `bench-internals`, which the overhead
//!   and contention benches require): no request at all, only what (b) and (d) cannot do
//!   without: the same 7 clock readings and 11 histogram observations (each with its exemplar
//!   and native bucket), into perf's own histograms. The request's bookkeeping (phases,
//!   outcome, streams, in-flight, percentages) is what (b) and (d) add to it.
//!
//! With perf-runtime's feature `axum`, five more builds run the handler as an HTTP exchange
//! ([`layer`]): (f) (a)'s handler under `PerfLayer`, (g) (b)'s attributes under `PerfLayer`
//! without `#[perf_endpoint]`, (h) (f) without the layer, (i), (j) and (k) (a)'s handler routed
//! by a one-route `axum::Router` with the layer, without, and with a layer that does nothing.
//!
//! (b), (c) and (d) record the same series: 3 front-end stages, `backend_fetch`, TTFB,
//! streaming, `stream_processing`, `frontend_processing` and the 3 `stage_percentage` gauges.
//! (b) and (d) record into the global metrics under their own `endpoint` label; (c) into a
//! registry of its own, so each holds the series of one endpoint.
//!
//! The work is trivial and allocation-free (scan a JSON body for the model and key, compare the
//! key, hash the provider request, answer with a ready 5-chunk stream), and every future is
//! ready at its first poll, so a request run by [`request`] costs about 150–250 ns bare on the
//! benchmark machine: the rest is the instrumentation.
#![allow(dead_code)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use futures_util::stream::{self, Stream, StreamExt};
use perf_runtime::{
    perf_backend, perf_endpoint, perf_stage, perf_stream, Endpoint, PerformanceTracker, Stage,
};

#[cfg(feature = "bench-internals")]
mod floor;
#[cfg(feature = "axum")]
pub mod layer;
mod seed;

#[cfg(feature = "bench-internals")]
use floor::floor;
pub use seed::seed;

/// The request body every handler parses, at the start of a cache line: `memchr` reads a string
/// byte by byte up to its first aligned word, so a body wherever the linker puts it would move
/// the instruction counts by tens from build to build.
pub static BODY: &str = match std::str::from_utf8(&ALIGNED_BODY.0) {
    Ok(body) => body,
    Err(_) => panic!("the body is UTF-8"),
};

const BODY_TEXT: &str = r#"{"model":"gpt-4o-mini","key":"sk-bench-0123456789","stream":true}"#;

#[repr(align(64))]
struct AlignedBody([u8; BODY_TEXT.len()]);

static ALIGNED_BODY: AlignedBody = match BODY_TEXT.as_bytes().first_chunk() {
    Some(bytes) => AlignedBody(*bytes),
    None => panic!("the body fits"),
};

/// The API key the handlers accept.
const KEY: &str = "sk-bench-0123456789";
/// The provider's answer: 5 chunks.
const CHUNKS: [&str; 5] = [
    "data: {\"delta\":\"Hel\"}",
    "data: {\"delta\":\"lo, \"}",
    "data: {\"delta\":\"wor\"}",
    "data: {\"delta\":\"ld\"}",
    "data: [DONE]",
];
/// The provider label of every backend call.
pub const PROVIDER: &str = "openrouter";

/// `endpoint` label of (b).
pub const MACROS_ENDPOINT: &str = "/bench/macros";
/// `endpoint` label of (c).
pub const SEED_ENDPOINT: &str = "/bench/seed";
/// `endpoint` label of (d).
pub const MANUAL_ENDPOINT: &str = "/bench/manual";

/// What a handler fails with (never, in the benchmarks).
#[derive(Debug)]
pub struct BenchError;

/// The parsed request: slices of the body, nothing copied.
pub struct Request<'a> {
    pub model: &'a str,
    key: &'a str,
}

type Chunks = stream::Iter<std::array::IntoIter<&'static str, 5>>;

fn field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let at = body.find(name)? + name.len();
    let rest = body[at..].strip_prefix("\":\"")?;
    rest.split('"').next()
}

/// Stage 1: parse the client's request.
fn parse(body: &str) -> Result<Request<'_>, BenchError> {
    let body = black_box(body);
    Ok(Request {
        model: field(body, "\"model").ok_or(BenchError)?,
        key: field(body, "\"key").ok_or(BenchError)?,
    })
}

/// Stage 2: check the key (in constant time, as one should).
fn authorize(key: &str) -> Result<(), BenchError> {
    let key = black_box(key);
    let diff = key
        .bytes()
        .zip(KEY.bytes())
        .fold(key.len() ^ KEY.len(), |d, (a, b)| d | usize::from(a ^ b));
    if diff == 0 {
        Ok(())
    } else {
        Err(BenchError)
    }
}

/// Stage 3: build the provider request (here, a hash of what would be its headers).
fn prepare(req: &Request<'_>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in req.model.bytes().chain(req.key.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    black_box(h)
}

/// The backend call: answers at once with the 5 chunks.
async fn provider_call(model: &str, prepared: u64) -> Result<Chunks, BenchError> {
    black_box((model, prepared));
    Ok(stream::iter(CHUNKS))
}

// ---------------------------------------------------------------------------------------------
// (a) uninstrumented

/// (a) The handler, uninstrumented.
pub async fn plain(body: &'static str) -> Result<impl Stream<Item = &'static str>, BenchError> {
    let req = parse(body)?;
    authorize(req.key)?;
    let prepared = prepare(&req);
    let chunks = provider_call(req.model, prepared).await?;
    Ok(chunks)
}

// ---------------------------------------------------------------------------------------------
// (b) the macros

/// The handler with the statement attributes, under the attributes given (which must include
/// the one that expands them): (b) and the layer's (g) compare instrumentations of one body.
macro_rules! attributed_handler {
    ($(#[$attribute:meta])* $name:ident) => {
        $(#[$attribute])*
        pub async fn $name(
            body: &'static str,
        ) -> Result<impl Stream<Item = &'static str>, BenchError> {
            #[perf_stage(request_parsing)]
            let req = parse(body)?;
            #[perf_stage(auth_validation)]
            authorize(req.key)?;
            #[perf_stage(request_preparation)]
            let prepared = prepare(&req);
            #[perf_backend(provider = PROVIDER, model = req.model)]
            let chunks = provider_call(req.model, prepared).await?;
            #[perf_stream]
            let relayed = chunks;
            Ok(relayed)
        }
    };
}
#[cfg(feature = "axum")]
use attributed_handler;

attributed_handler! {
    /// (b) The handler with the macros.
    #[perf_endpoint("/bench/macros")]
    macros
}

// ---------------------------------------------------------------------------------------------
// (d) the runtime API by hand

static MANUAL: Endpoint = Endpoint::new(MANUAL_ENDPOINT);

/// (d) The handler with the runtime API, by hand.
pub async fn manual(body: &'static str) -> Result<impl Stream<Item = &'static str>, BenchError> {
    let tracker = PerformanceTracker::at(&MANUAL);
    let stage = tracker.stage(Stage::REQUEST_PARSING);
    let req = parse(body)?;
    let stage = stage.next(Stage::AUTH_VALIDATION);
    authorize(req.key)?;
    let stage = stage.next(Stage::REQUEST_PREPARATION);
    let prepared = prepare(&req);
    let backend = stage.next_backend(PROVIDER, req.model);
    let chunks = provider_call(req.model, prepared).await?;
    backend.first_byte();
    Ok(tracker.stream(chunks))
}

// ---------------------------------------------------------------------------------------------
// driving a request

fn noop_waker() -> Waker {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(|_| RAW, |_| {}, |_| {}, |_| {});
    const RAW: RawWaker = RawWaker::new(std::ptr::null(), &VTABLE);
    // SAFETY: every function of the vtable ignores the (null) data pointer.
    unsafe { Waker::from_raw(RAW) }
}

/// Polls `fut` to completion on this thread: the smallest executor there is (every future here
/// is ready at its first poll).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::hint::spin_loop();
    }
}

/// One whole request: the handler, then its answer consumed to the end, as a server sending it
/// to the client would. Returns the bytes sent.
pub fn request<F, S>(handler: F) -> usize
where
    F: Future<Output = Result<S, BenchError>>,
    S: Stream<Item = &'static str>,
{
    block_on(async {
        let answer = handler.await.expect("the handler succeeds");
        let mut answer = pin!(answer);
        let mut sent = 0;
        while let Some(chunk) = answer.next().await {
            sent += black_box(chunk).len();
        }
        sent
    })
}

/// The builds, by letter, as one request each (of a body the compiler cannot see through).
pub fn run(variant: Variant) -> usize {
    let body = black_box(BODY);
    match variant {
        Variant::Plain => request(plain(body)),
        Variant::Macros => request(macros(body)),
        Variant::Seed => request(seed(body)),
        Variant::Manual => request(manual(body)),
        #[cfg(feature = "bench-internals")]
        Variant::Floor => request(floor(body)),
        #[cfg(feature = "axum")]
        Variant::Layer => layer::layer(body),
        #[cfg(feature = "axum")]
        Variant::LayerAttributes => layer::layer_attributes(body),
        #[cfg(feature = "axum")]
        Variant::Service => layer::service(body),
        #[cfg(feature = "axum")]
        Variant::RouterLayer => layer::router(layer::Routed::Perf),
        #[cfg(feature = "axum")]
        Variant::Router => layer::router(layer::Routed::Bare),
        #[cfg(feature = "axum")]
        Variant::RouterIdentity => layer::router(layer::Routed::Identity),
    }
}

/// One of the builds of the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// (a) uninstrumented
    Plain,
    /// (b) the macros
    Macros,
    /// (c) the seed's hand-written style
    Seed,
    /// (d) the runtime API by hand
    Manual,
    /// (e) the floor: readings and observations only
    #[cfg(feature = "bench-internals")]
    Floor,
    /// (f) (a)'s handler under `PerfLayer`, as an HTTP exchange (feature `axum`)
    #[cfg(feature = "axum")]
    Layer,
    /// (g) (b)'s attributes without `#[perf_endpoint]`, under `PerfLayer`
    #[cfg(feature = "axum")]
    LayerAttributes,
    /// (h) (f) without the layer: the same service, request and body
    #[cfg(feature = "axum")]
    Service,
    /// (i) (a)'s handler routed by a one-route `axum::Router` with `PerfLayer`
    #[cfg(feature = "axum")]
    RouterLayer,
    /// (j) the same router without the layer
    #[cfg(feature = "axum")]
    Router,
    /// (k) the same router with a layer that does nothing, `tower_layer::Identity`: what axum
    /// adds for any layer
    #[cfg(feature = "axum")]
    RouterIdentity,
}

impl Variant {
    /// Every build, in letter order: (a) first, (c) third.
    pub const ALL: &'static [Variant] = &[
        Variant::Plain,
        Variant::Macros,
        Variant::Seed,
        Variant::Manual,
        #[cfg(feature = "bench-internals")]
        Variant::Floor,
        #[cfg(feature = "axum")]
        Variant::Layer,
        #[cfg(feature = "axum")]
        Variant::LayerAttributes,
        #[cfg(feature = "axum")]
        Variant::Service,
        #[cfg(feature = "axum")]
        Variant::RouterLayer,
        #[cfg(feature = "axum")]
        Variant::Router,
        #[cfg(feature = "axum")]
        Variant::RouterIdentity,
    ];

    /// The benchmark id: the letter of the issue, then a name.
    pub fn id(self) -> &'static str {
        match self {
            Variant::Plain => "a_uninstrumented",
            Variant::Macros => "b_macros",
            Variant::Seed => "c_seed_with_label_values",
            Variant::Manual => "d_runtime_api",
            #[cfg(feature = "bench-internals")]
            Variant::Floor => "e_floor",
            #[cfg(feature = "axum")]
            Variant::Layer => "f_layer",
            #[cfg(feature = "axum")]
            Variant::LayerAttributes => "g_layer_attributes",
            #[cfg(feature = "axum")]
            Variant::Service => "h_service_no_layer",
            #[cfg(feature = "axum")]
            Variant::RouterLayer => "i_router_layer",
            #[cfg(feature = "axum")]
            Variant::Router => "j_router_no_layer",
            #[cfg(feature = "axum")]
            Variant::RouterIdentity => "k_router_identity_layer",
        }
    }
}
