//! An exchange's endpoint from its route template, without a lock or a hash once seen: each
//! thread keeps the endpoints it met last.

use std::cell::RefCell;

use crate::metrics::{EndpointMetrics, Metrics};

/// Endpoints a thread keeps at hand: a router's routes, or the busiest of them.
const KEPT: usize = 16;

thread_local! {
    static RECENT: RefCell<[Option<&'static EndpointMetrics>; KEPT]> =
        const { RefCell::new([None; KEPT]) };
}

/// The endpoint of `path` in `metrics`.
#[inline]
pub(super) fn endpoint(metrics: &'static Metrics, path: &str) -> &'static EndpointMetrics {
    let found = RECENT.try_with(|recent| {
        let mut recent = recent.borrow_mut();
        let hit = recent.iter().position(|kept| {
            kept.is_some_and(|e| std::ptr::eq(e.metrics, metrics) && e.path() == path)
        });
        match hit {
            // Moved to the front: the busiest routes are found first.
            Some(at) => {
                recent[..=at].rotate_right(1);
                recent[0]
            }
            None => {
                let made = metrics.endpoint(path);
                recent.rotate_right(1);
                recent[0] = Some(made);
                Some(made)
            }
        }
    });
    match found {
        Ok(Some(endpoint)) => endpoint,
        _ => metrics.endpoint(path),
    }
}
