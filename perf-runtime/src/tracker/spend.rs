//! What a request spent, and whose it was: each call's usage priced as it is reported
//! (`backend_cost_usd_total`, or `backend_unpriced_tokens_total`), the request's tokens and cost
//! kept for its tenant and counted in the tenant's series when it ends, and the provider's rate
//! limits set on the call's provider and model.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};

use super::calls::CallRecord;
use super::chunks::Usage;
use super::state::RequestState;
use crate::metrics::{Pricing, TenantRequests};
use crate::ratelimits::RateLimits;

/// A request's tenant, and the tokens and cost of its calls so far.
pub(crate) struct RequestSpend {
    tenant: AtomicPtr<TenantRequests>,
    tokens: [AtomicU64; 5],
    /// USD, an `f64`'s bits.
    cost: AtomicU64,
}

impl RequestSpend {
    pub const fn new() -> Self {
        RequestSpend {
            tenant: AtomicPtr::new(ptr::null_mut()),
            tokens: [const { AtomicU64::new(0) }; 5],
            cost: AtomicU64::new(0),
        }
    }

    /// No tenant, nothing spent: a new request.
    #[inline]
    pub fn reset(&self) {
        self.tenant.store(ptr::null_mut(), Relaxed);
        for count in &self.tokens {
            count.store(0, Relaxed);
        }
        self.cost.store(0, Relaxed);
    }

    fn add_cost(&self, usd: f64) {
        let _ = self.cost.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + usd).to_bits())
        });
    }

    /// The tenant's series, if the request has one.
    fn tenant(&self) -> Option<&'static TenantRequests> {
        // SAFETY: null or stored from a `&'static TenantRequests`.
        unsafe { self.tenant.load(Acquire).as_ref() }
    }
}

impl RequestState {
    /// Sets `usage` on `call`: its new tokens counted, and priced (the price of the call's
    /// provider and model applied to the call's whole usage so far, less what was counted
    /// before: a prompt that crosses a tier's threshold is priced whole at the tier's rates).
    pub(super) fn record_usage(&self, call: &CallRecord, usage: Usage) {
        let (added, total) = call.set_usage(usage);
        if added == [0; 5] {
            return;
        }
        let set = call.set();
        match set.pricing() {
            Pricing::Off => {}
            Pricing::Unpriced => {
                for (kind, n) in added.into_iter().enumerate() {
                    set.unpriced(kind, n);
                }
            }
            Pricing::Priced(price) => {
                let usd = call.cost_to(price.cost(&total));
                if usd > 0.0 {
                    set.add_cost(usd);
                    self.spend.add_cost(usd);
                }
            }
        }
        for (count, n) in self.spend.tokens.iter().zip(added) {
            count.fetch_add(n, Relaxed);
        }
    }

    /// The request is `tenant`'s (its label through the tenant budget): its requests, tokens
    /// and cost are counted under it when it ends. Set again, the latest tenant counts.
    pub fn set_tenant(&self, tenant: &str) {
        let found = self.endpoint().tenant(tenant);
        self.spend
            .tenant
            .store(ptr::from_ref(found).cast_mut(), Release);
    }

    /// The output tokens of the request's calls so far.
    pub(super) fn output_tokens(&self) -> u64 {
        self.spend.tokens[1].load(Relaxed)
    }

    /// The `tenant` label of the request, if it has one.
    pub fn tenant(&self) -> Option<&str> {
        self.spend.tenant().map(TenantRequests::label)
    }

    /// Sets the rate-limit gauges of the call `limits` belong to (the current one, else the
    /// one that answered last, else the one started last).
    pub fn rate_limits(&self, limits: &RateLimits) {
        if limits.is_empty() {
            return;
        }
        if let Some(call) = self.fact_call(self.last_answered().or(self.last_started())) {
            call.set().rate_limits(limits);
        }
    }

    /// At the request's end: its tenant's request (by `outcome`, an index of `OUTCOMES`),
    /// tokens and cost.
    pub(super) fn settle_spend(&self, outcome: usize) {
        let Some(tenant) = self.spend.tenant() else {
            return;
        };
        for (kind, count) in self.spend.tokens.iter().enumerate() {
            tenant.tenant.tokens(kind, count.load(Relaxed));
        }
        tenant
            .tenant
            .add_cost(f64::from_bits(self.spend.cost.load(Relaxed)));
        tenant.ended(outcome);
    }
}
