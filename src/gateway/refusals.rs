//! The requests the gateway refused to protect itself, by reason: a body too slow (408), no room
//! left in its file-descriptor budget (503). A family of the gateway's own, next to perf's, in
//! the default registry: `gateway_refused_requests_total{endpoint, reason}`.

use std::sync::OnceLock;

use prometheus::{IntCounterVec, Opts};

/// The family's name.
pub const REFUSED_REQUESTS: &str = "gateway_refused_requests_total";

/// Why a request was refused: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its body did not arrive within `--body-read-timeout-ms`.
    BodyTimeout,
    /// Its body came slower than `--body-min-rate`.
    BodyTooSlow,
    /// Its provider call did not fit the gateway's file-descriptor budget.
    OverCapacity,
}

impl Reason {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Reason::BodyTimeout => "body_timeout",
            Reason::BodyTooSlow => "body_too_slow",
            Reason::OverCapacity => "over_capacity",
        }
    }
}

/// Counts one request of `endpoint` (a route template: bounded) refused for `reason`.
pub fn count(endpoint: &str, reason: Reason) {
    if let Some(family) = family() {
        family.with_label_values(&[endpoint, reason.label()]).inc();
    }
}

/// How many requests of `endpoint` were refused for `reason` so far in this process.
pub fn counted(endpoint: &str, reason: Reason) -> u64 {
    family().map_or(0, |f| {
        f.with_label_values(&[endpoint, reason.label()]).get()
    })
}

/// The family, registered in the default registry on first use; `None` (said once on the log)
/// if that registry refused it, and the gateway goes on without.
fn family() -> Option<&'static IntCounterVec> {
    static FAMILY: OnceLock<Option<IntCounterVec>> = OnceLock::new();
    FAMILY
        .get_or_init(|| {
            let opts = Opts::new(
                REFUSED_REQUESTS,
                "Requests the gateway refused to protect itself, by reason: body_timeout and \
                 body_too_slow (408), over_capacity (503).",
            );
            let made = IntCounterVec::new(opts, &["endpoint", "reason"])
                .and_then(|f| prometheus::register(Box::new(f.clone())).map(|()| f));
            match made {
                Ok(family) => Some(family),
                Err(e) => {
                    log::error!("gateway: {REFUSED_REQUESTS} is not counted: {e}");
                    None
                }
            }
        })
        .as_ref()
}
