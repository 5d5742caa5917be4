//! [`PerfLayer`]: a tower layer that makes each HTTP exchange of an axum router one request.
//!
//! The request begins when the layer sees it and ends with its response body: when the body's
//! last frame is out (`completed`), when it yields an error (`error`), or when it is dropped
//! before its end (`cancelled`: the client left). An answer without a body (`HEAD`, 204, an
//! error's JSON the body of which is already whole) ends with the response. The `endpoint`
//! label is axum's [`MatchedPath`], the route template, bounded by the router; requests no route
//! matched share [`UNMATCHED_ENDPOINT`].
//!
//! Inside, the attributes work as without the layer: `#[perf_stage]`, `#[perf_backend]` and
//! `#[perf_stream]` record into the exchange, and a `#[perf_endpoint]` handler joins it (its
//! `Err` fails it) instead of making a request of its own; so does a `PerfLayer` inside another's
//! request (a nested router's own layer under one on the whole app): one request, counted once.

mod body;
mod route;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::http::request::Parts;
use axum::http::{Method, Request, Response};
use pin_project_lite::pin_project;

pub use body::PerfBody;

use crate::metrics::{Metrics, HTTP_METHODS};
use crate::trace::TraceId;
use crate::tracker::on_thread;
use crate::tracker::{HandlerExit, StateRef, UnwindWatch};

/// The W3C trace context header, as a name made once: a `&str` key is parsed on every lookup.
const TRACEPARENT: axum::http::HeaderName = axum::http::HeaderName::from_static("traceparent");

/// The `endpoint` label of requests that no route matched.
pub const UNMATCHED_ENDPOINT: &str = "unmatched";

/// Times every request of an axum router (or any tower service of `http` requests): add it
/// with `.layer(PerfLayer::new())` after the routes.
///
/// ```
/// use axum::{routing::get, Router};
/// use perf_runtime::PerfLayer;
///
/// let app: Router = Router::new()
///     .route("/v1/models", get(|| async { "[]" }))
///     .layer(PerfLayer::new())
///     // Added after the layer: /metrics is not timed.
///     .route("/metrics", get(perf_runtime::exposition::metrics_handler));
/// ```
///
/// It records `requests_total{endpoint, outcome}`, `http_responses_total{endpoint, status}`,
/// `requests_in_flight`, `request_duration_seconds` and `gateway_overhead_seconds`, and with
/// the attributes inside the handlers, the stages, backend calls and streaming of each request.
/// An answer with a 5xx status ends as `error`. The client's W3C `traceparent` header gives
/// the request its trace id; [`tenant_from`](Self::tenant_from) its tenant.
#[derive(Clone, Copy, Default)]
pub struct PerfLayer {
    metrics: Option<&'static Metrics>,
    tenant: Option<&'static TenantHook>,
}

/// What [`PerfLayer::tenant_from`] keeps: the user's closure, its tenant handed to `set`.
type TenantHook = dyn Fn(&Parts, &mut dyn FnMut(&str)) + Send + Sync;

impl PerfLayer {
    /// The layer, recording into the global metrics ([`Metrics::global`]).
    pub fn new() -> Self {
        PerfLayer {
            metrics: None,
            tenant: None,
        }
    }

    /// The layer, recording into `metrics`.
    pub fn with_metrics(metrics: &'static Metrics) -> Self {
        PerfLayer {
            metrics: Some(metrics),
            tenant: None,
        }
    }

    /// Gives each request the tenant `tenant` finds in its head (its API key, say), as
    /// [`current::set_tenant`](crate::current::set_tenant) would; `None` leaves it without one
    /// (a handler may still set it). The closure runs once per request, before the service;
    /// returning a `&'static str`, an `Arc<str>` or a `String` are all fine. It is kept for the
    /// life of the process, as the metrics are: make the layer once.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use perf_runtime::PerfLayer;
    ///
    /// let app: Router = Router::new()
    ///     .route("/v1/models", get(|| async { "[]" }))
    ///     .layer(PerfLayer::new().tenant_from(|parts| {
    ///         parts.headers.get("x-tenant").and_then(|v| v.to_str().ok().map(str::to_owned))
    ///     }));
    /// ```
    pub fn tenant_from<F, T>(mut self, tenant: F) -> Self
    where
        F: Fn(&Parts) -> Option<T> + Send + Sync + 'static,
        T: AsRef<str>,
    {
        let hook: Box<TenantHook> = Box::new(move |parts, set| {
            if let Some(found) = tenant(parts) {
                set(found.as_ref());
            }
        });
        self.tenant = Some(Box::leak(hook));
        self
    }
}

impl<S> tower_layer::Layer<S> for PerfLayer {
    type Service = PerfService<S>;

    fn layer(&self, inner: S) -> PerfService<S> {
        PerfService {
            inner,
            metrics: self.metrics,
            tenant: self.tenant,
        }
    }
}

/// The service [`PerfLayer`] wraps around each route.
#[derive(Clone)]
pub struct PerfService<S> {
    inner: S,
    metrics: Option<&'static Metrics>,
    tenant: Option<&'static TenantHook>,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for PerfService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = Response<PerfBody<ResBody>>;
    type Error = S::Error;
    type Future = PerfFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut request: Request<ReqBody>) -> PerfFuture<S::Future> {
        // A layer inside another's request (a nested router's own layer): part of that request.
        if on_thread::state().is_some() {
            return PerfFuture {
                future: Some(self.inner.call(request)),
                state: None,
                head: false,
                method: 0,
            };
        }
        let metrics = self.metrics.unwrap_or_else(Metrics::global);
        let path = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED_ENDPOINT, MatchedPath::as_str);
        let state = StateRef::exchange(route::route_endpoint(metrics, path));
        let traced = request
            .headers()
            .get(&TRACEPARENT)
            .and_then(|value| value.to_str().ok())
            .and_then(TraceId::from_traceparent);
        if let Some(id) = traced {
            state.set_trace_id(id);
        }
        // Taken apart only for a tenant hook: moving the request costs a copy of its head.
        if let Some(hook) = self.tenant {
            let (parts, body) = request.into_parts();
            hook(&parts, &mut |tenant| state.set_tenant(tenant));
            request = Request::from_parts(parts, body);
        }
        let head = request.method() == Method::HEAD;
        let method = method_index(request.method()) as u8;
        let future = {
            let _current = on_thread::enter(&state);
            self.inner.call(request)
        };
        PerfFuture {
            future: Some(future),
            state: Some(state),
            head,
            method,
        }
    }
}

/// [`HTTP_METHODS`] as `Method`s, compared by their tag rather than as strings.
const KNOWN_METHODS: [Method; HTTP_METHODS.len()] = [
    Method::GET,
    Method::POST,
    Method::HEAD,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

/// `method`'s index in [`HTTP_METHODS`]; past them for any other (`_OTHER`).
fn method_index(method: &Method) -> usize {
    KNOWN_METHODS
        .iter()
        .position(|known| known == method)
        .unwrap_or(HTTP_METHODS.len())
}

pin_project! {
    /// The response future of [`PerfService`]: the request is current while it is polled.
    pub struct PerfFuture<F> {
        #[pin]
        future: Option<F>,
        // The request it makes; none for a layer inside another's request.
        state: Option<StateRef>,
        head: bool,
        // The request's method, an index into `HTTP_METHODS` (a byte beside `head`: the future
        // is moved whole by the server, every byte of it).
        method: u8,
    }

    impl<F> PinnedDrop for PerfFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let (true, Some(state)) = (this.future.is_some(), this.state.take()) {
                let _current = on_thread::enter(&state);
                this.future.set(None);
                state.release_exchange_handler(HandlerExit::Cancelled);
            }
        }
    }
}

impl<F, B, E> Future for PerfFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<PerfBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let Some(state) = this.state.as_ref() else {
            let out = std::task::ready!(future.poll(cx));
            this.future.set(None);
            return Poll::Ready(out.map(|response| response.map(PerfBody::passing)));
        };
        let entered = on_thread::enter(state);
        let watch = UnwindWatch::new(state);
        let polled = future.poll(cx);
        watch.passed();
        // The response is looked at where it lies and its body wrapped in one move: taken out
        // and rebuilt, its head would be copied at each step.
        let Poll::Ready(out) = &polled else {
            return Poll::Pending;
        };
        this.future.set(None);
        drop(entered);
        if let Ok(response) = out {
            let status = response.status();
            let (count, duration) = state
                .endpoint()
                .http_series(usize::from(*this.method), status.as_u16());
            count.inc();
            state.http_exchange(duration);
            if status.is_server_error() {
                state.fail();
            }
        }
        let head = *this.head;
        // Taken only now: a poll that panicked left it for the drop to let go as cancelled.
        let Some(state) = this.state.take() else {
            return polled.map(|out| out.map(|response| response.map(PerfBody::passing)));
        };
        match polled {
            // The handler's share of the request passes to the body: it ends with the body.
            Poll::Ready(Ok(response)) => {
                let mut response = response.map(|body| PerfBody::new(body, state, head));
                response.body_mut().take_over();
                Poll::Ready(Ok(response))
            }
            Poll::Ready(Err(error)) => {
                state.release_exchange_handler(HandlerExit::Returned(false));
                Poll::Ready(Err(error))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_is_indexed_as_its_name_is_in_the_label_values() {
        for (index, method) in KNOWN_METHODS.iter().enumerate() {
            assert_eq!(method.as_str(), HTTP_METHODS[index]);
            assert_eq!(method_index(method), index);
        }
        let other = Method::from_bytes(b"PURGE").expect("a token");
        assert_eq!(method_index(&other), HTTP_METHODS.len());
    }
}
