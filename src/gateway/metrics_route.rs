//! `GET /metrics`: who may read it, the format each scraper asks for (its `Accept` header: the
//! Prometheus text format, OpenMetrics with exemplars, or protobuf with native histograms), and
//! renderings shared by concurrent scrapes (with their gzip form), so that scrapers looping on it
//! cost the API one rendering at a time per format, not one each, while every scrape still
//! shows everything recorded before it arrived.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use perf_runtime::exposition::Format;
use tokio::time::Instant;

use super::auth::ApiKeys;
use super::error::ApiError;

/// Who may read `GET /metrics`.
#[derive(Debug, Clone)]
pub enum MetricsAccess {
    /// Anyone who reaches the listener: the default, for a Prometheus on a private network.
    Open,
    /// Only a request with `Authorization: Bearer TOKEN`: 401 otherwise.
    Token(Arc<ApiKeys>),
}

impl MetricsAccess {
    /// Open without a token, else behind it (`--metrics-token`). An empty token is refused: it
    /// would lock Prometheus out, or look like protection while being none.
    pub fn new(token: Option<&str>) -> io::Result<MetricsAccess> {
        match token {
            None => Ok(MetricsAccess::Open),
            Some(token) if token.trim().is_empty() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--metrics-token must not be empty",
            )),
            Some(token) => Ok(MetricsAccess::Token(Arc::new(ApiKeys::new([token.trim()])))),
        }
    }

    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self {
            MetricsAccess::Open => Ok(()),
            MetricsAccess::Token(token) => token.check(headers).map(|_| ()).map_err(|_| {
                ApiError::unauthorized(
                    "/metrics needs `Authorization: Bearer TOKEN` with the gateway's --metrics-token",
                )
            }),
        }
    }
}

/// The `operation` of `operation_duration_seconds` that times each rendering of `/metrics`:
/// its count is the number of renderings, its sum their time.
pub const RENDER_OPERATION: &str = "metrics_render";

/// The renderings of `/metrics`: at most one at a time per format, shared by the scrapes that
/// wait for it.
///
/// Rendering perf's families costs CPU in proportion to their series (a few ms for 1,000
/// models); scrapers that loop on `/metrics` would otherwise take that from the API. Here each
/// format has at most one rendering in progress; a scrape arriving meanwhile waits for it to
/// end, then shares the next one with every other scrape that arrived meanwhile (a scrape of
/// another format does not wait). A rendering is only ever given to scrapes that arrived before
/// it started: **a scrape shows everything recorded before it arrived**, never an older
/// rendering (a user who checks a counter right after a request sees it); scrapes that arrive
/// within one rendering's time cost at most two renderings, however many they are. With `max_age` above zero a scrape may also
/// be answered with a finished rendering up to that old: fewer renderings for scrapers that
/// loop, numbers up to `max_age` stale. The rendering runs on tokio's blocking pool, off the
/// workers that serve the API, timed as
/// `operation_duration_seconds{operation="metrics_render"}`. Its gzip form, for scrapers that
/// accept it (Prometheus does), is made once too, at the first such scrape.
#[derive(Debug)]
pub struct MetricsCache {
    max_age: Duration,
    /// The last rendering of each format, in [`slot`] order. Each lock is held across a
    /// rendering: whoever comes meanwhile for that format waits for it.
    latest: [tokio::sync::Mutex<Option<Rendering>>; FORMATS],
    /// Renders the global metrics in a format (the tests slow it down).
    render: fn(Format) -> Vec<u8>,
}

/// The formats `/metrics` answers in.
const FORMATS: usize = 3;

/// The place of `format`'s rendering in [`MetricsCache::latest`].
fn slot(format: Format) -> usize {
    match format {
        Format::Text => 0,
        Format::OpenMetrics => 1,
        Format::Protobuf => 2,
    }
}

#[derive(Debug)]
struct Rendering {
    /// When the rendering started: the age of its numbers.
    at: Instant,
    text: Bytes,
    gzip: Option<Bytes>,
}

impl MetricsCache {
    /// A cache that also answers a scrape with a finished rendering up to `max_age` old (zero:
    /// only with a rendering started after the scrape arrived).
    pub fn new(max_age: Duration) -> Arc<MetricsCache> {
        Self::with_renderer(max_age, render_global)
    }

    fn with_renderer(max_age: Duration, render: fn(Format) -> Vec<u8>) -> Arc<MetricsCache> {
        Arc::new(MetricsCache {
            max_age,
            latest: std::array::from_fn(|_| tokio::sync::Mutex::new(None)),
            render,
        })
    }

    /// The text format of the global metrics, rendered after this call began (or at most
    /// `max_age` before).
    pub async fn get(&self) -> io::Result<Bytes> {
        self.rendering(Format::Text, false).await
    }

    /// The same, gzip-compressed (`Content-Encoding: gzip`).
    pub async fn get_gzip(&self) -> io::Result<Bytes> {
        self.rendering(Format::Text, true).await
    }

    /// The global metrics in `format`, rendered after this call began (or at most `max_age`
    /// before); gzip-compressed if `gzip`.
    pub async fn get_as(&self, format: Format, gzip: bool) -> io::Result<Bytes> {
        self.rendering(format, gzip).await
    }

    async fn rendering(&self, format: Format, gzip: bool) -> io::Result<Bytes> {
        let arrived = Instant::now();
        let mut latest = self.latest[slot(format)].lock().await;
        // A rendering that started once this scrape was waiting read everything recorded
        // before it arrived: share it. An older one only within `max_age`.
        let usable = latest.as_ref().is_some_and(|rendering| {
            rendering.at >= arrived || rendering.at.elapsed() < self.max_age
        });
        let rendering = match &mut *latest {
            Some(rendering) if usable => rendering,
            stale => {
                let at = Instant::now();
                let render = self.render;
                let text = tokio::task::spawn_blocking(move || render(format))
                    .await
                    .map_err(io::Error::other)?;
                stale.insert(Rendering {
                    at,
                    text: Bytes::from(text),
                    gzip: None,
                })
            }
        };
        if !gzip {
            return Ok(rendering.text.clone());
        }
        if let Some(compressed) = &rendering.gzip {
            return Ok(compressed.clone());
        }
        let text = rendering.text.clone();
        let compressed = tokio::task::spawn_blocking(move || compress(&text))
            .await
            .map_err(io::Error::other)??;
        Ok(rendering.gzip.insert(compressed).clone())
    }
}

/// The global metrics in `format`, timed as a [`RENDER_OPERATION`].
fn render_global(format: Format) -> Vec<u8> {
    let _timer = perf_runtime::track_duration(RENDER_OPERATION);
    perf_runtime::exposition::render_global_as(format)
}

/// `text` gzip-compressed, at the fastest level: every format compresses well at any.
fn compress(text: &[u8]) -> io::Result<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 8),
        flate2::Compression::fast(),
    );
    encoder.write_all(text)?;
    Ok(encoder.finish()?.into())
}

/// Whether an `Accept-Encoding` header accepts gzip (not with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[derive(Debug, Clone)]
struct MetricsState {
    access: MetricsAccess,
    cache: Arc<MetricsCache>,
}

/// `GET /metrics` (the global metrics in the format the scraper's `Accept` header asks for, the
/// Prometheus text format by default; through `cache`, gzipped for a scraper that accepts it),
/// behind `access`.
pub fn metrics_routes<S: Clone + Send + Sync + 'static>(
    access: MetricsAccess,
    cache: Arc<MetricsCache>,
) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(MetricsState { access, cache })
}

async fn metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    if let Err(e) = state.access.check(&headers) {
        return e.into_response();
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = Format::from_accept(accept);
    let content_type = (header::CONTENT_TYPE, format.content_type());
    let vary = (header::VARY, "accept, accept-encoding");
    let gzip = accepts_gzip(&headers);
    let answer = state.cache.get_as(format, gzip).await.map(|body| {
        if gzip {
            let encoding = (header::CONTENT_ENCODING, "gzip");
            ([content_type, vary, encoding], body).into_response()
        } else {
            ([content_type, vary], body).into_response()
        }
    });
    answer.unwrap_or_else(|_| ApiError::internal("rendering the metrics failed").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn gzip_when_accepted() {
        assert!(accepts_gzip(&accept(&["gzip"])));
        assert!(accepts_gzip(&accept(&["identity", "deflate, GZIP;q=0.5"])));
        assert!(accepts_gzip(&accept(&["*"])));
        assert!(!accepts_gzip(&accept(&[])));
        assert!(!accepts_gzip(&accept(&["br, deflate"])));
        assert!(!accepts_gzip(&accept(&["gzip;q=0"])));
    }

    #[tokio::test]
    async fn one_rendering_serves_both_forms() {
        let cache = MetricsCache::new(Duration::from_secs(60));
        let text = cache.get().await.expect("a rendering");
        let gzip = cache.get_gzip().await.expect("its gzip form");
        assert_eq!(cache.get_gzip().await.expect("the same"), gzip);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut back)
            .expect("valid gzip");
        assert_eq!(back, text);
    }

    /// Renderings made by [`gated_render`], and whether it may finish.
    static GATED_RENDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static GATE: (std::sync::Mutex<bool>, std::sync::Condvar) =
        (std::sync::Mutex::new(false), std::sync::Condvar::new());

    /// A rendering that says which it is, and does not finish until the gate is open.
    fn gated_render(_: Format) -> Vec<u8> {
        let n = GATED_RENDERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let (open, opened) = &GATE;
        let mut open = open.lock().unwrap();
        while !*open {
            open = opened.wait(open).unwrap();
        }
        format!("rendering {n}").into_bytes()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scrapes_share_only_renderings_that_started_after_they_arrived() {
        use std::sync::atomic::Ordering::SeqCst;
        let cache = MetricsCache::with_renderer(Duration::ZERO, gated_render);
        let first = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get().await }
        });
        for _ in 0..1000 {
            if GATED_RENDERS.load(SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(GATED_RENDERS.load(SeqCst), 1, "the first rendering started");
        // Ten scrapes arrive while it renders (`join` polls them, which queues them, before it
        // opens the gate): none gets that rendering, begun before they came; all share the next.
        let scrapes = futures_util::future::join_all((0..10).map(|_| cache.get()));
        let open = async {
            *GATE.0.lock().unwrap() = true;
            GATE.1.notify_all();
        };
        let (scrapes, ()) = futures_util::future::join(scrapes, open).await;
        assert_eq!(first.await.unwrap().unwrap(), "rendering 1");
        for scrape in scrapes {
            assert_eq!(scrape.unwrap(), "rendering 2");
        }
        assert_eq!(GATED_RENDERS.load(SeqCst), 2, "one rendering for the ten");
        // A scrape that comes once it is done gets a rendering of its own: nothing stale.
        assert_eq!(cache.get().await.unwrap(), "rendering 3");
        // With a max age, a finished rendering younger than that serves later scrapes too.
        let cached = MetricsCache::with_renderer(Duration::from_secs(60), gated_render);
        assert_eq!(cached.get().await.unwrap(), "rendering 4");
        assert_eq!(cached.get().await.unwrap(), "rendering 4");
        assert_eq!(GATED_RENDERS.load(SeqCst), 4);
    }

    #[tokio::test]
    async fn each_format_has_its_own_rendering() {
        let tracker = perf_runtime::track_request_stages("/test/formats");
        tracker.backend_request("mock", "m").first_byte();
        drop(tracker);
        let cache = MetricsCache::new(Duration::from_secs(60));
        let text = cache.get_as(Format::Text, false).await.expect("text");
        let openmetrics = cache.get_as(Format::OpenMetrics, false).await.expect("OM");
        let protobuf = cache
            .get_as(Format::Protobuf, false)
            .await
            .expect("protobuf");
        assert!(!text.ends_with(b"# EOF\n"));
        assert!(openmetrics.ends_with(b"# EOF\n"));
        assert!(text.starts_with(b"# HELP "));
        assert!(!protobuf.is_empty() && !protobuf.starts_with(b"# "));
        assert_eq!(cache.get().await.expect("the same text"), text);
        let again = cache.get_as(Format::OpenMetrics, false).await.expect("OM");
        assert_eq!(again, openmetrics, "shared while fresh");
    }
}
