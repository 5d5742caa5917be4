//! A user application of perf, built with prometheus' default features and served by axum. The
//! application and its checks are shared by every user crate (`../common/`); the chat gateway
//! served with `PerfLayer` or `#[perf_endpoint]` alone (`llm`) is this crate's only.

#[path = "../../common/app.rs"]
pub mod app;
#[path = "../../common/checks.rs"]
pub mod checks;
#[path = "../../common/exposition.rs"]
pub mod exposition;
#[path = "../../common/http.rs"]
pub mod http;
#[path = "../../common/llm.rs"]
pub mod llm;
#[path = "../../common/llm_checks.rs"]
pub mod llm_checks;

/// How the tests reach the application: over HTTP.
pub type Driver = http::Http;

/// What this crate is built with.
pub const BUILD: checks::Build = checks::Build { process: false };
