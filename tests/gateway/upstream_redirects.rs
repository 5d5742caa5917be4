//! A provider that answers with a redirect: the gateway does not follow it (reqwest's default
//! would, 10 hops deep, re-posting the client's prompt to another host with a `Referer` naming
//! the provider, and taking the provider key along on a same-origin one). The client gets a
//! 502 (`backend_errors_total{kind="status"}`), and nothing reaches the redirect's target.

use crate::common;

use common::{
    backend_errors, chat, error_of, eventually, get, post, responses, start, trace_id_of,
    FakeProvider, KEY,
};

const UPSTREAM_KEY: &str = "sk-redirected-upstream-key-0001";

/// 307 to another host, 308 to the same one, streamed or not, chat or responses: each a 502
/// of kind `status`, and the provider got each request once, the other host none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_redirect_is_a_502_and_never_followed() {
    common::alone!();
    let elsewhere = FakeProvider::start(None).await;
    let provider = FakeProvider::start(Some(&elsewhere.origin)).await;
    let upstream = provider.base_url();
    let gateway = start(&[
        "--upstream",
        &upstream,
        "--upstream-key",
        UPSTREAM_KEY,
        "--provider",
        "redirecting",
    ])
    .await;

    let mut sent = 0;
    for (model, status) in [("redirect-away", 307), ("redirect-here", 308)] {
        for (path, stream) in [
            ("/chat/completions", false),
            ("/chat/completions", true),
            ("/responses", true),
        ] {
            let before = backend_errors("redirecting", model, &format!("/v1{path}"), "status");
            let body = match path {
                "/responses" => responses(model, stream),
                _ => chat(model, stream),
            };
            let response = post(&gateway, path, Some(KEY), body).await;
            sent += 1;
            let trace = trace_id_of(response.headers());
            let error = error_of(response, 502).await;
            assert_eq!(error["error"]["code"], "bad_gateway", "{error}");
            let message = error["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(&format!("a redirect ({status})")),
                "{model}: {message}"
            );
            assert!(message.contains(&trace), "{message}");
            // Where it pointed is not the client's business.
            assert!(!message.contains(&elsewhere.origin), "{message}");
            assert!(!message.contains("landing"), "{message}");
            let endpoint = format!("/v1{path}");
            assert!(
                eventually(
                    || backend_errors("redirecting", model, &endpoint, "status") == before + 1
                )
                .await,
                "backend_errors_total{{kind=\"status\"}} of {model} {endpoint}"
            );
        }
    }

    assert!(elsewhere.hits().is_empty(), "{:?}", elsewhere.hits());
    let hits = provider.hits();
    assert_eq!(hits.len(), sent, "one try each, no follow-up: {hits:?}");
    for hit in &hits {
        assert_ne!(
            hit.path, "/v1/landing",
            "a same-origin redirect was followed"
        );
        assert_eq!(hit.referer, None, "{hit:?}");
        assert_eq!(
            hit.authorization.as_deref(),
            Some(format!("Bearer {UPSTREAM_KEY}").as_str())
        );
    }

    // The same provider serves a plain request as before.
    let response = post(&gateway, "/chat/completions", Some(KEY), chat("ok", false)).await;
    assert_eq!(response.status(), 200);
    gateway.shutdown().await;
}

/// `GET /v1/models` goes through the same client: its 302 is not followed either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_model_listing_is_a_502() {
    common::alone!();
    let elsewhere = FakeProvider::start(None).await;
    let provider = FakeProvider::start(Some(&elsewhere.origin)).await;
    let upstream = provider.base_url();
    let gateway = start(&["--upstream", &upstream, "--provider", "listing"]).await;
    let (status, body) = get(&format!("{}/models", gateway.base_url()), Some(KEY)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("a redirect (302)"), "{body}");
    assert!(!body.contains(&elsewhere.origin), "{body}");
    assert!(elsewhere.hits().is_empty(), "{:?}", elsewhere.hits());
    assert_eq!(provider.hits().len(), 1);
    gateway.shutdown().await;
}
