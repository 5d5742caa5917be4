//! `--allowed-models`: only the listed names become `model` labels; every other model, however
//! close to a listed one, is recorded as `other`, exactly.
//!
//! The label settings belong to the process, so the test runs alone (`common::alone!`).

use crate::common;

use std::collections::BTreeMap;

use common::{models_in, scrape, send_models, start_steady, Outcomes};

const CHAT: &str = "/v1/chat/completions";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_models_become_labels() {
    common::alone!();
    let gateway = start_steady(
        (0, 1, 0),
        &["--allowed-models", "gpt-4o, claude-3-5-sonnet"],
    )
    .await;
    let mut models: Vec<String> = (0..300).map(|i| format!("unlisted-{i}")).collect();
    for near in [
        "gpt-4o-mini",
        "GPT-4o",
        "gpt-4o ",
        " claude-3-5-sonnet",
        "other",
    ] {
        models.push(near.to_owned());
    }
    models.extend(std::iter::repeat_n("gpt-4o".to_owned(), 5));
    models.extend(std::iter::repeat_n("claude-3-5-sonnet".to_owned(), 3));
    send_models(&gateway, &models, 8).await;
    let sent = models.len() as u64;
    assert!(common::eventually(|| Outcomes::of(CHAT).completed == sent).await);

    let (_, samples) = scrape(&gateway, "only_allowed_models_become_labels").await;
    let expected: BTreeMap<String, u64> = [
        ("gpt-4o".to_owned(), 5),
        ("claude-3-5-sonnet".to_owned(), 3),
        ("other".to_owned(), sent - 8),
    ]
    .into_iter()
    .collect();
    for family in ["backend_ttfb_seconds", "streaming_duration_seconds"] {
        assert_eq!(models_in(&samples, family, CHAT), expected, "{family}");
    }
    gateway.shutdown().await;
}
