//! perf against its peers: one axum 0.8 handler (a front-end stage, a backend call, a 5-chunk
//! streamed answer) in one process, in seven variants that differ only in their instrumentation
//! (see `variants.rs`), each as its crate's README configures it, and two that bound what perf
//! could cost: a layer that does nothing (8) and perf's observations alone (9).
//!
//! ```text
//! peers [--rounds R] [--batch B]   the timed table: R rounds (default 301) of B requests
//!                                  (default 2000) of each variant in turn, median CPU ns/request
//! peers --requests VARIANT N       N requests of one variant (`1`..`9`) after 100 of warm-up;
//!                                  callgrind counts the function `peers::requests`
//! peers --families                 what each variant records, read back from its exporter
//! peers --legend                   the variants and what each records, one line each
//! ```
//!
//! Interleaved rounds, as perf-runtime's overhead bench does: a burst of load from the other
//! builds on this shared machine hits every variant alike, so the ratios hold better than the
//! absolute figures. `benches/peers/run.sh` runs the timed table twice and the instruction counts
//! under callgrind, and prints them as one table.

mod drive;
mod families;
mod handlers;
mod variants;

use std::hint::black_box;
use std::process::ExitCode;

use axum::http::StatusCode;
use variants::{Peers, Variant};

/// What each variant records, beside its figures: names as exported, labels in braces. Checked
/// against `--families`.
fn records(variant: Variant) -> &'static str {
    match variant {
        Variant::None => "nothing",
        Variant::PerfLayer => {
            "requests_total{endpoint,outcome}, request_duration_seconds{endpoint,outcome} and \
             gateway_overhead_seconds{endpoint} (to the body's last frame), \
             http_responses_total{endpoint,status}, \
             http_request_duration_seconds{endpoint,method,status}, requests_in_flight{endpoint}; \
             request_duration_seconds with exemplars (the request's trace id: its traceparent or \
             a random one)"
        }
        Variant::PerfAttributes => {
            "2's, and request_stage_duration_seconds{endpoint,stage} (request_parsing, \
             backend_fetch, stream_processing), frontend_processing_seconds{endpoint}, \
             backend_ttfb_seconds, backend_call_duration_seconds and \
             streaming_duration_seconds{endpoint,provider,model}, backend_in_flight{provider}, \
             stage_percentage{endpoint,stage}; the stage, front-end, TTFB and streaming \
             histograms with exemplars and native buckets"
        }
        Variant::AxumPrometheus => {
            "axum_http_requests_total{method,endpoint,status}, \
             axum_http_requests_duration_seconds{method,endpoint,status} (histogram, to the \
             response's head, not its body's end), axum_http_requests_pending{method,endpoint}"
        }
        Variant::Autometrics => {
            "per function (handler, stage, backend call: 3 calls a request): \
             function_calls_total{function,module,service_name,caller_function,caller_module,\
             result,ok,error,objective_name,objective_percentile}, \
             function_calls_duration_seconds{function,module,service_name,objective_name,\
             objective_percentile,objective_latency_threshold} (each to the function's return: \
             the stream is not timed); build_info once"
        }
        Variant::OtelTower => {
            "http.server.request.duration{http.request.method,url.scheme,network.protocol.name,\
             network.protocol.version,http.response.status_code,http.route} (histogram, to the \
             response's head), http.server.active_requests{http.request.method,url.scheme}; no \
             spans (the global tracer provider left no-op)"
        }
        Variant::MetricsByHand => {
            "app_requests_total{endpoint,status}, app_request_duration_seconds{endpoint} (to \
             the body's end; a summary, the exporter's default for a histogram without buckets)"
        }
        Variant::IdentityLayer => {
            "nothing: tower's Identity layer, what axum's Router::layer costs whatever the layer"
        }
        Variant::PerfFloor => {
            "no family: 5 clock readings and the 10 histogram observations of 3 (6 with \
             exemplars and native buckets, 2 with exemplars), into perf's own histograms, \
             unexported; no request, counters or gauges"
        }
    }
}

/// `n` requests of one variant: what `run.sh` has callgrind count (it starts counting at this
/// function and stops after it), the exporter's upkeep of those requests included.
#[inline(never)]
fn requests(peers: &mut Peers, variant: Variant, n: usize) {
    let router = peers.router(variant);
    for _ in 0..n {
        black_box(drive::request(black_box(&mut *router)));
    }
    peers.after_batch(variant);
}

/// One request of every variant, checked: a 200 and the whole answer, else the figures would
/// compare a failure with a success.
fn check(peers: &mut Peers) -> Result<(), String> {
    let expected = drive::request(peers.router(Variant::None));
    for variant in Variant::ALL {
        let got = drive::request(peers.router(variant));
        if got != expected || got.0 != StatusCode::OK {
            return Err(format!(
                "{} answered {got:?}, variant 1 {expected:?}",
                variant.id()
            ));
        }
    }
    Ok(())
}

/// The median ns/request of each variant (this thread's CPU time: see
/// [`drive::thread_cpu_ns`]) over `rounds` rounds of `batch` requests of each in turn, after a
/// warm-up round.
fn interleaved(peers: &mut Peers, rounds: usize, batch: usize) -> Vec<f64> {
    let mut per_request = vec![Vec::with_capacity(rounds); Variant::ALL.len()];
    for round in 0..=rounds {
        for (i, variant) in Variant::ALL.into_iter().enumerate() {
            let start = drive::thread_cpu_ns();
            let router = peers.router(variant);
            for _ in 0..batch {
                black_box(drive::request(black_box(&mut *router)));
            }
            peers.after_batch(variant);
            let ns = (drive::thread_cpu_ns() - start) as f64 / batch as f64;
            if round > 0 {
                per_request[i].push(ns);
            }
        }
    }
    per_request
        .into_iter()
        .map(|mut ns| {
            ns.sort_by(f64::total_cmp);
            ns[ns.len() / 2]
        })
        .collect()
}

/// The table of `figures` (one per variant, in order; `unit` ns or instructions), with the
/// issue's two goals: perf's layer alone at most ¼ of the cheapest peer layer's cost, and perf's
/// full request at most ⅙ of autometrics', each cost over variant 1; and that ratio's floor.
fn table(figures: &[f64], unit: &str) {
    let none = figures[0];
    println!("{:<26} {:>14} {:>12}", "variant", unit, "over 1");
    for (variant, &x) in Variant::ALL.iter().zip(figures) {
        println!("{:<26} {x:>14.1} {:>12.1}", variant.id(), x - none);
    }
    let over = |v: Variant| figures[v as usize] - none;
    let cheapest = Variant::ALL
        .into_iter()
        .filter(|v| v.is_peer_layer())
        .min_by(|a, b| over(*a).total_cmp(&over(*b)))
        .expect("two peer layers");
    let layer = over(Variant::PerfLayer) / over(cheapest);
    let full = over(Variant::PerfAttributes) / over(Variant::Autometrics);
    let floor = over(Variant::PerfFloor) / over(Variant::Autometrics);
    let layered_floor =
        (over(Variant::PerfFloor) + over(Variant::IdentityLayer)) / over(Variant::Autometrics);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goal: perf's layer alone <= 1/4 of the cheapest peer layer's ({}): {layer:.3} -> {}",
        cheapest.id(),
        verdict(layer <= 0.25)
    );
    println!(
        "goal: perf's full request <= 1/6 of autometrics': {full:.3} -> {}",
        verdict(full <= 1.0 / 6.0)
    );
    println!(
        "its floor: perf's observations alone (9) / autometrics': {floor:.3}; with axum's cost \
         of any layer (8): {layered_floor:.3}"
    );
}

fn legend() {
    for variant in Variant::ALL {
        println!("{}: {}", variant.id(), records(variant));
    }
}

/// The value after `flag`, parsed, or `default`.
fn option(args: &[String], flag: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == flag) {
        None => Ok(default),
        Some(at) => args
            .get(at + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} takes a number")),
    }
}

fn run(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--legend") {
        legend();
        return Ok(());
    }
    let mut peers = Peers::new();
    if args.iter().any(|a| a == "--families") {
        // perf's two variants share its registry: what the layer alone records first.
        drive::request(peers.router(Variant::PerfLayer));
        print!(
            "{}",
            families::perf_report("after one request of variant 2 alone")
        );
        check(&mut peers)?;
        print!("{}", families::report(&peers));
        return Ok(());
    }
    check(&mut peers)?;
    if let Some(at) = args.iter().position(|a| a == "--requests") {
        let variant = args
            .get(at + 1)
            .and_then(|v| Variant::find(v))
            .ok_or("--requests takes a variant, 1 to 9")?;
        let n = args
            .get(at + 2)
            .and_then(|v| v.parse().ok())
            .ok_or("--requests VARIANT N")?;
        // Warm-up, outside `requests` (callgrind counts only that function): every series
        // made, every cache filled.
        let router = peers.router(variant);
        for _ in 0..100 {
            black_box(drive::request(&mut *router));
        }
        peers.after_batch(variant);
        requests(&mut peers, variant, n);
        // The variant's name, for the script's table.
        println!("{}", variant.id());
        return Ok(());
    }
    let rounds = option(args, "--rounds", 301)?;
    let batch = option(args, "--batch", 2000)?;
    if rounds == 0 || batch == 0 {
        return Err("--rounds and --batch take numbers above 0".into());
    }
    let ns = interleaved(&mut peers, rounds, batch);
    println!(
        "interleaved: {rounds} rounds of {batch} requests of each variant in turn, median per \
         variant of the thread's CPU ns per request"
    );
    table(&ns, "ns/request");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peers: {e}");
            ExitCode::FAILURE
        }
    }
}
