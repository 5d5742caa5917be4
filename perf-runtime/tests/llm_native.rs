//! Time to first token, chunk gaps, tokens, whole-request duration, gateway overhead and
//! `Server-Timing`, through the macros as a gateway writes them.

use std::time::Duration;

use futures_util::stream::{self, Stream, StreamExt};
use perf_runtime::{
    current, perf_backend, perf_endpoint, perf_stage, perf_stream, Chunk, Metrics, Usage,
};
use perf_test_kit::*;
use prometheus::Registry;

const MS: Duration = Duration::from_millis(1);

fn global() -> &'static Registry {
    Metrics::init();
    prometheus::default_registry()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

/// What a provider streams: a role-only delta, a keep-alive, content, and the usage at the end.
#[derive(Clone, Debug, PartialEq)]
enum Event {
    Role,
    KeepAlive,
    Token(&'static str),
    Usage(u64, u64),
}

/// How the gateway tells the events apart: what `#[perf_stream(chunks = ..)]` is given.
fn event_chunk(event: &Event) -> Chunk {
    match event {
        Event::Token(_) => Chunk::CONTENT,
        Event::Usage(input, output) => Chunk::usage(Usage {
            input: *input,
            output: *output,
            ..Usage::default()
        }),
        Event::Role | Event::KeepAlive => Chunk::OTHER,
    }
}

/// The provider: headers after 20 ms, then a role delta and a keep-alive at once, the first token
/// 30 ms later, then 4 more 10 ms apart, then the usage.
fn provider_events() -> impl Stream<Item = Event> {
    let events = [
        (0, Event::Role),
        (0, Event::KeepAlive),
        (30, Event::Token("Hel")),
        (10, Event::Token("lo")),
        (10, Event::Token(", ")),
        (10, Event::Token("wor")),
        (10, Event::Token("ld")),
        (0, Event::Usage(12, 5)),
    ];
    stream::iter(events).then(|(ms, event)| async move {
        tokio::time::sleep(ms * MS).await;
        event
    })
}

#[perf_backend(provider = "llm", model = "streamed")]
async fn call_provider() -> Result<(), String> {
    tokio::time::sleep(20 * MS).await;
    Ok(())
}

#[perf_endpoint("/llm/stream")]
async fn streamed() -> Result<impl Stream<Item = Event>, String> {
    #[perf_stage(request_parsing)]
    let () = tokio::time::sleep(MS).await;
    call_provider().await?;
    #[perf_stream(chunks = event_chunk)]
    let events = provider_events();
    Ok(events)
}

#[test]
fn a_streamed_answer_records_ttft_gaps_and_tokens() {
    const EP: &str = "/llm/stream";
    let events = block_on(async { streamed().await.unwrap().collect::<Vec<_>>().await });
    assert_eq!(events.len(), 8);
    let labels = [("provider", "llm"), ("model", "streamed"), ("endpoint", EP)];

    let (ttfb_count, ttfb) = histogram_total(global(), "backend_ttfb_seconds", &labels);
    let (ttft_count, ttft) = histogram_total(global(), "backend_ttft_seconds", &labels);
    assert_eq!((ttfb_count, ttft_count), (1, 1));
    // The first token came 30 ms after the headers: the role delta and keep-alive do not count.
    assert!(ttft >= ttfb + 0.03, "TTFT {ttft} s, TTFB {ttfb} s");

    let (gaps, gap_sum) = histogram_total(global(), "backend_chunk_gap_seconds", &labels);
    assert_eq!(gaps, 4, "five tokens, four gaps");
    assert!(gap_sum >= 0.04, "{gap_sum}");

    let tokens = |kind: &str| {
        perf_runtime::metrics::snapshot::counter(
            global(),
            "backend_tokens_total",
            &[("endpoint", EP), ("type", kind)],
        )
    };
    assert_eq!(tokens("input"), Some(12));
    assert_eq!(tokens("output"), Some(5));
    assert_eq!(
        tokens("cached_input"),
        None,
        "no series for a type never reported"
    );

    let whole = histogram_total(
        global(),
        "request_duration_seconds",
        &[("endpoint", EP), ("outcome", "completed")],
    );
    assert_eq!(whole.0, 1);
    assert!(whole.1 >= 0.07, "{}", whole.1);
    // The gateway's own part: the 1 ms stage and bookkeeping, outside the backend windows (the
    // call to its first byte, then the stream, one after the other).
    let (_, overhead) = histogram_total(global(), "gateway_overhead_seconds", &[("endpoint", EP)]);
    let (_, streaming) =
        histogram_total(global(), "streaming_duration_seconds", &[("endpoint", EP)]);
    assert_overhead_outside(EP, overhead, whole.1 - streaming);

    // The same request in the families of the GenAI conventions' names (OTLP): the call from its
    // start to its stream's end, its tokens once each, the first token as the client got it.
    let (calls, call) = histogram_total(global(), "backend_call_duration_seconds", &labels);
    assert_eq!(calls, 1);
    assert!(call >= ttft + gap_sum && call <= whole.1, "{call} s");
    let call_tokens = |kind: &str| {
        let labels = [("endpoint", EP), ("type", kind)];
        histogram_total(global(), "backend_call_tokens", &labels)
    };
    assert_eq!(call_tokens("input"), (1, 12.0));
    assert_eq!(call_tokens("output"), (1, 5.0));
    assert_eq!(call_tokens("reasoning").0, 0);
    let (firsts, first) = histogram_total(global(), "request_ttft_seconds", &[("endpoint", EP)]);
    assert_eq!(firsts, 1);
    // From the request's start: its 1 ms stage and the call's own time to first token.
    assert!(first >= ttft + 0.001 && first <= whole.1, "{first} s");
    let per_token = histogram_total(
        global(),
        "request_time_per_output_token_seconds",
        &[("endpoint", EP)],
    );
    // The rest of the request over the 4 tokens after the first.
    assert_eq!(per_token.0, 1);
    let expected = (whole.1 - first) / 4.0;
    assert!(
        (per_token.1 - expected).abs() < 1e-6,
        "{per_token:?}, {expected}"
    );
}

/// Asserts that the `overhead` of the one request of `endpoint` holds its 1 ms stage and none of
/// its backend calls (`backend_fetch`): at most `outside_stream` (its duration less its
/// streaming) less the calls.
#[track_caller]
fn assert_overhead_outside(endpoint: &str, overhead: f64, outside_stream: f64) {
    let calls = stage_sum(global(), endpoint, "backend_fetch");
    assert!(
        overhead >= 0.001,
        "overhead {overhead} s, without its 1 ms stage"
    );
    assert!(
        overhead <= outside_stream - calls + ROUNDING_MS / 1e3,
        "overhead {overhead} s holds backend time: {outside_stream} s outside the stream, \
         {calls} s of it in provider calls"
    );
}

#[perf_backend(provider = "llm", model = "retried")]
async fn attempt(fails: bool) -> Result<u32, String> {
    tokio::time::sleep(100 * MS).await;
    if fails {
        Err("503 from the provider".into())
    } else {
        Ok(200)
    }
}

#[perf_endpoint("/llm/retry")]
async fn retried() -> Result<String, String> {
    #[perf_stage(request_parsing)]
    let () = tokio::time::sleep(MS).await;
    let status = match attempt(true).await {
        Ok(status) => status,
        Err(_) => attempt(false).await?,
    };
    current::usage(Usage {
        input: 7,
        output: 3,
        cached_input: 4,
        reasoning: 1,
        cache_write: 0,
    });
    let timing = current::server_timing().expect("inside a request");
    Ok(format!("{status} {timing}"))
}

#[test]
fn overhead_leaves_out_every_backend_window_and_server_timing_lists_the_stages() {
    const EP: &str = "/llm/retry";
    let answer = block_on(retried()).unwrap();
    // Both 100 ms windows are left out: what remains is the 1 ms stage and bookkeeping.
    let (count, overhead) =
        histogram_total(global(), "gateway_overhead_seconds", &[("endpoint", EP)]);
    assert_eq!(count, 1);
    assert_lasted(
        "both attempts",
        1e3 * stage_sum(global(), EP, "backend_fetch"),
        200.0,
    );
    let (_, whole) = histogram_total(
        global(),
        "request_duration_seconds",
        &[("endpoint", EP), ("outcome", "completed")],
    );
    assert_overhead_outside(EP, overhead, whole);
    for kind in ["input", "output", "cached_input", "reasoning"] {
        assert!(
            perf_runtime::metrics::snapshot::counter(
                global(),
                "backend_tokens_total",
                &[("endpoint", EP), ("model", "retried"), ("type", kind)],
            )
            .is_some(),
            "{kind}"
        );
    }
    let timing = answer.strip_prefix("200 ").unwrap();
    let entries: Vec<&str> = timing.split(", ").collect();
    assert!(entries[0].starts_with("request_parsing;dur="), "{timing}");
    let backend = entries
        .iter()
        .find_map(|e| e.strip_prefix("backend;dur="))
        .expect("a backend entry");
    let backend_ms: f64 = backend.parse().unwrap();
    assert!(backend_ms >= 200.0, "both attempts: {backend_ms} ms");
    assert!(!timing.contains("backend_fetch"), "{timing}");
}

#[test]
fn a_rejected_request_and_a_long_one_are_apart_in_request_duration() {
    #[perf_endpoint("/llm/reject")]
    async fn reject(key: &str) -> Result<(), String> {
        #[perf_stage(auth_validation)]
        let checked = if key == "ok" {
            Ok(())
        } else {
            Err("401".to_string())
        };
        checked?;
        Ok(())
    }
    block_on(async {
        assert!(reject("bad").await.is_err());
        assert!(reject("ok").await.is_ok());
    });
    for outcome in ["error", "completed"] {
        let (count, _) = histogram_total(
            global(),
            "request_duration_seconds",
            &[("endpoint", "/llm/reject"), ("outcome", outcome)],
        );
        assert_eq!(count, 1, "{outcome}");
    }
}

/// A stream keeps up to 15 gaps before it records them together: a long answer's gaps show while
/// it is read, and none is lost at its end or when the client leaves mid-way.
#[test]
fn a_long_answers_gaps_are_recorded_in_batches_and_none_is_lost() {
    let gaps = |model: &str| {
        let labels = [
            ("provider", "llm"),
            ("model", model),
            ("endpoint", "/llm/batched"),
        ];
        histogram_total(global(), "backend_chunk_gap_seconds", &labels).0
    };
    let answer = |model: &str| {
        let tracker = perf_runtime::PerformanceTracker::new("/llm/batched");
        tracker.backend_request("llm", model).first_byte();
        tracker.stream_chunks(stream::iter(["token"; 40]), |_| Chunk::CONTENT)
    };
    block_on(async {
        let mut read = Box::pin(answer("read-to-the-end"));
        for _ in 0..20 {
            read.next().await;
        }
        // 19 gaps so far: one batch of 16 recorded, 3 kept.
        assert_eq!(gaps("read-to-the-end"), 16);
        while read.next().await.is_some() {}
        assert_eq!(
            gaps("read-to-the-end"),
            39,
            "40 tokens, 39 gaps, at the end"
        );

        let mut left = Box::pin(answer("left-mid-way"));
        for _ in 0..25 {
            left.next().await;
        }
        drop(left);
        assert_eq!(gaps("left-mid-way"), 24, "25 tokens read, 24 gaps");
    });
}
