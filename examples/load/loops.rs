//! The two ways the load generator sends its requests, and one request: the closed loop of
//! `--concurrency` clients, the open loop of `--rate` on a schedule of its own, each counting
//! into a [`Tally`]; apart from the arguments and the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Client, Url};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::report::{Sched, Tally};
use super::Args;

/// What every request of a run shares.
pub struct Target {
    pub client: Client,
    pub url: Url,
    pub auth: HeaderValue,
    pub bodies: Arc<Vec<Bytes>>,
    pub stream: bool,
}

impl Target {
    /// Request number `ticket`, with the next body of `--models` in turn.
    async fn send(&self, ticket: u64) -> Result<u64, String> {
        let body = &self.bodies[(ticket % self.bodies.len() as u64) as usize];
        request(&self.client, &self.url, &self.auth, body, self.stream).await
    }
}

/// The run's timeline: load from `start`, measured from `measure_from` to `end`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub measure_from: Instant,
    pub end: Instant,
}

/// The closed loop: `--concurrency` clients, each sending its next request once the last one
/// has been read to its end, until `window.end`.
pub async fn closed_loop(
    args: &Args,
    target: &Arc<Target>,
    window: Window,
) -> Result<Tally, String> {
    let Window {
        measure_from, end, ..
    } = window;
    let tickets = Arc::new(AtomicU64::new(0));
    let limit = args.requests.unwrap_or(u64::MAX);
    let clients: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let target = Arc::clone(target);
            let tickets = Arc::clone(&tickets);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                // A client stops at `end`, dropping the request it has in flight.
                let work = async {
                    loop {
                        let ticket = tickets.fetch_add(1, Ordering::Relaxed);
                        if ticket >= limit {
                            break;
                        }
                        let sent = Instant::now();
                        let result = target.send(ticket).await;
                        let done = Instant::now();
                        tally.completed_all += 1;
                        let failed = result.is_err();
                        // Completions inside the window count, whenever they were sent.
                        if done >= measure_from {
                            match result {
                                Ok(bytes) => {
                                    tally.latencies.push(nanos(done - sent));
                                    tally.bytes += bytes;
                                }
                                Err(e) => {
                                    tally.errors += 1;
                                    tally.first_error.get_or_insert(e);
                                }
                            }
                        }
                        if failed {
                            // Do not spin on a server that refuses at once.
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                };
                tokio::select! {
                    () = work => {}
                    () = tokio::time::sleep_until(end) => {}
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for client in clients {
        total.merge(
            client
                .await
                .map_err(|e| format!("a client task failed: {e}"))?,
        );
    }
    Ok(total)
}

/// One request of the open loop, as its task reports it.
struct Outcome {
    scheduled: std::time::Instant,
    sent: std::time::Instant,
    done: std::time::Instant,
    result: Result<u64, String>,
}

/// The open loop of `--rate`: request i is due at `window.start + i / rate`, sent then whatever
/// became of the earlier ones (if `--concurrency` requests are still in flight, it waits for
/// one of them, its clock running). Its latency runs from the time it was due to the last byte
/// of its answer, so a server that stalls is charged for every request it held up, not only
/// for the one it stalled (no coordinated omission). The window counts the requests *due* in
/// it, each waited for up to `--drain-secs` after the window's end.
///
/// The schedule is kept by a thread of its own, sleeping with the OS's high-resolution timer
/// and handing each request to the runtime when it is due: tokio's timer ticks in whole
/// milliseconds and would send the requests in bursts, up to 1 ms late. What lateness remains
/// (the OS timer's slack, ~50 µs on Linux, the hand-over, waiting for a free slot) is in the
/// latencies, and also reported on its own (`lag_*`).
pub async fn open_loop(
    args: &Args,
    rate: f64,
    target: Arc<Target>,
    window: Window,
) -> Result<Tally, String> {
    let handle = tokio::runtime::Handle::current();
    let slots = Arc::new(Semaphore::new(args.concurrency));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let limit = args.requests.unwrap_or(u64::MAX);
    let (start, measure_from, end) = (
        window.start.into_std(),
        window.measure_from.into_std(),
        window.end.into_std(),
    );
    let due = move |i: u64| start + Duration::from_secs_f64(i as f64 / rate);
    // The dispatcher returns how many requests were due inside the window, and its own CPU time.
    let dispatcher = std::thread::Builder::new()
        .name("load-schedule".into())
        .spawn(move || {
            let mut in_window = 0u64;
            for ticket in 0..limit {
                let scheduled = due(ticket);
                if scheduled >= end {
                    break;
                }
                let now = std::time::Instant::now();
                if scheduled > now {
                    std::thread::sleep(scheduled - now);
                }
                in_window += u64::from(scheduled >= measure_from);
                let target = Arc::clone(&target);
                let slots = Arc::clone(&slots);
                let tx = tx.clone();
                handle.spawn(async move {
                    let Ok(_slot) = slots.acquire_owned().await else {
                        return;
                    };
                    let sent = std::time::Instant::now();
                    let result = target.send(ticket).await;
                    let done = std::time::Instant::now();
                    let _ = tx.send(Outcome {
                        scheduled,
                        sent,
                        done,
                        result,
                    });
                });
            }
            (in_window, Sched::this_thread().unwrap_or_default())
        })
        .map_err(|e| format!("cannot start the scheduling thread: {e}"))?;

    let mut tally = Tally::default();
    let mut answered = 0u64;
    let drained = tokio::time::sleep_until(window.end + Duration::from_secs_f64(args.drain_secs));
    tokio::pin!(drained);
    // Until every request has reported (the channel closes once the dispatcher and every task
    // have dropped their senders), or the drain time is up.
    loop {
        let outcome = tokio::select! {
            outcome = rx.recv() => outcome,
            () = &mut drained => None,
        };
        let Some(outcome) = outcome else { break };
        tally.completed_all += 1;
        if outcome.scheduled < measure_from {
            continue;
        }
        answered += 1;
        match outcome.result {
            Ok(bytes) => {
                tally
                    .latencies
                    .push(nanos(outcome.done - outcome.scheduled));
                tally.lags.push(nanos(outcome.sent - outcome.scheduled));
                tally.bytes += bytes;
            }
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(e);
            }
        }
    }
    // Done by now: its last request was due before `end`.
    (tally.scheduled, tally.ended_threads) = dispatcher
        .join()
        .map_err(|_| "the scheduling thread panicked".to_owned())?;
    tally.unfinished = tally.scheduled.saturating_sub(answered);
    if tally.unfinished > 0 {
        tally.errors += tally.unfinished;
        tally.first_error.get_or_insert(format!(
            "{} requests not answered {} s after the window",
            tally.unfinished, args.drain_secs
        ));
    }
    // The window is the schedule's, shorter if `--requests` ran out before its end.
    let last = if limit == u64::MAX {
        end
    } else {
        due(limit).min(end)
    };
    tally.window = last.saturating_duration_since(measure_from);
    Ok(tally)
}

/// One request: its status checked and its body read to the end; the body's length.
async fn request(
    client: &Client,
    url: &Url,
    auth: &HeaderValue,
    body: &Bytes,
    stream: bool,
) -> Result<u64, String> {
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let response = client
        .post(url.clone())
        .header(AUTHORIZATION, auth.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, accept)
        .body(body.clone())
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    let mut chunks = response.bytes_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| format!("body broken off: {e}"))?;
        bytes += chunk.len() as u64;
    }
    if bytes == 0 {
        return Err("empty body".into());
    }
    Ok(bytes)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
