//! A user application of perf, built with prometheus' default features and served by axum. The
//! application and its checks are shared by every user crate (`../common/`).

#[path = "../../common/app.rs"]
pub mod app;
#[path = "../../common/checks.rs"]
pub mod checks;
#[path = "../../common/http.rs"]
pub mod http;

/// How the tests reach the application: over HTTP.
pub type Driver = http::Http;

/// What this crate is built with.
pub const BUILD: checks::Build = checks::Build { process: false };
