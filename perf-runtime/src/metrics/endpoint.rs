//! Per-endpoint handles: every series whose labels are known when the endpoint is named is
//! resolved once, so recording is an index and an `observe`; its backend sets and tenants are
//! found through a small per-thread cache.

use std::cell::RefCell;
use std::sync::OnceLock;

use super::backend_set::BackendSet;
use super::contract::OUTCOMES;
use super::counter::Counter;
use super::histogram::Histogram;
use super::in_flight::InFlight;
use super::labels::{self, UNKNOWN_LABEL};
use super::leaked_map::{Key, LabelValues, LeakedMap};
use super::stage_percentage::StageShares;
use super::tenants::{self, TenantRequests};
use super::Metrics;
use crate::stage::{Stage, MAX_STAGES};

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

/// Each status code's index in [`COMMON_STATUSES`] + 1 (0 for the others), by code − 100: one
/// load per response, not a search.
const COMMON_STATUS_INDEX: [u8; 900] = {
    let mut table = [0; 900];
    let mut index = 0;
    while index < COMMON_STATUSES.len() {
        table[COMMON_STATUSES[index] as usize - 100] = index as u8 + 1;
        index += 1;
    }
    table
};

/// The resolved series of one endpoint. Made by [`Metrics::endpoint`]; lives for the process.
pub struct EndpointMetrics {
    pub(crate) metrics: &'static Metrics,
    path: Box<str>,
    pub(crate) frontend: &'static Histogram,
    /// `stage_percentage`, made when the first request ends: an endpoint that never completed
    /// one shows no split, rather than a false 0 %.
    stage_shares: OnceLock<&'static StageShares>,
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
    pub(super) tenants: LeakedMap<Box<str>, TenantRequests>,
    unknown: OnceLock<&'static BackendSet>,
}

impl EndpointMetrics {
    pub(crate) fn new(metrics: &'static Metrics, path: &str) -> Self {
        let families = &metrics.families;
        EndpointMetrics {
            metrics,
            path: path.into(),
            frontend: families.frontend_processing.get(&[path]),
            stage_shares: OnceLock::new(),
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
    /// An HTTP exchange's series: `http_responses_total{endpoint, status}` and
    /// `http_request_duration_seconds{endpoint, method, status}` of `method` (an index into
    /// [`HTTP_METHODS`]) and `status` (100–999). The common codes (with `GET` and `POST` for the
    /// duration) are resolved once, and once resolved found with one load of a table and two
    /// of their cells; the rest is [`http_series_made`](Self::http_series_made)'s.
    #[inline]
    pub(crate) fn http_series(
        &self,
        method: usize,
        status: u16,
    ) -> (&'static Counter, &'static Histogram) {
        let common = COMMON_STATUS_INDEX
            .get(usize::from(status).wrapping_sub(100))
            .map_or(0, |&index| usize::from(index));
        if let (Some(index), 0 | 1) = (common.checked_sub(1), method) {
            let duration = &self.http_durations[method * COMMON_STATUSES.len() + index];
            if let (Some(count), Some(duration)) = (self.statuses[index].get(), duration.get()) {
                return (count, duration);
            }
        }
        self.http_series_made(method, status)
    }

    /// [`http_series`](Self::http_series) for a status or method not resolved yet: made (or
    /// found) in the families, and kept if common.
    #[cold]
    #[inline(never)]
    fn http_series_made(
        &self,
        method: usize,
        status: u16,
    ) -> (&'static Counter, &'static Histogram) {
        let status = status.clamp(100, 999);
        let code = || status_label(status);
        let count = || {
            self.metrics
                .families
                .http_responses
                .get(&[&self.path, code().as_str()])
        };
        let duration = || {
            let method = HTTP_METHODS.get(method).copied().unwrap_or("_OTHER");
            self.metrics
                .families
                .http_request_duration
                .get(&[&self.path, method, code().as_str()])
        };
        match usize::from(COMMON_STATUS_INDEX[usize::from(status - 100)]).checked_sub(1) {
            Some(index) => (
                self.statuses[index].get_or_init(count),
                match method {
                    0 | 1 => self.http_durations[method * COMMON_STATUSES.len() + index]
                        .get_or_init(duration),
                    _ => duration(),
                },
            ),
            None => (count(), duration()),
        }
    }

    /// The `stage_percentage` triple, resolved on first use.
    #[inline]
    pub(crate) fn stage_shares(&self) -> &'static StageShares {
        self.stage_shares
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
            let set = BackendSet::new(self.metrics, &self.path, provider, model);
            (LabelValues::new(key), set)
        })
    }
}

impl EndpointMetrics {
    /// The series of `tenant`'s requests on this endpoint: its own while the tenant budget
    /// lasts (cut to 128 bytes, reserved values escaped, the allow-list if any), `other` after.
    /// A tenant this thread resolved lately is found without a lock or an allocation.
    pub(crate) fn tenant(&'static self, tenant: &str) -> &'static TenantRequests {
        let tenant = labels::truncate(tenant);
        if let Some(found) = tenants::cached_tenant(self as *const Self as usize, tenant) {
            return found;
        }
        let label = self.metrics.tenants.admit(tenant);
        let found = self.tenant_requests(&label);
        tenants::remember_tenant(self as *const Self as usize, tenant, found);
        found
    }

    /// The requests of an admitted tenant label, made on first use.
    fn tenant_requests(&'static self, label: &str) -> &'static TenantRequests {
        self.tenants.get_or_make(label, || {
            let families = &self.metrics.families;
            let requests = TenantRequests {
                tenant: self.metrics.tenant_set(label),
                outcomes: OUTCOMES
                    .map(|outcome| families.tenant_requests.get(&[label, self.path(), outcome])),
            };
            (label.into(), requests)
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
