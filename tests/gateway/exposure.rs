//! Who may read the example gateway's `/metrics`: open on the main listener by default, behind
//! a bearer token (`--metrics-token`), on a listener of its own (`--metrics-listen`); and the
//! label settings a second gateway in the same process must share.

use crate::common;

use clap::Parser;
use common::{chat, client, error_of, get, post, start, KEY, ZERO_MOCK};
use perf::{Config, Gateway};

// ---------------------------------------------------------------------------------------------
// /metrics exposure
// ---------------------------------------------------------------------------------------------

/// Checks that `gateway`'s API listener answers a whole chat: moving `/metrics` or guarding it
/// must leave the API as it was.
async fn assert_chat_answered(gateway: &Gateway) {
    let response = post(
        gateway,
        "/chat/completions",
        Some(KEY),
        chat("exposure", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_a_separate_listener_and_behind_a_token() {
    common::alone!();
    const TOKEN: &str = "scrape-s3cret";

    // Default: /metrics on the main listener, open.
    let open = start(ZERO_MOCK).await;
    assert_chat_answered(&open).await;
    assert_eq!(open.metrics_addr(), open.addr());
    let (status, text) = get(&open.metrics_url(), None).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE requests_total counter\n"), "{text}");

    // A token on the main listener.
    let guarded = start(&[&["--metrics-token", TOKEN], ZERO_MOCK].concat()).await;
    let url = guarded.metrics_url();
    assert_eq!(get(&url, None).await.0, 401);
    assert_eq!(get(&url, Some("wrong")).await.0, 401);
    assert_eq!(get(&url, Some(&format!("{TOKEN}x"))).await.0, 401);
    let (status, text) = get(&url, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE requests_total counter\n"));
    let denied = client().get(&url).send().await.unwrap();
    assert_eq!(denied.headers()["www-authenticate"], "Bearer");
    error_of(denied, 401).await;
    // The API keys are not metrics tokens, nor the other way round.
    assert_eq!(get(&url, Some(KEY)).await.0, 401);
    let response = post(&guarded, "/chat/completions", Some(TOKEN), chat("x", false)).await;
    assert_eq!(response.status(), 401);

    // A separate listener, with a token: nothing of /metrics is left on the main one.
    let separate = start(
        &[
            &["--metrics-listen", "127.0.0.1:0", "--metrics-token", TOKEN][..],
            ZERO_MOCK,
        ]
        .concat(),
    )
    .await;
    assert_ne!(separate.metrics_addr(), separate.addr());
    let on_main = client()
        .get(format!("http://{}/metrics", separate.addr()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    error_of(on_main, 404).await;
    assert_eq!(get(&separate.metrics_url(), None).await.0, 401);
    let (status, text) = get(&separate.metrics_url(), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE requests_total counter\n"));
    // The metrics listener serves nothing else.
    let api_on_metrics = client()
        .post(format!(
            "http://{}/v1/chat/completions",
            separate.metrics_addr()
        ))
        .bearer_auth(KEY)
        .body(chat("x", false))
        .send()
        .await
        .unwrap();
    error_of(api_on_metrics, 404).await;
    assert_chat_answered(&separate).await;

    // An empty token is refused at start.
    let empty = Config::parse_from(["gateway", "--listen", "127.0.0.1:0", "--metrics-token", " "]);
    let refused = Gateway::start(&empty).await.expect_err("an empty token");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);

    for gateway in [open, guarded, separate] {
        gateway.shutdown().await;
    }
}

/// The label settings of a process are those of its first gateway: another with the same
/// settings starts, one with other settings is refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_must_use_the_same_label_settings() {
    common::alone!();
    let first = start(ZERO_MOCK).await;
    let same = start(&[&["--model-label-cap", "500"], ZERO_MOCK].concat()).await;
    let other = Config::parse_from([
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--model-label-cap",
        "7",
    ]);
    let refused = Gateway::start(&other).await.expect_err("other settings");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        refused.to_string().contains("--model-label-cap 7"),
        "{refused}"
    );
    let allow = Config::parse_from([
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--allowed-models",
        "gpt-4o",
    ]);
    assert!(Gateway::start(&allow).await.is_err());
    first.shutdown().await;
    same.shutdown().await;
}
