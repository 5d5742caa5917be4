//! The Prometheus text format, and a ready `/metrics` handler.

mod text;

use prometheus::Registry;

use crate::metrics::Metrics;

/// The `Content-Type` of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every family in `registry` in the Prometheus text format: the same bytes as the
/// `prometheus` crate's `gather` + `TextEncoder`, several times faster (see BENCHMARKS.md).
pub fn render(registry: &Registry) -> String {
    let families = registry.gather();
    let mut out = String::with_capacity(64 * 1024);
    text::encode(&families, &mut out);
    out
}

/// Renders the registry of the global metrics (the default registry, unless another was
/// installed).
pub fn render_global() -> String {
    Metrics::global().render()
}

/// An axum handler serving [`render_global`] with the right content type.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// let app: axum::Router = axum::Router::new()
///     .route("/metrics", axum::routing::get(perf_runtime::exposition::metrics_handler));
/// # }
/// ```
#[cfg(feature = "axum")]
pub async fn metrics_handler() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
        render_global(),
    )
        .into_response()
}
