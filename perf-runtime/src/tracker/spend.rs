//! What a request spent, and whose it was: each call's usage priced as it is reported
//! (`backend_cost_usd_total`, or `backend_unpriced_tokens_total`), and the request's tokens and
//! cost kept for its tenant and counted in the tenant's series when it ends.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};

use super::call_record::CallRecord;
use crate::chunk::Usage;
use crate::metrics::{Pricing, TenantRequests};

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

    /// Sets `usage` on `call`: its new tokens counted, and priced (the price of the call's
    /// provider and model applied to the call's whole usage so far, less what was counted
    /// before: a prompt that crosses a tier's threshold is priced whole at the tier's rates).
    pub fn record(&self, call: &CallRecord, usage: Usage) {
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
                    self.add_cost(usd);
                }
            }
        }
        for (count, n) in self.tokens.iter().zip(added) {
            count.fetch_add(n, Relaxed);
        }
    }

    /// The request is `tenant`'s: its requests, tokens and cost are counted under it when it
    /// ends. Set again, the latest tenant counts.
    pub fn set_tenant(&self, tenant: &'static TenantRequests) {
        self.tenant.store(ptr::from_ref(tenant).cast_mut(), Release);
    }

    /// The output tokens of the request's calls so far.
    pub fn output_tokens(&self) -> u64 {
        self.tokens[1].load(Relaxed)
    }

    /// The `tenant` label of the request, if it has one.
    pub fn tenant_label(&self) -> Option<&'static str> {
        self.tenant().map(TenantRequests::label)
    }

    /// At the request's end: its tenant's request (by `outcome`, an index of `OUTCOMES`),
    /// tokens and cost.
    #[inline]
    pub fn settle(&self, outcome: usize) {
        if let Some(tenant) = self.tenant() {
            Self::settle_for(tenant, &self.tokens, self.cost.load(Relaxed), outcome);
        }
    }

    /// What [`settle`](Self::settle) counts for a request with a tenant: apart, so that a
    /// request without one pays a load and a branch.
    #[inline(never)]
    fn settle_for(tenant: &TenantRequests, tokens: &[AtomicU64; 5], cost: u64, outcome: usize) {
        for (kind, count) in tokens.iter().enumerate() {
            tenant.tenant.tokens(kind, count.load(Relaxed));
        }
        tenant.tenant.add_cost(f64::from_bits(cost));
        tenant.ended(outcome);
    }
}
