//! The endpoints a [`Metrics`] knows: [`Endpoint`], the handle a `static` holds; the table of
//! endpoints named at run time, capped; and a per-thread cache of the paths resolved lately.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::endpoint::EndpointMetrics;
use super::known;
use super::labels::{self, OVERFLOW_LABEL};
use super::leaked_map::LeakedMap;
use super::Metrics;

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
