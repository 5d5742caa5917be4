//! Client connections that hold the gateway without sending a request (slowloris): without a
//! header-read timeout, ~1,010 connections that never send a byte took every file descriptor of
//! a process at the usual limit (1,024) and locked every other client out.
//!
//! * 1,100 idle connections against a gateway capped at 1,000 connections with a 500 ms
//!   header-read timeout: a normal client is served once the timeout has closed the idle ones,
//!   and each idle one is closed;
//! * a request head sent a line at a time is cut at the timeout, and a kept-alive connection
//!   left idle after its answer is closed at the timeout too;
//! * past `--max-connections` a new connection waits until one closes (without the timeout, an
//!   idle connection keeps its slot for good);
//! * the same timeout closes an HTTP/2 connection with no stream open, and one that stops in the
//!   middle of the HTTP/2 preface (before the server can tell which protocol it speaks).
//!
//! Like the gateway's `main`, the test process first raises its open-file soft limit to its hard
//! limit: it holds both ends of every connection.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{chat, client, start, FAST_MOCK, KEY};
use perf::gateway::server::raise_open_file_limit;
use perf::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Idle connections of the slowloris test, and the gateway's cap on connections.
const IDLE: usize = 1100;
const CAP: &str = "1000";

/// The header-read timeout of the tests, in milliseconds.
const HEADER_TIMEOUT_MS: u64 = 500;
const HEADER_TIMEOUT: Duration = Duration::from_millis(HEADER_TIMEOUT_MS);
/// The most a timeout may take past its time on a busy machine.
const SLACK: Duration = Duration::from_secs(5);

/// A gateway with the tests' header-read timeout and `extra` flags.
async fn gateway(extra: &[&str]) -> Gateway {
    let ms = HEADER_TIMEOUT_MS.to_string();
    start(
        &[
            &["--header-read-timeout-ms", ms.as_str()][..],
            extra,
            FAST_MOCK,
        ]
        .concat(),
    )
    .await
}

/// One chat completion through `gateway`, given at most `within`: its status, or `None` if it
/// was not answered in time.
async fn one_request(gateway: &Gateway, within: Duration) -> Option<u16> {
    let request = client()
        .post(format!("{}/chat/completions", gateway.base_url()))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(chat("after-idle-connections", false))
        .send();
    let response = timeout(within, request).await.ok()?.ok()?;
    let status = response.status().as_u16();
    timeout(within, response.bytes()).await.ok()?.ok()?;
    Some(status)
}

/// Waits (at most [`SLACK`] past the header timeout) for the gateway to close `conn`: reads
/// until the end, whatever comes (hyper may answer 408 first).
async fn closed_by_the_gateway(conn: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    timeout(HEADER_TIMEOUT + SLACK, conn.read_to_end(&mut rest))
        .await
        .is_ok()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr)
        .await
        .expect("a loopback connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_lock_clients_out() {
    common::alone!(heavy);
    // Both ends of every connection are in this process, and a few more for the rest.
    let needed = 2 * IDLE as u64 + 256;
    let limit = raise_open_file_limit().expect("the open-file limit can be read");
    if limit < needed {
        eprintln!(
            "SKIPPED idle_connections_do_not_lock_clients_out: {limit} open files allowed \
             (hard limit), {needed} needed"
        );
        return;
    }
    let gateway = gateway(&["--max-connections", CAP]).await;
    let started = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(connect(gateway.addr()).await);
    }

    // The client's connection waits behind the idle ones until the timeout frees their slots.
    let status = one_request(&gateway, HEADER_TIMEOUT + SLACK).await;
    let served = started.elapsed();
    assert_eq!(status, Some(200), "not served after {served:?}");
    assert!(served < HEADER_TIMEOUT + SLACK, "served after {served:?}");

    // Every idle connection is closed by the gateway (those past the cap once accepted).
    for (i, conn) in idle.iter_mut().enumerate() {
        assert!(
            closed_by_the_gateway(conn).await,
            "idle connection {i} still open after {:?}",
            started.elapsed()
        );
    }
    assert_eq!(one_request(&gateway, SLACK).await, Some(200));
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_request_head_and_an_idle_kept_alive_connection_are_closed() {
    common::alone!();
    let gateway = gateway(&[]).await;

    // A request head sent one header line every 100 ms: the connection is cut at the header
    // timeout, counted from its start, though bytes keep coming. Timed from before connecting:
    // the gateway's timer starts after that.
    let started = Instant::now();
    let mut slow = connect(gateway.addr()).await;
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n")
        .await
        .unwrap();
    let mut cut_after = None;
    for i in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let line = format!("x-slow-{i}: still coming\r\n");
        if slow.write_all(line.as_bytes()).await.is_err() {
            cut_after = Some(started.elapsed());
            break;
        }
    }
    let cut_after = match cut_after {
        Some(after) => after,
        // The writes may all land in the socket buffer: the read side tells.
        None => {
            assert!(closed_by_the_gateway(&mut slow).await, "never closed");
            started.elapsed()
        }
    };
    assert!(
        cut_after >= HEADER_TIMEOUT && cut_after < HEADER_TIMEOUT + SLACK,
        "cut after {cut_after:?}"
    );

    // A kept-alive connection: answered, then closed once idle for the header timeout. Timed
    // from before connecting: the gateway's timers (the head's, then the idle one, re-armed
    // once it has answered) start after that.
    let opened = Instant::now();
    let mut kept = connect(gateway.addr()).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"ok") {
        let n = timeout(SLACK, kept.read(&mut buf))
            .await
            .expect("the answer comes")
            .unwrap();
        assert!(n > 0, "closed before the answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(closed_by_the_gateway(&mut kept).await, "kept open");
    let closed_after = opened.elapsed();
    assert!(
        closed_after >= HEADER_TIMEOUT && closed_after < HEADER_TIMEOUT + SLACK,
        "closed {closed_after:?} after connecting"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    common::alone!();
    // No header timeout: idle connections keep their slots until they close.
    let gateway = start(
        &[
            &["--header-read-timeout-ms", "0", "--max-connections", "2"],
            FAST_MOCK,
        ]
        .concat(),
    )
    .await;
    let first = connect(gateway.addr()).await;
    let _second = connect(gateway.addr()).await;
    assert_eq!(
        one_request(&gateway, Duration::from_millis(500)).await,
        None,
        "a third connection is not served while two are open"
    );
    drop(first);
    assert_eq!(
        one_request(&gateway, SLACK).await,
        Some(200),
        "served once a slot is free"
    );
    gateway.shutdown().await;
}

/// HTTP/2's connection preface, then an empty SETTINGS frame: what a prior-knowledge client
/// sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_without_a_stream_are_closed_at_the_timeout() {
    common::alone!();
    let gateway = gateway(&[]).await;
    for (sent, what) in [
        (H2_PREFACE, "an HTTP/2 connection with no stream"),
        (&H2_PREFACE[..3], "a preface cut short"),
    ] {
        let opened = Instant::now();
        let mut conn = connect(gateway.addr()).await;
        conn.write_all(sent).await.unwrap();
        assert!(closed_by_the_gateway(&mut conn).await, "{what}: kept open");
        let closed_after = opened.elapsed();
        assert!(
            closed_after >= HEADER_TIMEOUT && closed_after < HEADER_TIMEOUT + SLACK,
            "{what}: closed {closed_after:?} after connecting"
        );
    }
    // A prior-knowledge client is served over HTTP/2 on the same listener.
    let h2 = common::client_for(common::Protocol::Http2);
    let answer = h2
        .get(format!("http://{}/healthz", gateway.addr()))
        .send()
        .await
        .expect("answered over HTTP/2");
    assert_eq!(answer.version(), reqwest::Version::HTTP_2);
    assert_eq!(answer.text().await.unwrap(), "ok");
    gateway.shutdown().await;
}
