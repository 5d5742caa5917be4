//! The gateway's file-descriptor budget: what a client connection and a provider call cost, caps
//! on both that fit the process's open-file limit with headroom, and the gauges of the budget in
//! use.
//!
//! Without it the process ran out of descriptors before `--max-connections`, silently: with a
//! 20,000 limit and 10,000 streams asked, ~1,100 answers became 502s (the provider call could not
//! connect) and ~1,000 clients could not connect at all. Now a provider call that does not fit
//! is answered 503 with `Retry-After` before it is tried, and the connections are capped so that
//! the calls they make fit too.

use std::fmt;
use std::sync::{Arc, OnceLock};

use prometheus::{IntGauge, IntGaugeVec, Opts};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors kept out of the budget for the rest of the process: its listeners, the runtime's
/// own (epoll, its wakers), standard streams, name lookups and `/proc` reads.
pub const RESERVED: u64 = 64;

/// Idle connections to the provider kept for reuse (per host); each costs a provider call's
/// descriptors, so they are reserved too.
pub const IDLE_PROVIDER_CONNECTIONS: usize = 32;

/// The most connections and provider calls the gateway takes on with `open_files` descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorPlan {
    /// The process's open-file limit planned with.
    pub open_files: u64,
    /// Descriptors a provider call holds: its connection to the provider, and the provider's
    /// end of it when the provider is the built-in mock, in this process.
    pub per_call: u64,
    /// Descriptors for connections and calls: `open_files` less the reserve and the margin.
    pub budget: u64,
    /// Client connections served at once.
    pub connections: usize,
    /// Provider calls at once (a stream holds its call until its last byte).
    pub calls: usize,
    /// `--max-connections` could not be kept: it was asked for more than fits.
    pub connections_lowered_from: Option<usize>,
}

impl DescriptorPlan {
    /// Shares `open_files` between client connections (at most `max_connections`, if given)
    /// and provider calls of `per_call` descriptors: the reserve first, an eighth of the rest
    /// for connections still closing (a call's room is free once its answer is read; its
    /// connection closes a moment later, in another task, as does a client's), then at most
    /// half of the rest for connections, and the calls in what the connections leave. At least
    /// half of the connections can each make a call at once.
    pub fn new(open_files: u64, max_connections: Option<usize>, per_call: u64) -> Self {
        let per_call = per_call.max(1);
        let reserve = RESERVED + IDLE_PROVIDER_CONNECTIONS as u64 * per_call;
        let budget = open_files.saturating_sub(reserve) / 8 * 7;
        let budget = budget.max(2 + per_call);
        let fits = (budget / 2) as usize;
        let connections = max_connections.map_or(fits, |asked| asked.min(fits)).max(1);
        let calls = ((budget - connections as u64) / per_call) as usize;
        DescriptorPlan {
            open_files,
            per_call,
            budget,
            connections,
            calls: calls.max(1),
            connections_lowered_from: max_connections.filter(|&asked| asked > connections),
        }
    }
}

impl fmt::Display for DescriptorPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} open files: {} client connections and {} provider calls at once \
             ({} descriptors each)",
            self.open_files, self.connections, self.calls, self.per_call
        )
    }
}

/// The provider calls under way, within the plan's cap; shared by the handlers.
#[derive(Debug, Clone)]
pub struct CallBudget {
    permits: Arc<Semaphore>,
    per_call: i64,
}

impl CallBudget {
    /// Room for `calls` provider calls of `per_call` descriptors; sets the budget gauge.
    pub fn new(plan: &DescriptorPlan) -> CallBudget {
        if let Some(gauges) = gauges() {
            gauges.budget.set(plan.budget as i64);
        }
        CallBudget {
            permits: Arc::new(Semaphore::new(plan.calls.min(Semaphore::MAX_PERMITS))),
            per_call: plan.per_call as i64,
        }
    }

    /// No cap: for a router built by hand, with no plan.
    pub fn unlimited() -> CallBudget {
        CallBudget {
            permits: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            per_call: 1,
        }
    }

    /// A provider call's room, held until the call's answer is read to its end or dropped;
    /// `None` when every room is taken.
    pub fn try_call(&self) -> Option<CallRoom> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        in_use(Use::ProviderCalls, self.per_call);
        Some(CallRoom {
            _permit: permit,
            per_call: self.per_call,
        })
    }
}

/// The room of one provider call in the budget.
#[derive(Debug)]
pub struct CallRoom {
    _permit: OwnedSemaphorePermit,
    per_call: i64,
}

impl Drop for CallRoom {
    fn drop(&mut self) {
        in_use(Use::ProviderCalls, -self.per_call);
    }
}

/// What a descriptor of the budget is used for: the `use` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// An open client connection.
    ClientConnections,
    /// A provider call under way.
    ProviderCalls,
}

/// Adds `delta` descriptors to those in use for `what`.
pub fn in_use(what: Use, delta: i64) {
    if let Some(gauges) = gauges() {
        let label = match what {
            Use::ClientConnections => "client_connections",
            Use::ProviderCalls => "provider_calls",
        };
        gauges.in_use.with_label_values(&[label]).add(delta);
    }
}

/// The gauges' names.
pub const DESCRIPTOR_BUDGET: &str = "gateway_descriptor_budget";
/// See [`DESCRIPTOR_BUDGET`].
pub const DESCRIPTORS_IN_USE: &str = "gateway_descriptors_in_use";

struct Gauges {
    budget: IntGauge,
    in_use: IntGaugeVec,
}

/// The process's gauges, registered in the default registry on first use; `None` (said once on
/// the log) if it refused them.
fn gauges() -> Option<&'static Gauges> {
    static GAUGES: OnceLock<Option<Gauges>> = OnceLock::new();
    GAUGES
        .get_or_init(|| {
            let made = (|| {
                let budget = IntGauge::new(
                    DESCRIPTOR_BUDGET,
                    "File descriptors the gateway plans its connections and provider calls \
                     with: the open-file limit less a reserve.",
                )?;
                let in_use = IntGaugeVec::new(
                    Opts::new(
                        DESCRIPTORS_IN_USE,
                        "File descriptors of the budget in use, by use: client_connections, \
                         provider_calls.",
                    ),
                    &["use"],
                )?;
                prometheus::register(Box::new(budget.clone()))?;
                prometheus::register(Box::new(in_use.clone()))?;
                Ok::<_, prometheus::Error>(Gauges { budget, in_use })
            })();
            made.inspect_err(|e| {
                log::error!("gateway: the descriptor budget's gauges are not exposed: {e}")
            })
            .ok()
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_and_calls_fit_the_limit_with_the_reserve() {
        for (open_files, asked, per_call) in [
            (4096, Some(10_000), 2),
            (20_000, Some(10_000), 2),
            (1_048_576, Some(10_000), 1),
            (1024, None, 1),
        ] {
            let plan = DescriptorPlan::new(open_files, asked, per_call);
            let reserve = RESERVED + IDLE_PROVIDER_CONNECTIONS as u64 * per_call;
            let used = plan.connections as u64 + plan.calls as u64 * per_call;
            assert!(used + reserve <= open_files, "{plan}");
            assert!(plan.calls >= plan.connections / 2, "{plan}");
        }
        let plan = DescriptorPlan::new(4096, Some(10_000), 2);
        assert_eq!(plan.connections_lowered_from, Some(10_000));
        assert_eq!((plan.connections, plan.calls), (1736, 868));
        // A limit that fits what is asked keeps it.
        let plan = DescriptorPlan::new(1_048_576, Some(10_000), 1);
        assert_eq!(plan.connections, 10_000);
        assert_eq!(plan.connections_lowered_from, None);
    }
}
