//! Everything a backend call of one endpoint, provider and model records into, made once per
//! triple: its latency, token and error series, what its calls cost (its price resolved once per
//! price table, the tokens no table prices) and the provider's rate-limit gauges.

use std::collections::HashSet;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::*};
use std::sync::{Mutex, OnceLock};

use super::count_histogram::CountHistogram;
use super::counter::Counter;
use super::families::Families;
use super::family::Family;
use super::float::{FloatCounter, Gauge};
use super::histogram::Histogram;
use super::in_flight::InFlight;
use super::Metrics;
use crate::prices::Price;
use crate::ratelimits::{RateLimits, RESOURCES};

/// How a backend call failed: the `kind` label of `backend_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendErrorKind {
    /// No answer in time: before the first byte, or between chunks.
    Timeout,
    /// The provider could not be reached.
    Connect,
    /// The provider answered with an error status.
    Status,
    /// The provider's answer was not what the protocol says (invalid JSON, a wrong content type).
    Protocol,
    /// The provider's answer broke off midway.
    BrokenOff,
}

impl BackendErrorKind {
    /// Every kind, in the order of their index.
    pub const ALL: [BackendErrorKind; 5] = [
        BackendErrorKind::Timeout,
        BackendErrorKind::Connect,
        BackendErrorKind::Status,
        BackendErrorKind::Protocol,
        BackendErrorKind::BrokenOff,
    ];

    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendErrorKind::Timeout => "timeout",
            BackendErrorKind::Connect => "connect",
            BackendErrorKind::Status => "status",
            BackendErrorKind::Protocol => "protocol",
            BackendErrorKind::BrokenOff => "broken_off",
        }
    }
}

/// Everything a backend call of one endpoint, provider and model records into. Made once per
/// triple (bounded by the label budget) and kept for the process.
pub(crate) struct BackendSet {
    pub ttfb: &'static Histogram,
    pub streaming: &'static Histogram,
    /// `backend_in_flight{provider}`.
    pub in_flight: &'static InFlight,
    metrics: &'static Metrics,
    /// Its endpoint's `endpoint` label.
    endpoint: &'static str,
    provider: Box<str>,
    model: Box<str>,
    /// `backend_errors_total` by kind, made on the first error of that kind.
    errors: [OnceLock<&'static Counter>; 5],
    /// `backend_ttft_seconds` and `backend_chunk_gap_seconds`, made with the first streamed
    /// content: a provider that only answers in one piece shows neither.
    ttft: OnceLock<&'static Histogram>,
    chunk_gap: OnceLock<&'static Histogram>,
    /// `backend_tokens_total` by [`TOKEN_TYPES`], made on the first usage of that type.
    tokens: [OnceLock<&'static Counter>; 5],
    /// What its calls cost, and the price they are priced at: see `spend.rs`.
    spend: BackendSpend,
    /// `backend_call_duration_seconds`, made when the first call ends.
    call_duration: OnceLock<&'static Histogram>,
    /// `backend_call_tokens` of `input` and `output`, made on the first call with that usage.
    call_tokens: [OnceLock<&'static CountHistogram>; 2],
}

/// The `type` label of `backend_tokens_total`, in the order of [`Usage`](crate::Usage)'s
/// fields.
pub(crate) const TOKEN_TYPES: [&str; 5] = [
    "input",
    "output",
    "cached_input",
    "reasoning",
    "cache_write",
];

impl BackendSet {
    /// The set of `provider` and `model` (labels already through the budget) on the endpoint
    /// labelled `endpoint`: its first series resolved now, the others on first use.
    pub(super) fn new(
        metrics: &'static Metrics,
        endpoint: &'static str,
        provider: &str,
        model: &str,
    ) -> Self {
        let families = &metrics.families;
        let labels = [provider, model, endpoint];
        BackendSet {
            ttfb: families.backend_ttfb.get(&labels),
            streaming: families.streaming_duration.get(&labels),
            in_flight: families.backend_in_flight.get(&[provider]),
            metrics,
            endpoint,
            provider: provider.into(),
            model: model.into(),
            errors: Default::default(),
            ttft: OnceLock::new(),
            chunk_gap: OnceLock::new(),
            tokens: Default::default(),
            call_duration: OnceLock::new(),
            call_tokens: Default::default(),
            spend: Default::default(),
        }
    }

    /// The labels of a series of this set, with one more label value of its own.
    pub(super) fn labels<'a>(&'a self, last: &'a str) -> [&'a str; 4] {
        [&self.provider, &self.model, self.endpoint, last]
    }

    /// A histogram of `family` for this provider, model and endpoint, made on first use.
    fn lazy(
        &self,
        slot: &OnceLock<&'static Histogram>,
        family: impl FnOnce(&'static Families) -> &'static Family<Histogram>,
    ) -> &'static Histogram {
        slot.get_or_init(|| {
            let [provider, model, endpoint, _] = self.labels("");
            family(&self.metrics.families).get(&[provider, model, endpoint])
        })
    }

    /// Its `provider` label.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Its `model` label.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// `backend_ttft_seconds` of this provider and model.
    pub fn ttft(&self) -> &'static Histogram {
        self.lazy(&self.ttft, |families| &families.backend_ttft)
    }

    /// `backend_chunk_gap_seconds` of this provider and model.
    pub fn chunk_gap(&self) -> &'static Histogram {
        self.lazy(&self.chunk_gap, |families| &families.backend_chunk_gap)
    }

    /// `backend_call_duration_seconds` of this provider and model.
    pub fn call_duration(&self) -> &'static Histogram {
        self.lazy(&self.call_duration, |families| {
            &families.backend_call_duration
        })
    }

    /// Records one call's `usage` of input and output tokens in `backend_call_tokens` (the
    /// types of the GenAI conventions; a type it did not report is not observed). Cached and
    /// reasoning tokens are counted in `backend_tokens_total` only: four series of 17 lines per
    /// model would double a model's share of `/metrics`.
    pub fn call_tokens(&self, usage: [u64; 5]) {
        for (kind, n) in usage.into_iter().enumerate().take(2) {
            if n == 0 {
                continue;
            }
            let histogram = self.call_tokens[kind].get_or_init(|| {
                let families = &self.metrics.families;
                families
                    .backend_call_tokens
                    .get(&self.labels(TOKEN_TYPES[kind]))
            });
            histogram.observe(n);
        }
    }

    /// Counts `n` tokens of type `TOKEN_TYPES[kind]`.
    pub fn tokens(&self, kind: usize, n: u64) {
        if n == 0 {
            return;
        }
        let counter = self.tokens[kind].get_or_init(|| {
            let families = &self.metrics.families;
            families.backend_tokens.get(&self.labels(TOKEN_TYPES[kind]))
        });
        counter.inc_by(n);
    }

    /// Counts one failed call of this provider and model.
    pub fn error(&self, kind: BackendErrorKind) {
        let counter = self.errors[kind as usize].get_or_init(|| {
            let families = &self.metrics.families;
            families.backend_errors.get(&self.labels(kind.as_str()))
        });
        counter.inc();
    }
}

/// How a backend set's calls are priced now.
#[derive(Clone, Copy)]
pub(crate) enum Pricing {
    /// No price table was ever set: nothing is priced, nothing is unpriced.
    Off,
    /// The table has no price for this provider and model.
    Unpriced,
    /// Its price.
    Priced(&'static Price),
}

/// What a [`BackendSet`] keeps of its spending and limits.
#[derive(Default)]
pub(crate) struct BackendSpend {
    cost: OnceLock<&'static FloatCounter>,
    unpriced: [OnceLock<&'static Counter>; 5],
    /// Its price in the table of generation `generation` (null: none there).
    price: AtomicPtr<Price>,
    /// The table generation `price` was resolved in; 0 before.
    generation: AtomicU64,
    /// Its unpriced tokens were logged.
    warned: AtomicBool,
    /// `backend_ratelimit_{remaining,limit,reset_seconds}` by resource.
    limits: [[OnceLock<&'static Gauge>; RESOURCES.len()]; 3],
}

impl BackendSet {
    fn metrics(&self) -> &'static Metrics {
        self.metrics
    }

    /// How its calls are priced now: two atomic loads, and a look in the table (a read lock)
    /// once per table.
    #[inline]
    pub(crate) fn pricing(&self) -> Pricing {
        let prices = &self.metrics().prices;
        let generation = prices.generation();
        if generation == 0 {
            return Pricing::Off;
        }
        let spend = &self.spend;
        if spend.generation.load(Acquire) != generation {
            let found = prices.lookup(self.provider(), self.model());
            let found = found.map_or(ptr::null_mut(), |p| ptr::from_ref(p).cast_mut());
            spend.price.store(found, Relaxed);
            spend.generation.store(generation, Release);
        }
        // SAFETY: null or an interned `&'static Price`.
        match unsafe { spend.price.load(Relaxed).as_ref() } {
            Some(price) => Pricing::Priced(price),
            None => Pricing::Unpriced,
        }
    }

    /// Adds `usd` to `backend_cost_usd_total` of this provider, model and endpoint.
    pub(crate) fn add_cost(&self, usd: f64) {
        let counter = self.spend.cost.get_or_init(|| {
            let [provider, model, endpoint, _] = self.labels("");
            self.metrics()
                .families
                .backend_cost
                .get(&[provider, model, endpoint])
        });
        counter.add(usd);
    }

    /// Counts `n` tokens of type `TOKEN_TYPES[kind]` that no price covers; the first time a
    /// provider and model is unpriced, says so once (through `log`).
    pub(crate) fn unpriced(&self, kind: usize, n: u64) {
        if n == 0 {
            return;
        }
        if !self.spend.warned.swap(true, Relaxed) {
            warn_unpriced(self.provider(), self.model());
        }
        let counter = self.spend.unpriced[kind].get_or_init(|| {
            self.metrics()
                .families
                .backend_unpriced_tokens
                .get(&self.labels(TOKEN_TYPES[kind]))
        });
        counter.inc_by(n);
    }

    /// Sets the rate-limit gauges of this provider and model to what `limits` says.
    pub(crate) fn rate_limits(&self, limits: &RateLimits) {
        let families = &self.metrics().families;
        let gauges = [
            &families.ratelimit_remaining,
            &families.ratelimit_limit,
            &families.ratelimit_reset,
        ];
        for (index, (resource, limit)) in limits.each().enumerate() {
            let values = [
                limit.remaining.map(|n| n as f64),
                limit.limit.map(|n| n as f64),
                limit.reset_seconds,
            ];
            for (which, value) in values.into_iter().enumerate() {
                let Some(value) = value else { continue };
                let gauge = self.spend.limits[which][index]
                    .get_or_init(|| gauges[which].get(&[self.provider(), self.model(), resource]));
                gauge.set(value);
            }
        }
    }
}

/// The providers and models said to have no price.
type Warned = Option<HashSet<(Box<str>, Box<str>)>>;

/// Logs once per process that `provider`'s `model` has no price.
fn warn_unpriced(provider: &str, model: &str) {
    static WARNED: Mutex<Warned> = Mutex::new(None);
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned
        .get_or_insert_with(HashSet::new)
        .insert((provider.into(), model.into()))
    {
        log::warn!(
            "no price for model `{model}` of provider `{provider}` in the price table: its tokens \
             are counted in backend_unpriced_tokens_total, not in backend_cost_usd_total"
        );
    }
}
