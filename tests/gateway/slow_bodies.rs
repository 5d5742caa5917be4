//! Request bodies trickled to hold the gateway's connections, over HTTP/1.1 and HTTP/2: hyper
//! times only the head, and before the body-read timeout 100 connections sending a body at a
//! byte a second held every slot of `--max-connections 100` for good, invisible in
//! `requests_in_flight`.
//!
//! * 100 slow bodies against `--max-connections 100`: each is in flight while it trickles, each
//!   is answered 408 at `--body-read-timeout-ms` (counted `error`, and refused for
//!   `body_timeout`), and a normal client waiting behind them is served once they are cut;
//! * bodies under `--body-min-rate` are cut once the grace is over, well before the timeout.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    chat, client_for, eventually, gauge, global, start, Outcomes, Protocol, FAST_MOCK, KEY,
};
use futures_util::StreamExt;
use perf::gateway::refusals::{self, Reason};
use perf::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const CHAT: &str = "/v1/chat/completions";
/// The body-read timeout of the tests.
const BODY_TIMEOUT: Duration = Duration::from_millis(2000);
/// The most a limit may take past its time on a busy machine.
const SLACK: Duration = Duration::from_secs(5);
/// How often a slow client sends its next byte.
const TRICKLE: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_over_http1_never_keep_a_client_out_longer_than_the_timeout() {
    common::alone!();
    slow_bodies_are_cut_at_the_timeout(Protocol::Http1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_over_http2_never_keep_a_client_out_longer_than_the_timeout() {
    common::alone!();
    slow_bodies_are_cut_at_the_timeout(Protocol::Http2).await;
}

async fn slow_bodies_are_cut_at_the_timeout(protocol: Protocol) {
    const SLOW: usize = 100;
    let ms = BODY_TIMEOUT.as_millis().to_string();
    let args = [
        &["--max-connections", "100", "--body-read-timeout-ms", &ms][..],
        &["--body-min-rate", "0"],
        FAST_MOCK,
    ];
    let gateway = start(&args.concat()).await;
    let before = (
        Outcomes::of(CHAT),
        refusals::counted(CHAT, Reason::BodyTimeout),
    );

    let slow: Vec<_> = (0..SLOW).map(|_| slow_body(&gateway, protocol)).collect();
    // Every slow request is in flight from its head on, though its handler has not run.
    let in_flight = || {
        gauge(global(), "requests_in_flight", &[("endpoint", CHAT)]).expect("the series") as usize
    };
    assert!(
        eventually(|| in_flight() == SLOW).await,
        "{} of {SLOW} slow requests in flight",
        in_flight()
    );

    // A normal client waits behind them (every connection slot is taken over HTTP/1.1) until
    // the timeout cuts them.
    let waited = Instant::now();
    let answer = timeout(BODY_TIMEOUT + SLACK, normal_request(&gateway, protocol))
        .await
        .unwrap_or_else(|_| panic!("a normal client kept out for {:?}", waited.elapsed()));
    assert_eq!(answer, 200);

    for (i, slow) in slow.into_iter().enumerate() {
        let status = timeout(SLACK, slow).await.expect("answered").unwrap();
        assert_eq!(status, Some(408), "slow body {i}");
    }
    let after = Outcomes::of(CHAT).since(before.0);
    assert_eq!((after.error, after.completed), (SLOW as u64, 1));
    assert_eq!(
        refusals::counted(CHAT, Reason::BodyTimeout) - before.1,
        SLOW as u64
    );
    assert_eq!(in_flight(), 0);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_under_the_minimum_rate_are_cut_after_the_grace() {
    common::alone!();
    const SLOW: usize = 10;
    let args = [
        &["--body-read-timeout-ms", "600000", "--body-min-rate", "100"][..],
        FAST_MOCK,
    ];
    let gateway = start(&args.concat()).await;
    let before = refusals::counted(CHAT, Reason::BodyTooSlow);
    let started = Instant::now();
    let slow: Vec<_> = (0..SLOW)
        .map(|i| {
            let protocol = [Protocol::Http1, Protocol::Http2][i % 2];
            slow_body(&gateway, protocol)
        })
        .collect();
    for slow in slow {
        let status = timeout(perf::gateway::body_timeout::MIN_RATE_GRACE + SLACK, slow)
            .await
            .expect("cut after the grace, not at the timeout")
            .unwrap();
        assert_eq!(status, Some(408));
    }
    assert!(started.elapsed() >= perf::gateway::body_timeout::MIN_RATE_GRACE);
    assert_eq!(
        refusals::counted(CHAT, Reason::BodyTooSlow) - before,
        SLOW as u64
    );
    assert_eq!(normal_request(&gateway, Protocol::Http1).await, 200);
    gateway.shutdown().await;
}

/// A chat request whose body comes a byte every [`TRICKLE`], forever, on a connection of its
/// own; resolves to the status it was answered (`None` if the connection closed without one).
fn slow_body(gateway: &Gateway, protocol: Protocol) -> JoinHandle<Option<u16>> {
    let addr = gateway.addr();
    let url = format!("{}/chat/completions", gateway.base_url());
    tokio::spawn(async move {
        match protocol {
            Protocol::Http1 => slow_http1(addr).await,
            Protocol::Http2 => {
                let bytes = futures_util::stream::repeat(())
                    .then(|()| async {
                        tokio::time::sleep(TRICKLE).await;
                        Ok::<_, std::io::Error>(Bytes::from_static(b" "))
                    })
                    .boxed();
                let response = client_for(Protocol::Http2)
                    .post(url)
                    .bearer_auth(KEY)
                    .header("content-type", "application/json")
                    .body(reqwest::Body::wrap_stream(bytes))
                    .send()
                    .await
                    .ok()?;
                assert_eq!(response.version(), reqwest::Version::HTTP_2);
                Some(response.status().as_u16())
            }
        }
    })
}

/// [`slow_body`] over HTTP/1.1, by hand: the head, then a byte at a time until the gateway
/// answers.
async fn slow_http1(addr: std::net::SocketAddr) -> Option<u16> {
    let conn = TcpStream::connect(addr).await.ok()?;
    let (mut read, mut write) = conn.into_split();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: 100000\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await.ok()?;
    let trickle = tokio::spawn(async move {
        while write.write_all(b" ").await.is_ok() {
            tokio::time::sleep(TRICKLE).await;
        }
    });
    let mut answer = Vec::new();
    let _ = read.read_to_end(&mut answer).await;
    trickle.abort();
    let status = answer.get(9..12)?;
    std::str::from_utf8(status).ok()?.parse().ok()
}

/// A whole chat completion over `protocol`: its status.
async fn normal_request(gateway: &Gateway, protocol: Protocol) -> u16 {
    let response = client_for(protocol)
        .post(format!("{}/chat/completions", gateway.base_url()))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(chat("after-slow-bodies", false))
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    response.bytes().await.expect("the whole answer");
    status
}
