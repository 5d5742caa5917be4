//! The example gateway under load, with exact counts: 16-way concurrent load of 400 requests
//! gives 400 observations in each family; a stress test with random client cancellation
//! (seeded: `PERF_STRESS_SEED`) proves that every request that reached its handler is counted
//! exactly once.
//!
//! The tests count requests of the same endpoints in the global registry, so each runs alone
//! (`common::alone!`) and asserts on the difference of the counts before and after.

use crate::common;

use std::time::Duration;

use common::{
    backend_counts, chat, client_for, diff, eventually, frontend_count, global, post, post_via,
    responses, stage_counts, start, start_steady, Outcomes, Protocol, KEY, ZERO_MOCK,
};
use futures_util::{stream, StreamExt};
use perf::Gateway;

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_clients_400_requests_400_observations() {
    common::alone!(heavy);
    sixteen_concurrent_clients(Protocol::Http1, "load-16x400").await;
}

/// The same over HTTP/2: 16 requests at a time multiplexed on one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_http2_streams_400_requests_400_observations() {
    common::alone!(heavy);
    sixteen_concurrent_clients(Protocol::Http2, "load-16x400-h2").await;
}

async fn sixteen_concurrent_clients(protocol: Protocol, model: &str) {
    let gateway = start(ZERO_MOCK).await;
    const REQUESTS: u64 = 400;
    let before = (
        Outcomes::of(CHAT),
        stage_counts(CHAT),
        frontend_count(global(), CHAT),
    );

    let (gateway_ref, client) = (&gateway, &client_for(protocol));
    stream::iter(0..REQUESTS)
        .map(|i| async move {
            let response = post_via(
                client,
                gateway_ref,
                "/chat/completions",
                Some(KEY),
                chat(model, i % 2 == 0),
            )
            .await;
            assert_eq!(response.status(), 200);
            assert_eq!(response.version(), protocol.version());
            response.bytes().await.expect("the whole answer");
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;

    assert!(eventually(|| Outcomes::of(CHAT).since(before.0).total() == REQUESTS).await);
    assert_eq!(
        Outcomes::of(CHAT).since(before.0),
        Outcomes::new(REQUESTS, 0, 0)
    );
    assert_eq!(backend_counts(CHAT, model), (REQUESTS, REQUESTS));
    assert_eq!(diff(stage_counts(CHAT), before.1), [REQUESTS; 5]);
    assert_eq!(frontend_count(global(), CHAT) - before.2, REQUESTS);
    gateway.shutdown().await;
}

/// xorshift64: a few lines of seeded randomness, the same on every machine.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the clients of the stress test saw.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Requests sent.
    sent: u64,
    /// Answers read to their end.
    read_whole: u64,
    /// Answers given up on after their status.
    dropped_after_status: u64,
    /// Requests given up on at a random time (maybe before the gateway even read them).
    dropped_at_random: u64,
}

impl std::ops::AddAssign for Seen {
    fn add_assign(&mut self, other: Seen) {
        self.sent += other.sent;
        self.read_whole += other.read_whole;
        self.dropped_after_status += other.dropped_after_status;
        self.dropped_at_random += other.dropped_at_random;
    }
}

const STRESS_MODELS: [&str; 3] = ["stress-a", "stress-b", "stress-c"];

/// One client: `requests` requests one after the other. Chat requests are read whole or given
/// up on after their status (at once, or after a few chunks): every one reached its handler.
/// Responses requests are given up on at a random time, from before the gateway reads them to
/// after their end.
async fn stress_client(gateway: &Gateway, seed: u64, requests: u64) -> (Seen, Seen) {
    let mut rng = XorShift::new(seed);
    let (mut chat_seen, mut responses_seen) = (Seen::default(), Seen::default());
    for _ in 0..requests {
        let model = STRESS_MODELS[rng.below(3) as usize];
        let stream = rng.below(2) == 0;
        if rng.below(2) == 0 {
            chat_seen.sent += 1;
            let mut response =
                post(gateway, "/chat/completions", Some(KEY), chat(model, stream)).await;
            assert_eq!(response.status(), 200);
            match rng.below(3) {
                0 => {
                    response.bytes().await.expect("the whole answer");
                    chat_seen.read_whole += 1;
                }
                1 => {
                    drop(response);
                    chat_seen.dropped_after_status += 1;
                }
                _ => {
                    let mut whole = false;
                    for _ in 0..=rng.below(4) {
                        if response.chunk().await.expect("a chunk").is_none() {
                            whole = true;
                            break;
                        }
                    }
                    drop(response);
                    if whole {
                        chat_seen.read_whole += 1;
                    } else {
                        chat_seen.dropped_after_status += 1;
                    }
                }
            }
        } else {
            responses_seen.sent += 1;
            let limit = Duration::from_micros(rng.below(40_000));
            let exchange = async {
                let response =
                    post(gateway, "/responses", Some(KEY), responses(model, stream)).await;
                assert_eq!(response.status(), 200);
                response.bytes().await.expect("the whole answer");
            };
            match tokio::time::timeout(limit, exchange).await {
                Ok(()) => responses_seen.read_whole += 1,
                Err(_) => responses_seen.dropped_at_random += 1,
            }
        }
    }
    (chat_seen, responses_seen)
}

fn backend_totals(endpoint: &str) -> (u64, u64) {
    STRESS_MODELS
        .iter()
        .map(|model| backend_counts(endpoint, model))
        .fold((0, 0), |(t, s), (t1, s1)| (t + t1, s + s1))
}

/// The counts of `endpoint` that the stress test checks, as deltas from `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recorded {
    outcomes: Outcomes,
    stages: [u64; 5],
    frontend: u64,
    ttfb: u64,
    streaming: u64,
}

impl Recorded {
    fn now(endpoint: &str) -> Recorded {
        let (ttfb, streaming) = backend_totals(endpoint);
        Recorded {
            outcomes: Outcomes::of(endpoint),
            stages: stage_counts(endpoint),
            frontend: frontend_count(global(), endpoint),
            ttfb,
            streaming,
        }
    }

    fn since(self, before: Recorded) -> Recorded {
        Recorded {
            outcomes: self.outcomes.since(before.outcomes),
            stages: diff(self.stages, before.stages),
            frontend: self.frontend - before.frontend,
            ttfb: self.ttfb - before.ttfb,
            streaming: self.streaming - before.streaming,
        }
    }

    /// Every request that reached its handler has ended (parsing is its first stage, run in
    /// the same poll that starts it).
    fn settled(self) -> bool {
        self.outcomes.total() == self.stages[0] && self.frontend == self.streaming
    }
}

/// Waits (bounded) until the counts of `endpoint` have settled and stayed so for a while.
async fn settled(endpoint: &str, before: Recorded) -> Recorded {
    let mut stable = 0;
    let mut last = Recorded::now(endpoint).since(before);
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Recorded::now(endpoint).since(before);
        stable = if now == last && now.settled() {
            stable + 1
        } else {
            0
        };
        last = now;
        if stable >= 10 {
            break;
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_with_random_cancellation_counts_every_request_exactly_once() {
    common::alone!(heavy);
    const CLIENTS: u64 = 8;
    const REQUESTS_PER_CLIENT: u64 = 50;
    let seed = std::env::var("PERF_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_2024_u64);
    let gateway = start_steady((5, 6, 3), &[]).await;
    let before = (Recorded::now(CHAT), Recorded::now(RESPONSES));

    let gateway_ref = &gateway;
    let clients = (0..CLIENTS).map(|client| {
        let seed = seed ^ (client + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        stress_client(gateway_ref, seed, REQUESTS_PER_CLIENT)
    });
    let (mut chat_seen, mut responses_seen) = (Seen::default(), Seen::default());
    for (c, r) in futures_util::future::join_all(clients).await {
        chat_seen += c;
        responses_seen += r;
    }
    assert_eq!(
        chat_seen.sent + responses_seen.sent,
        CLIENTS * REQUESTS_PER_CLIENT
    );

    let chat = settled(CHAT, before.0).await;
    let resp = settled(RESPONSES, before.1).await;
    let context = format!(
        "seed {seed} (PERF_STRESS_SEED); chat {chat_seen:?} {chat:?}; \
         responses {responses_seen:?} {resp:?}"
    );
    eprintln!("{context}");

    // Chat: every request reached its handler and got its status, so each was counted exactly
    // once, as completed or cancelled; each had a backend answer and a stream.
    let n = chat_seen.sent;
    assert_eq!(chat.outcomes.total(), n, "{context}");
    assert_eq!(chat.outcomes.error, 0, "{context}");
    assert!(chat.outcomes.completed >= chat_seen.read_whole, "{context}");
    assert!(
        chat.outcomes.cancelled <= chat_seen.dropped_after_status,
        "{context}"
    );
    assert_eq!(chat.stages, [n; 5], "{context}");
    assert_eq!(
        (chat.ttfb, chat.streaming, chat.frontend),
        (n, n, n),
        "{context}"
    );

    // Responses: a request given up on before the gateway read it never reached a handler;
    // every one that did (its parsing stage ran) is counted exactly once. The front-end stages
    // and the backend call run in one poll with the parsing; the streaming is recorded for
    // every request whose backend answered, and ends it.
    let reached = resp.stages[0];
    assert!(reached <= responses_seen.sent, "{context}");
    assert!(reached >= responses_seen.read_whole, "{context}");
    assert_eq!(resp.outcomes.total(), reached, "{context}");
    assert_eq!(resp.outcomes.error, 0, "{context}");
    assert!(
        resp.outcomes.completed >= responses_seen.read_whole,
        "{context}"
    );
    assert_eq!(resp.stages[1..4], [reached; 3], "{context}");
    assert_eq!(resp.ttfb, resp.streaming, "{context}");
    assert_eq!(resp.stages[4], resp.streaming, "{context}");
    assert_eq!(resp.frontend, resp.streaming, "{context}");
    assert!(resp.outcomes.completed <= resp.streaming, "{context}");

    // Both: requests sent = counted + given up on before reaching a handler.
    assert_eq!(
        chat.outcomes.total() + resp.outcomes.total() + (responses_seen.sent - reached),
        CLIENTS * REQUESTS_PER_CLIENT,
        "{context}"
    );
    gateway.shutdown().await;
}
