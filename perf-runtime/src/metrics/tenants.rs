//! Tenants in the metric core: the series of each tenant (bounded like `model`), its requests by
//! endpoint and outcome, its tokens and cost.

use std::cell::RefCell;
use std::sync::OnceLock;

use super::backend_set::TOKEN_TYPES;
use super::counter::Counter;
use super::float::FloatCounter;
use super::Metrics;

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
    pub(super) outcomes: [&'static Counter; 3],
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
    pub(super) fn tenant_set(&'static self, label: &str) -> &'static TenantSet {
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

/// A tenant this thread resolved lately: the name as the request gave it (cut), its endpoint.
struct CachedTenant {
    /// The endpoint's address.
    endpoint: usize,
    name: Box<str>,
    found: &'static TenantRequests,
}

const TENANT_CACHE: usize = 16;

thread_local! {
    static TENANTS: RefCell<(usize, Vec<CachedTenant>)> = const { RefCell::new((0, Vec::new())) };
}

/// The tenant `name` on the endpoint at address `endpoint`, if this thread resolved it lately.
pub(super) fn cached_tenant(endpoint: usize, name: &str) -> Option<&'static TenantRequests> {
    TENANTS
        .try_with(|cache| {
            cache
                .borrow()
                .1
                .iter()
                .find(|e| e.endpoint == endpoint && *e.name == *name)
                .map(|e| e.found)
        })
        .ok()
        .flatten()
}

/// Notes that `name` on the endpoint at address `endpoint` is `found`.
pub(super) fn remember_tenant(endpoint: usize, name: &str, found: &'static TenantRequests) {
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
