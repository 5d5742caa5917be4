//! Money, tenants and provider limits in the metric core: what a backend set's calls cost (its
//! price resolved once per price table), the tokens no table prices, the series of each tenant
//! (bounded like `model`), and the rate-limit gauges of a provider's model.

use std::cell::RefCell;
use std::collections::HashSet;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::*};
use std::sync::{Mutex, OnceLock};

use super::contract::OUTCOMES;
use super::counter::Counter;
use super::endpoint::{BackendSet, EndpointMetrics, TOKEN_TYPES};
use super::float::{FloatCounter, Gauge};
use super::labels;
use super::Metrics;
use crate::prices::Price;
use crate::ratelimits::{RateLimits, RESOURCES};

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
        self.endpoint.metrics
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

/// One tenant's series that do not depend on the endpoint: tokens and cost.
pub(crate) struct TenantSet {
    label: Box<str>,
    metrics: &'static Metrics,
    tokens: [OnceLock<&'static Counter>; 5],
    cost: OnceLock<&'static FloatCounter>,
}

impl TenantSet {
    /// Counts `n` tokens of type `TOKEN_TYPES[kind]`.
    pub fn tokens(&self, kind: usize, n: u64) {
        if n == 0 {
            return;
        }
        self.tokens[kind]
            .get_or_init(|| {
                let families = &self.metrics.families;
                families
                    .tenant_tokens
                    .get(&[&self.label, TOKEN_TYPES[kind]])
            })
            .inc_by(n);
    }

    /// Adds `usd` to its cost.
    pub fn add_cost(&self, usd: f64) {
        if usd > 0.0 {
            self.cost
                .get_or_init(|| self.metrics.families.tenant_cost.get(&[&self.label]))
                .add(usd);
        }
    }
}

/// A tenant's series on one endpoint: its requests by outcome (made together, at 0), and its
/// [`TenantSet`].
pub(crate) struct TenantRequests {
    pub tenant: &'static TenantSet,
    outcomes: [&'static Counter; 3],
}

impl TenantRequests {
    /// Counts one request that ended with `OUTCOMES[outcome]`.
    pub fn ended(&self, outcome: usize) {
        self.outcomes[outcome].inc();
    }

    /// The `tenant` label.
    pub fn label(&self) -> &str {
        &self.tenant.label
    }
}

impl Metrics {
    /// The tenant set of an admitted label, made on first use.
    fn tenant_set(&'static self, label: &str) -> &'static TenantSet {
        self.tenant_sets.get_or_make(label, || {
            let set = TenantSet {
                label: label.into(),
                metrics: self,
                tokens: Default::default(),
                cost: OnceLock::new(),
            };
            (label.into(), set)
        })
    }
}

impl EndpointMetrics {
    /// The series of `tenant`'s requests on this endpoint: its own while the tenant budget
    /// lasts (cut to 128 bytes, reserved values escaped, the allow-list if any), `other` after.
    /// A tenant this thread resolved lately is found without a lock or an allocation.
    pub(crate) fn tenant(&'static self, tenant: &str) -> &'static TenantRequests {
        let tenant = labels::truncate(tenant);
        if let Some(found) = cached_tenant(self, tenant) {
            return found;
        }
        let label = self.metrics.tenants.admit(tenant);
        let found = self.tenant_requests(&label);
        remember_tenant(self, tenant, found);
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

/// A tenant this thread resolved lately: the name as the request gave it (cut), its endpoint.
struct CachedTenant {
    endpoint: *const EndpointMetrics,
    name: Box<str>,
    found: &'static TenantRequests,
}

const TENANT_CACHE: usize = 16;

thread_local! {
    static TENANTS: RefCell<(usize, Vec<CachedTenant>)> = const { RefCell::new((0, Vec::new())) };
}

fn cached_tenant(endpoint: &EndpointMetrics, name: &str) -> Option<&'static TenantRequests> {
    TENANTS
        .try_with(|cache| {
            cache
                .borrow()
                .1
                .iter()
                .find(|e| ptr::eq(e.endpoint, endpoint) && *e.name == *name)
                .map(|e| e.found)
        })
        .ok()
        .flatten()
}

fn remember_tenant(endpoint: &EndpointMetrics, name: &str, found: &'static TenantRequests) {
    let entry = CachedTenant {
        endpoint,
        name: name.into(),
        found,
    };
    let _ = TENANTS.try_with(|cache| {
        let (next, entries) = &mut *cache.borrow_mut();
        if entries.len() < TENANT_CACHE {
            entries.push(entry);
        } else {
            entries[*next] = entry;
            *next = (*next + 1) % TENANT_CACHE;
        }
    });
}
