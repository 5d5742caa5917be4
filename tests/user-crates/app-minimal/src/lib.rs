//! A user application of perf, built with prometheus without its default features, and the
//! features of this crate on top. The application and its checks are shared by every user crate
//! (`../common/`).

#[path = "../../common/app.rs"]
pub mod app;
#[path = "../../common/checks.rs"]
pub mod checks;
#[cfg(feature = "axum")]
#[path = "../../common/http.rs"]
pub mod http;

/// How the tests reach the application: over HTTP.
#[cfg(feature = "axum")]
pub type Driver = http::Http;
/// How the tests reach the application: its handler's future, driven on tokio tasks.
#[cfg(not(feature = "axum"))]
pub type Driver = app::Direct;

/// What this crate is built with.
pub const BUILD: checks::Build = checks::Build {
    process: cfg!(feature = "process"),
};
