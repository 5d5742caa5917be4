//! The builds of the same handler under `PerfLayer` (feature `axum`): each request is an HTTP
//! exchange, driven as a server drives one: `call` the service, poll its future to the
//! response, then poll the response body frame by frame to its end, and drop it.
//!
//! * (f) [`Variant::Layer`](super::Variant::Layer): `PerfService` around [`HandlerService`], a
//!   minimal `tower_service::Service` whose future runs (a)'s handler and answers with a
//!   [`ChunkBody`] relaying the 5 chunks as 5 data frames; the request carries a `MatchedPath`
//!   (`/bench/layer`) as a router would give it;
//! * (g) [`Variant::LayerAttributes`](super::Variant::LayerAttributes): the same around
//!   [`attributed`], (b)'s handler with `#[perf_statements]` in place of `#[perf_endpoint]`
//!   (`/bench/layer/attributes`);
//! * (h) [`Variant::Service`](super::Variant::Service): (f) without the layer, the baseline of
//!   the layer's own cost;
//! * (i) [`Variant::RouterLayer`](super::Variant::RouterLayer), (j)
//!   [`Variant::Router`](super::Variant::Router) and (k)
//!   [`Variant::RouterIdentity`](super::Variant::RouterIdentity): (a)'s handler routed by a
//!   real `axum::Router` (one route, `/bench/router`), with `.layer(PerfLayer::new())`, without
//!   a layer, and with `.layer(tower_layer::Identity::new())`: what axum adds for any layer
//!   (it boxes the layered route again), apart from what `PerfLayer` does.
//!
//! `MatchedPath` has no public constructor: the two of (f) and (g) are taken once from a
//! router (a handler that extracts them), and each request's extensions are handed back with
//! its response and moved into the next request, so that the harness allocates nothing per
//! request (a fresh `Extensions` with one entry would be three allocations: the map, its table
//! and the boxed entry).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::hint::black_box;
use std::marker::PhantomData;
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::MatchedPath;
use axum::http::{Extensions, Request, Response, Uri};
use axum::routing::get;
use axum::Router;
use futures_util::stream::Stream;
use http_body::{Body as HttpBody, Frame};
use perf_runtime::{perf_backend, perf_stage, perf_statements, perf_stream, PerfLayer};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    attributed_handler, authorize, block_on, parse, plain, prepare, provider_call, BenchError,
    PROVIDER,
};

/// Route of (f).
pub const LAYER_ROUTE: &str = "/bench/layer";
/// Route of (g).
pub const LAYER_ATTRIBUTES_ROUTE: &str = "/bench/layer/attributes";
/// Route of (i) and (j).
pub const ROUTER_ROUTE: &str = "/bench/router";

// ---------------------------------------------------------------------------------------------
// (g)'s handler

attributed_handler! {
    /// (g) (b)'s handler without `#[perf_endpoint]`: its stages, backend call and stream record
    /// into the layer's exchange.
    #[perf_statements]
    attributed
}

// ---------------------------------------------------------------------------------------------
// the minimal service, its future and its body

pin_project! {
    /// A response body relaying a stream of `&'static str`, one data frame per item; at its end
    /// once the stream has ended (its 6th poll for 5 chunks, as (a)'s consumer polls).
    pub struct ChunkBody<S> {
        #[pin]
        chunks: S,
        done: bool,
    }
}

impl<S> ChunkBody<S> {
    pub fn new(chunks: S) -> Self {
        ChunkBody {
            chunks,
            done: false,
        }
    }
}

impl<S: Stream<Item = &'static str>> HttpBody for ChunkBody<S> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match ready!(this.chunks.poll_next(cx)) {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(chunk.as_bytes()))))),
            None => {
                *this.done = true;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// What a handler returns: its answer's stream, or its error.
pub trait Answer {
    type Chunks: Stream<Item = &'static str>;
    fn into_result(self) -> Result<Self::Chunks, BenchError>;
}

impl<S: Stream<Item = &'static str>> Answer for Result<S, BenchError> {
    type Chunks = S;
    fn into_result(self) -> Result<S, BenchError> {
        self
    }
}

/// A `tower_service::Service` of `Request<&'static str>` (the JSON body) that runs `handler` on
/// the body and answers with its stream as a [`ChunkBody`]. Its future holds the handler's
/// inline: nothing boxed. The request's extensions come back in the response's.
pub struct HandlerService<H, F> {
    handler: H,
    _future: PhantomData<fn() -> F>,
}

impl<H: Clone, F> Clone for HandlerService<H, F> {
    fn clone(&self) -> Self {
        HandlerService {
            handler: self.handler.clone(),
            _future: PhantomData,
        }
    }
}

impl<H, F> HandlerService<H, F>
where
    H: Fn(&'static str) -> F,
    F: Future,
    F::Output: Answer,
{
    pub fn new(handler: H) -> Self {
        HandlerService {
            handler,
            _future: PhantomData,
        }
    }
}

impl<H, F> Service<Request<&'static str>> for HandlerService<H, F>
where
    H: Fn(&'static str) -> F,
    F: Future,
    F::Output: Answer,
{
    type Response = Response<ChunkBody<<F::Output as Answer>::Chunks>>;
    type Error = BenchError;
    type Future = Respond<F>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BenchError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<&'static str>) -> Respond<F> {
        let (mut parts, body) = request.into_parts();
        Respond {
            handler: (self.handler)(body),
            extensions: Some(std::mem::take(&mut parts.extensions)),
        }
    }
}

pin_project! {
    /// [`HandlerService`]'s future: the handler's, then its answer made a response.
    pub struct Respond<F> {
        #[pin]
        handler: F,
        extensions: Option<Extensions>,
    }
}

impl<F> Future for Respond<F>
where
    F: Future,
    F::Output: Answer,
{
    type Output = Result<Response<ChunkBody<<F::Output as Answer>::Chunks>>, BenchError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let chunks = ready!(this.handler.poll(cx)).into_result()?;
        let mut response = Response::new(ChunkBody::new(chunks));
        if let Some(extensions) = this.extensions.take() {
            *response.extensions_mut() = extensions;
        }
        Poll::Ready(Ok(response))
    }
}

// ---------------------------------------------------------------------------------------------
// driving an exchange

/// Sends the frames of `body` to nowhere, as a server would to the client: the bytes sent.
async fn send<B: HttpBody<Data = Bytes>>(body: B) -> usize
where
    B::Error: std::fmt::Debug,
{
    let mut body = pin!(body);
    let mut sent = 0;
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.expect("the body yields no error");
        if let Ok(data) = frame.into_data() {
            sent += black_box(data).len();
        }
    }
    sent
}

/// A service [`exchange`] can drive, named once for the functions that take one.
pub trait Exchange:
    Service<Request<&'static str>, Response = Response<Self::Body>, Error: std::fmt::Debug>
{
    type Body: HttpBody<Data = Bytes, Error: std::fmt::Debug>;
}

impl<S, B> Exchange for S
where
    S: Service<Request<&'static str>, Response = Response<B>, Error: std::fmt::Debug>,
    B: HttpBody<Data = Bytes, Error: std::fmt::Debug>,
{
    type Body = B;
}

/// One exchange through `service`: ready, call, the future to its response, the body to its
/// end, dropped. The response's extensions are handed to `keep`. The bytes sent.
pub fn exchange(
    service: &mut impl Exchange,
    request: Request<&'static str>,
    keep: impl FnOnce(Extensions),
) -> usize {
    block_on(async {
        poll_fn(|cx| service.poll_ready(cx))
            .await
            .expect("the service is ready");
        let response = service.call(request).await.expect("the handler succeeds");
        let (mut parts, body) = response.into_parts();
        keep(std::mem::take(&mut parts.extensions));
        send(body).await
    })
}

thread_local! {
    /// The extensions of (f)'s and (g)'s requests, each holding its `MatchedPath`: moved into
    /// a request, back out of its response.
    static LAYER_EXTENSIONS: Cell<Option<Extensions>> = const { Cell::new(None) };
    static ATTRIBUTES_EXTENSIONS: Cell<Option<Extensions>> = const { Cell::new(None) };
}

/// Extensions holding `route`'s `MatchedPath`, as a router made it: taken from a request that a
/// one-route router answers.
fn matched_path_of(route: &'static str) -> Extensions {
    let found: std::sync::Arc<std::sync::Mutex<Option<MatchedPath>>> = Default::default();
    let keep = found.clone();
    let mut router = Router::new().route(
        route,
        get(move |path: MatchedPath| async move {
            *keep.lock().unwrap() = Some(path);
        }),
    );
    let mut request = Request::new(Body::empty());
    *request.uri_mut() = Uri::from_static(route);
    block_on(router.call(request)).expect("the router answers");
    let path = found.lock().unwrap().take().expect("the route matched");
    assert_eq!(path.as_str(), route);
    let mut extensions = Extensions::new();
    extensions.insert(path);
    extensions
}

/// One request of `handler` through `service`, with the extensions of `cell` (made with
/// `route`'s `MatchedPath` the first time).
fn with_matched_path(
    cell: &'static std::thread::LocalKey<Cell<Option<Extensions>>>,
    route: &'static str,
    service: &mut impl Exchange,
    body: &'static str,
) -> usize {
    let extensions = cell.take().unwrap_or_else(|| matched_path_of(route));
    let mut request = Request::new(body);
    *request.extensions_mut() = extensions;
    exchange(service, request, |back| cell.set(Some(back)))
}

thread_local! {
    /// The services of (f), (g), (f) unmatched and (h), each made once per thread, as a router
    /// makes its routes' once: a request clones one, as axum clones a route per call. (h) takes
    /// its own the same way, so that (f) - (h) holds the layer's cost and none of the harness'.
    static LAYERED: RefCell<[Option<Box<dyn Any>>; 4]> =
        const { RefCell::new([None, None, None, None]) };
}

/// A clone of the service in slot `slot` of [`LAYERED`], made by `make` the first time.
fn layered<S: Clone + 'static>(slot: usize, make: impl FnOnce() -> S) -> S {
    LAYERED.with(|services| {
        let mut services = services.borrow_mut();
        let made = services[slot].get_or_insert_with(|| Box::new(make()));
        made.downcast_ref::<S>()
            .expect("one service type per slot")
            .clone()
    })
}

/// (f) One request of (a)'s handler through `PerfLayer`, with its `MatchedPath`.
pub fn layer(body: &'static str) -> usize {
    let mut service = layered(0, || PerfLayer::new().layer(HandlerService::new(plain)));
    with_matched_path(&LAYER_EXTENSIONS, LAYER_ROUTE, &mut service, body)
}

/// (g) One request of [`attributed`] through `PerfLayer`, with its `MatchedPath`.
pub fn layer_attributes(body: &'static str) -> usize {
    let mut service = layered(1, || {
        PerfLayer::new().layer(HandlerService::new(attributed))
    });
    with_matched_path(
        &ATTRIBUTES_EXTENSIONS,
        LAYER_ATTRIBUTES_ROUTE,
        &mut service,
        body,
    )
}

/// (h) (f) without the layer: the same service, request, extensions and body.
pub fn service(body: &'static str) -> usize {
    let mut service = layered(3, || HandlerService::new(plain));
    with_matched_path(&LAYER_EXTENSIONS, LAYER_ROUTE, &mut service, body)
}

/// (f) without a `MatchedPath`: the request is `unmatched`'s.
pub fn layer_unmatched(body: &'static str) -> usize {
    let mut service = layered(2, || PerfLayer::new().layer(HandlerService::new(plain)));
    exchange(&mut service, Request::new(body), drop)
}

// ---------------------------------------------------------------------------------------------
// a real router

/// (a)'s handler as an axum handler: its answer a [`ChunkBody`].
async fn routed_handler() -> Response<ChunkBody<impl Stream<Item = &'static str>>> {
    let chunks = plain(black_box(super::BODY))
        .await
        .expect("the handler succeeds");
    Response::new(ChunkBody::new(chunks))
}

/// How (a)'s handler is routed: the layer between the router and the handler, or another, or
/// none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routed {
    /// (i) `.layer(PerfLayer::new())`
    Perf,
    /// (k) `.layer(tower_layer::Identity::new())`: what axum's `Router::layer` costs whatever
    /// the layer
    Identity,
    /// (j) no layer
    Bare,
}

thread_local! {
    static ROUTERS: RefCell<Option<[Router; 3]>> = const { RefCell::new(None) };
}

/// One request of (a)'s handler through a one-route `axum::Router` ((i) with `PerfLayer`, (j)
/// without a layer, (k) with `Identity`). The router allocates per request (the `MatchedPath` and URL parameters'
/// extensions, its boxed route futures, the response body boxed into `Body`): these rows are
/// for timing; `tests/no_alloc.rs` counts what a layer adds.
pub fn router(routed: Routed) -> usize {
    let mut request = Request::new(Body::empty());
    *request.uri_mut() = Uri::from_static(ROUTER_ROUTE);
    let answer = ROUTERS.with_borrow_mut(|routers| {
        let routers = routers.get_or_insert_with(|| {
            let bare = Router::new().route(ROUTER_ROUTE, get(routed_handler));
            // `with_state(())` makes each route's handler a service once, as `axum::serve`
            // does (`into_make_service`); else the router makes it again for every request.
            [
                bare.clone().layer(PerfLayer::new()).with_state(()),
                bare.clone()
                    .layer(tower_layer::Identity::new())
                    .with_state(()),
                bare.with_state(()),
            ]
        });
        // The router is always ready (`poll_ready` is `Ready(Ok(()))`).
        routers[routed as usize].call(request)
    });
    block_on(async {
        let response = answer.await.expect("the router answers");
        send(response.into_body()).await
    })
}
