//! Scrapes of `/metrics` share renderings: a rendering costs CPU in proportion to the series
//! (~5 ms for 1,000 models), and scrapers looping on `/metrics` took most of the gateway's API
//! throughput when each scrape rendered on its own. Now concurrent scrapes share one rendering
//! (one at a time per format, begun after they arrived, so that by default a scrape shows every
//! request that ended before it), and with `--metrics-max-age-ms` a finished one serves for that
//! long; each is counted in `operation_duration_seconds{operation="metrics_render"}`. A scraper
//! that accepts gzip gets the rendering compressed once. And `/healthz` answers on the metrics
//! listener too, for a probe that only reaches that one.

use crate::common;

use std::time::Duration;

use common::{chat, client, count, get, global, gunzip, post, start, FAST_MOCK, KEY};
use futures_util::future::join_all;
use perf::gateway::server::RENDER_OPERATION;
use perf::Gateway;

fn renders() -> u64 {
    count(
        global(),
        "operation_duration_seconds",
        &[("operation", RENDER_OPERATION)],
    )
}

/// `/metrics` of `gateway`: its body, after checking the status.
async fn scrape(gateway: &Gateway) -> String {
    let (status, text) = get(&gateway.metrics_url(), None).await;
    assert_eq!(status, 200);
    text
}

async fn one_chat(gateway: &Gateway, model: &str) {
    let response = post(gateway, "/chat/completions", Some(KEY), chat(model, false)).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("the whole answer");
}

/// The renderings of every gateway of a process are counted in the same series: the tests
/// that scrape run alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_share_renderings() {
    common::alone!();
    // Renderings kept for a minute: 32 scrapes at once, then more, share one.
    let cached = start(&[&["--metrics-max-age-ms", "60000"][..], FAST_MOCK].concat()).await;
    one_chat(&cached, "before-the-scrapes").await;
    let before = renders();
    let texts = join_all((0..32).map(|_| scrape(&cached))).await;
    assert_eq!(
        renders(),
        before + 1,
        "32 concurrent scrapes, one rendering"
    );
    assert!(texts.iter().all(|t| *t == texts[0]), "one text for all");
    assert!(texts[0].contains("model=\"before-the-scrapes\""));
    // A request in between does not show until the rendering is a minute old.
    one_chat(&cached, "after-the-scrapes").await;
    assert_eq!(scrape(&cached).await, texts[0]);
    assert_eq!(renders(), before + 1);

    // Renderings kept for 100 ms: a scrape after that renders again, with the new request.
    let fresh = start(&[&["--metrics-max-age-ms", "100"][..], FAST_MOCK].concat()).await;
    let before = renders();
    let first = scrape(&fresh).await;
    assert!(!first.contains("model=\"after-a-while\""));
    one_chat(&fresh, "after-a-while").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = scrape(&fresh).await;
    assert!(
        second.contains("model=\"after-a-while\""),
        "a fresh rendering"
    );
    assert_eq!(renders(), before + 2);

    // Each gateway has its own: the first one's minute-old rendering is not the second's.
    assert_ne!(scrape(&cached).await, second);
    cached.shutdown().await;
    fresh.shutdown().await;
}

/// By default a scrape shows every request that ended before it was sent: no rendering older
/// than the scrape is served, even right after another scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_scrape_shows_the_request_just_made() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let completed = |text: &str| {
        let line = "requests_total{endpoint=\"/v1/chat/completions\",outcome=\"completed\"} ";
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .map_or(0, |v| v.parse::<u64>().expect("a count"))
    };
    let mut before = completed(&scrape(&gateway).await);
    for i in 0..5 {
        let model = format!("fresh-{i}");
        one_chat(&gateway, &model).await;
        let renders_before = renders();
        // Scrapes at once, the first one right after the answer: each one shows the request.
        let texts = join_all((0..8).map(|_| scrape(&gateway))).await;
        for text in &texts {
            assert!(text.contains(&format!("model=\"{model}\"")), "{model}");
            assert_eq!(completed(text), before + 1, "{model}");
        }
        let made = renders() - renders_before;
        assert!((1..=8).contains(&made), "{made} renderings for 8 scrapes");
        before += 1;
    }
    gateway.shutdown().await;
}

/// A scraper that accepts gzip (Prometheus does) gets the same rendering gzipped, compressed
/// once for every such scrape; one that does not gets the text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_for_scrapers_that_accept_it() {
    common::alone!();
    let gateway = start(&[&["--metrics-max-age-ms", "60000"][..], FAST_MOCK].concat()).await;
    one_chat(&gateway, "gzipped").await;
    let text = scrape(&gateway).await;
    for _ in 0..2 {
        let response = client()
            .get(gateway.metrics_url())
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-encoding"], "gzip");
        assert_eq!(response.headers()["vary"], "accept, accept-encoding");
        let gzip = response.bytes().await.expect("a body");
        assert!(
            gzip.len() * 4 < text.len(),
            "{} of {} bytes",
            gzip.len(),
            text.len()
        );
        let back = String::from_utf8(gunzip(&gzip)).expect("UTF-8 text");
        assert_eq!(back, text, "the same rendering");
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_on_the_metrics_listener_too() {
    common::alone!();
    let gateway = start(&[&["--metrics-listen", "127.0.0.1:0"][..], FAST_MOCK].concat()).await;
    assert_ne!(gateway.metrics_addr(), gateway.addr());
    for addr in [gateway.metrics_addr(), gateway.addr()] {
        let (status, body) = get(&format!("http://{addr}/healthz"), None).await;
        assert_eq!((status, body.as_str()), (200, "ok"), "{addr}");
    }
    let text = scrape(&gateway).await;
    assert!(text.contains("# TYPE requests_total counter\n"));
    gateway.shutdown().await;
}
