//! Per-endpoint handles: every series whose labels are known when the endpoint is named is
//! resolved once, so recording is an index and an `observe`.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::contract::{Families, OUTCOMES};
use super::count_histogram::CountHistogram;
use super::counter::Counter;
use super::family::Family;
use super::histogram::Histogram;
use super::in_flight::InFlight;
use super::known;
use super::labels::{self, OVERFLOW_LABEL, UNKNOWN_LABEL};
use super::leaked_map::{Key, LabelValues, LeakedMap};
use super::stage_percentage::Split;
use super::Metrics;
use crate::stage::{Stage, MAX_STAGES};

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
    pub(super) endpoint: &'static EndpointMetrics,
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
    pub(super) spend: super::spend::BackendSpend,
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
    /// The labels of a series of this set, with one more label value of its own.
    pub(super) fn labels<'a>(&'a self, last: &'a str) -> [&'a str; 4] {
        [&self.provider, &self.model, self.endpoint.path(), last]
    }

    /// A histogram of `family` for this provider, model and endpoint, made on first use.
    fn lazy(
        &self,
        slot: &OnceLock<&'static Histogram>,
        family: impl FnOnce(&'static Families) -> &'static Family<Histogram>,
    ) -> &'static Histogram {
        slot.get_or_init(|| {
            let [provider, model, endpoint, _] = self.labels("");
            family(&self.endpoint.metrics.families).get(&[provider, model, endpoint])
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
                let families = &self.endpoint.metrics.families;
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
            let families = &self.endpoint.metrics.families;
            families.backend_tokens.get(&self.labels(TOKEN_TYPES[kind]))
        });
        counter.inc_by(n);
    }

    /// Counts one failed call of this provider and model.
    pub fn error(&self, kind: BackendErrorKind) {
        let counter = self.errors[kind as usize].get_or_init(|| {
            let families = &self.endpoint.metrics.families;
            families.backend_errors.get(&self.labels(kind.as_str()))
        });
        counter.inc();
    }
}

/// The `method` label of `http_request_duration_seconds`: the methods of RFC 9110 and PATCH,
/// `GET` and `POST` first (an endpoint keeps their series at hand); any other is `_OTHER`, as
/// the OpenTelemetry HTTP conventions say.
pub(crate) const HTTP_METHODS: [&str; 9] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// The `status` label of a code from 100 to 999: its three digits.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
fn status_label(status: u16) -> String {
    format!("{:03}", status.clamp(100, 999))
}

/// Status codes whose `http_responses_total` series an endpoint keeps at hand.
const COMMON_STATUSES: [u16; 12] = [200, 201, 204, 400, 401, 403, 404, 413, 429, 500, 502, 504];

/// The resolved series of one endpoint. Made by [`Metrics::endpoint`]; lives for the process.
pub struct EndpointMetrics {
    pub(crate) metrics: &'static Metrics,
    path: Box<str>,
    pub(crate) frontend: &'static Histogram,
    /// `stage_percentage`, made when the first request ends: an endpoint that never completed
    /// one shows no split, rather than a false 0 %.
    split: OnceLock<&'static Split>,
    stages: Box<[OnceLock<&'static Histogram>]>,
    /// `requests_total` for each of [`OUTCOMES`].
    pub(crate) outcomes: [&'static Counter; 3],
    /// `requests_in_flight{endpoint}`.
    pub(crate) in_flight: &'static InFlight,
    /// `request_duration_seconds` for each of [`OUTCOMES`], made on first use.
    durations: [OnceLock<&'static Histogram>; 3],
    /// `gateway_overhead_seconds{endpoint}`.
    pub(crate) overhead: &'static Histogram,
    /// `http_responses_total` of the [`COMMON_STATUSES`], made on first use.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    statuses: [OnceLock<&'static Counter>; COMMON_STATUSES.len()],
    /// `request_ttft_seconds{endpoint}` and `request_time_per_output_token_seconds{endpoint}`,
    /// made with the first request that streamed content.
    ttft: OnceLock<&'static Histogram>,
    time_per_token: OnceLock<&'static Histogram>,
    /// `http_request_duration_seconds` of `GET` and `POST` with each of the
    /// [`COMMON_STATUSES`], made on first use.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    http_durations: [OnceLock<&'static Histogram>; 2 * COMMON_STATUSES.len()],
    /// The backend sets of this endpoint, by admitted provider and model.
    backends: LeakedMap<LabelValues, BackendSet>,
    /// The tenants of this endpoint's requests, by admitted tenant: see `spend.rs`.
    pub(super) tenants: LeakedMap<Box<str>, super::spend::TenantRequests>,
    unknown: OnceLock<&'static BackendSet>,
}

impl EndpointMetrics {
    pub(crate) fn new(metrics: &'static Metrics, path: &str) -> Self {
        let families = &metrics.families;
        EndpointMetrics {
            metrics,
            path: path.into(),
            frontend: families.frontend_processing.get(&[path]),
            split: OnceLock::new(),
            outcomes: OUTCOMES.map(|outcome| families.requests.get(&[path, outcome])),
            in_flight: families.requests_in_flight.get(&[path]),
            durations: Default::default(),
            overhead: families.gateway_overhead.get(&[path]),
            statuses: Default::default(),
            ttft: OnceLock::new(),
            time_per_token: OnceLock::new(),
            http_durations: Default::default(),
            backends: LeakedMap::new(),
            tenants: LeakedMap::new(),
            stages: (0..MAX_STAGES).map(|_| OnceLock::new()).collect(),
            unknown: OnceLock::new(),
        }
    }

    /// The `endpoint` label.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `request_duration_seconds{endpoint, outcome}`, `outcome` an index into [`OUTCOMES`].
    #[inline]
    pub(crate) fn duration(&self, outcome: usize) -> &'static Histogram {
        self.durations[outcome].get_or_init(|| {
            self.metrics
                .families
                .request_duration
                .get(&[&self.path, OUTCOMES[outcome]])
        })
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    /// `http_responses_total{endpoint, status}` of `status` (100–999): the common codes are
    /// resolved once, others looked up in the family.
    pub(crate) fn status(&self, status: u16) -> &'static Counter {
        let status = status.clamp(100, 999);
        let get = || {
            let code = status_label(status);
            self.metrics
                .families
                .http_responses
                .get(&[&self.path, code.as_str()])
        };
        match COMMON_STATUSES.iter().position(|&common| common == status) {
            Some(index) => self.statuses[index].get_or_init(get),
            None => get(),
        }
    }

    /// `request_ttft_seconds{endpoint}`.
    pub(crate) fn ttft(&self) -> &'static Histogram {
        self.ttft
            .get_or_init(|| self.metrics.families.request_ttft.get(&[&self.path]))
    }

    /// `request_time_per_output_token_seconds{endpoint}`.
    pub(crate) fn time_per_token(&self) -> &'static Histogram {
        self.time_per_token.get_or_init(|| {
            self.metrics
                .families
                .request_time_per_output_token
                .get(&[&self.path])
        })
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    /// `http_request_duration_seconds{endpoint, method, status}` of `method` (an index into
    /// [`HTTP_METHODS`]) and `status` (100–999): `GET` and `POST` with the common codes resolved
    /// once, others looked up in the family.
    pub(crate) fn http_duration(&self, method: usize, status: u16) -> &'static Histogram {
        let status = status.clamp(100, 999);
        let get = || {
            let code = status_label(status);
            let method = HTTP_METHODS.get(method).copied().unwrap_or("_OTHER");
            self.metrics
                .families
                .http_request_duration
                .get(&[&self.path, method, code.as_str()])
        };
        let common = COMMON_STATUSES.iter().position(|&common| common == status);
        match (method, common) {
            (0 | 1, Some(index)) => {
                self.http_durations[method * COMMON_STATUSES.len() + index].get_or_init(get)
            }
            _ => get(),
        }
    }

    /// The `stage_percentage` triple, resolved on first use.
    #[inline]
    pub(crate) fn split(&self) -> &'static Split {
        self.split
            .get_or_init(|| self.metrics.families.stage_percentage.get(&[&self.path]))
    }

    /// `request_stage_duration_seconds{stage, endpoint}`, resolved on first use.
    #[inline]
    pub(crate) fn stage(&self, stage: Stage) -> &'static Histogram {
        self.stages[stage.index()].get_or_init(|| {
            self.metrics
                .families
                .stage_duration
                .get(&[stage.name(), &self.path])
        })
    }

    /// The backend set for `provider` and `model`. The model is only known at run time, so
    /// this is a lookup: first in a small per-thread cache of recent pairs (no lock, no
    /// allocation), then through the label budget and this endpoint's sets.
    pub(crate) fn backend(&'static self, provider: &str, model: &str) -> &'static BackendSet {
        // Cut first: the cache then holds at most MAX_LABEL_LEN bytes per value.
        let (provider, model) = (labels::truncate(provider), labels::truncate(model));
        if let Some(found) = cached(self, provider, model) {
            return found;
        }
        let admitted = (
            self.metrics.providers.admit(provider),
            self.metrics.models.admit(model),
        );
        let set = self.set(&admitted.0, &admitted.1);
        remember(self, provider, model, set);
        set
    }

    /// The set of streaming that no backend answered: `provider="unknown", model="unknown"`.
    /// Not a client value, so it bypasses the label budget: the allow-list does not turn it into
    /// `other`, and it uses up no slot of the cap.
    pub(crate) fn unknown_backend(&'static self) -> &'static BackendSet {
        self.unknown
            .get_or_init(|| self.set(UNKNOWN_LABEL, UNKNOWN_LABEL))
    }

    /// The set for labels already through the budget, made on first use.
    fn set(&'static self, provider: &str, model: &str) -> &'static BackendSet {
        let key: &[&str] = &[provider, model];
        self.backends.get_or_make(&key as &dyn Key, || {
            let families = &self.metrics.families;
            let labels = [provider, model, &*self.path];
            let set = BackendSet {
                ttfb: families.backend_ttfb.get(&labels),
                streaming: families.streaming_duration.get(&labels),
                in_flight: families.backend_in_flight.get(&[provider]),
                endpoint: self,
                provider: provider.into(),
                model: model.into(),
                errors: Default::default(),
                ttft: OnceLock::new(),
                chunk_gap: OnceLock::new(),
                tokens: Default::default(),
                call_duration: OnceLock::new(),
                call_tokens: Default::default(),
                spend: Default::default(),
            };
            (LabelValues::new(key), set)
        })
    }
}

/// Recently resolved `(endpoint, provider, model)` of this thread: a gateway serves few models
/// most of the time, so most backend calls resolve here.
struct CacheEntry {
    endpoint: *const EndpointMetrics,
    provider: Box<str>,
    model: Box<str>,
    series: &'static BackendSet,
}

const CACHE_ENTRIES: usize = 8;

thread_local! {
    static CACHE: RefCell<(usize, Vec<CacheEntry>)> = const { RefCell::new((0, Vec::new())) };
}

fn cached(endpoint: &EndpointMetrics, provider: &str, model: &str) -> Option<&'static BackendSet> {
    CACHE
        .try_with(|cache| {
            let cache = cache.borrow();
            cache
                .1
                .iter()
                .find(|e| {
                    std::ptr::eq(e.endpoint, endpoint)
                        && *e.model == *model
                        && *e.provider == *provider
                })
                .map(|e| e.series)
        })
        .ok()
        .flatten()
}

fn remember(endpoint: &EndpointMetrics, provider: &str, model: &str, series: &'static BackendSet) {
    let entry = CacheEntry {
        endpoint,
        provider: provider.into(),
        model: model.into(),
        series,
    };
    let _ = CACHE.try_with(|cache| {
        let (next, entries) = &mut *cache.borrow_mut();
        if entries.len() < CACHE_ENTRIES {
            entries.push(entry);
        } else {
            entries[*next] = entry;
            *next = (*next + 1) % CACHE_ENTRIES;
        }
    });
}

/// An endpoint named in code, resolved against [`Metrics::global`] on first use: what a `static`
/// holds so that a handler finds its series without a lock.
///
/// ```
/// use perf_runtime::{Endpoint, PerformanceTracker};
///
/// static CHAT: Endpoint = Endpoint::new("/v1/chat/completions");
/// let tracker = PerformanceTracker::at(&CHAT);
/// # drop(tracker);
/// ```
pub struct Endpoint {
    path: &'static str,
    resolved: OnceLock<&'static EndpointMetrics>,
}

impl Endpoint {
    /// The endpoint whose `endpoint` label is `path`.
    pub const fn new(path: &'static str) -> Self {
        Endpoint {
            path,
            resolved: OnceLock::new(),
        }
    }

    /// The endpoint's handles in the global metrics. An endpoint named in code has its own
    /// series whatever the endpoint cap ([`MetricsBuilder::endpoint_cap`]): it is not counted
    /// against it.
    ///
    /// [`MetricsBuilder::endpoint_cap`]: super::MetricsBuilder::endpoint_cap
    #[inline]
    pub fn metrics(&self) -> &'static EndpointMetrics {
        self.resolved
            .get_or_init(|| Metrics::global().declared_endpoint(self.path))
    }
}

/// How an endpoint was named: in code (an [`Endpoint`] static, a `#[perf_endpoint]`), so that
/// the program bounds how many there are, or at run time (a `&str` given to
/// [`Metrics::endpoint`]), counted against the endpoint cap.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Naming {
    Code,
    RunTime,
}

/// The endpoints of one [`Metrics`], by `endpoint` label: every one named in code, those named at
/// run time up to the cap, and one [`OVERFLOW_LABEL`] endpoint for every run-time name past it.
pub(crate) struct EndpointTable {
    cap: usize,
    by_path: LeakedMap<Box<str>, EndpointMetrics>,
    /// How many of `by_path` were named at run time, and not known from code: what the cap
    /// counts. Changed only under `by_path`'s write lock, when one is made.
    counted: AtomicUsize,
    overflow: OnceLock<&'static EndpointMetrics>,
}

impl EndpointTable {
    pub fn new(cap: usize) -> Self {
        EndpointTable {
            cap,
            by_path: LeakedMap::new(),
            counted: AtomicUsize::new(0),
            overflow: OnceLock::new(),
        }
    }

    /// The handles of `path` (already cut to [`MAX_LABEL_LEN`](labels::MAX_LABEL_LEN)), made on
    /// first use; the [`OVERFLOW_LABEL`] endpoint's for a run-time name past the cap. Takes a
    /// read lock and hashes `path`; a new endpoint takes the write lock and allocates once.
    /// A path spelled like a reserved value is [escaped](labels::escape_reserved): no name
    /// records into the overflow endpoint but those past the cap.
    pub fn resolve(
        &self,
        metrics: &'static Metrics,
        path: &str,
        naming: Naming,
    ) -> &'static EndpointMetrics {
        let path = &*labels::escape_reserved(path);
        // A `#[perf_endpoint]` path given as a `&str` is still known from code.
        let counted = naming == Naming::RunTime && !known::is_known(path);
        let room = |_| !counted || self.counted.load(Ordering::Relaxed) < self.cap;
        let made = self.by_path.get_or_try_make(path, room, |_| {
            if counted {
                self.counted.fetch_add(1, Ordering::Relaxed);
            }
            (path.into(), EndpointMetrics::new(metrics, path))
        });
        made.unwrap_or_else(|| self.overflow(metrics))
    }

    /// The endpoint every run-time name past the cap records into.
    fn overflow(&self, metrics: &'static Metrics) -> &'static EndpointMetrics {
        self.overflow
            .get_or_init(|| Box::leak(Box::new(EndpointMetrics::new(metrics, OVERFLOW_LABEL))))
    }
}

/// Slots of the per-thread endpoint cache: a power of two. It holds up to half as many
/// endpoints (then it starts over), more than a router usually has routes.
const ENDPOINT_SLOTS: usize = 256;

/// Endpoints one thread's cache holds before it starts over: half its slots, so that a probe
/// meets an empty slot within a few steps.
const ENDPOINT_CACHED: usize = ENDPOINT_SLOTS / 2;

/// One thread's recently resolved endpoints: an open-addressed table keyed by path (linear
/// probing from the path's hash). An entry is the endpoint itself, which lives for the process
/// and holds its path: filling a slot allocates nothing.
struct EndpointCache {
    slots: [Cell<Option<&'static EndpointMetrics>>; ENDPOINT_SLOTS],
    filled: Cell<usize>,
}

thread_local! {
    /// What makes [`Metrics::endpoint`] cheap per request: no lock, no allocation, no
    /// destructor to register for the thread.
    static ENDPOINTS: EndpointCache = const {
        EndpointCache {
            slots: [const { Cell::new(None) }; ENDPOINT_SLOTS],
            filled: Cell::new(0),
        }
    };
}

/// The first cache slot to look at for `path`: a multiplicative hash of its 8-byte words, top
/// bits taken.
#[inline]
fn endpoint_slot(path: &str) -> usize {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut h = path.len() as u64;
    let mut words = path.as_bytes().chunks_exact(8);
    for word in &mut words {
        h = mix(h, u64::from_le_bytes(word.try_into().unwrap_or_default()));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        // Byte by byte: a copy into a padded word would call `memcpy`, the costliest step.
        let last = rest
            .iter()
            .rev()
            .fold(0u64, |word, &byte| word << 8 | u64::from(byte));
        h = mix(h, last);
    }
    (h >> (64 - ENDPOINT_SLOTS.trailing_zeros())) as usize
}

/// `path`'s endpoint of `metrics`, if this thread resolved it lately.
#[inline]
pub(crate) fn cached_endpoint(metrics: &Metrics, path: &str) -> Option<&'static EndpointMetrics> {
    ENDPOINTS
        .try_with(|cache| {
            let mut slot = endpoint_slot(path);
            // At most half the slots are filled: an empty one ends every probe.
            while let Some(found) = cache.slots[slot].get() {
                if found.path() == path && std::ptr::eq(found.metrics, metrics) {
                    return Some(found);
                }
                slot = (slot + 1) % ENDPOINT_SLOTS;
            }
            None
        })
        .ok()
        .flatten()
}

/// Keeps `endpoint` in this thread's cache, under its own path; after [`ENDPOINT_CACHED`]
/// endpoints, the cache starts over.
pub(crate) fn remember_endpoint(endpoint: &'static EndpointMetrics) {
    let _ = ENDPOINTS.try_with(|cache| {
        if cache.filled.get() >= ENDPOINT_CACHED {
            cache.slots.iter().for_each(|slot| slot.set(None));
            cache.filled.set(0);
        }
        let mut slot = endpoint_slot(endpoint.path());
        while cache.slots[slot].get().is_some() {
            slot = (slot + 1) % ENDPOINT_SLOTS;
        }
        cache.slots[slot].set(Some(endpoint));
        cache.filled.set(cache.filled.get() + 1);
    });
}
