//! Request states are pooled: a request takes a slot and gives it back when its last handle
//! (a [`StateRef`]) goes, so that sharing one state between a handler and its streams allocates
//! nothing once the pool is warm.
//!
//! Each thread keeps a small list of free slots (no lock), linked through the slots themselves
//! (a thread-local head and count: no destructor to register, so reaching it is one load); a
//! thread that runs dry takes a batch from a process-wide stack, and one that holds too many
//! gives a batch back there. With tokio's work stealing a request often starts on one thread and
//! ends on another, so the batches go both ways; the lock is taken once per batch, never per
//! request.

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;

use super::access::Access;
use super::state::{HandlerExit, RequestState, HANDOFF, OWNER, REF};
use crate::metrics::EndpointMetrics;

/// Free slots a thread keeps before it gives a batch back.
const LOCAL_MAX: usize = 64;
/// Slots moved between a thread and the shared stack at once.
const BATCH: usize = 32;

static SHARED: Mutex<Vec<&'static RequestState>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's free slots: the first (linked to the next by `RequestState::next_free`)
    /// and how many there are.
    static LOCAL: Cell<(*const RequestState, usize)> = const { Cell::new((ptr::null(), 0)) };
}

/// A free slot: this thread's, else a batch from the shared stack, else a new one.
fn take() -> &'static RequestState {
    let local = LOCAL.try_with(|local| {
        let (mut first, mut count) = local.get();
        if first.is_null() {
            let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
            let from = shared.len().saturating_sub(BATCH);
            for slot in shared.drain(from..) {
                slot.next_free.store(first.cast_mut(), Relaxed);
                first = slot;
                count += 1;
            }
        }
        // SAFETY: null or a leaked slot (so `'static`), linked by this thread alone.
        let slot: &'static RequestState = unsafe { first.as_ref() }?;
        local.set((slot.next_free.load(Relaxed), count.saturating_sub(1)));
        Some(slot)
    });
    match local {
        Ok(Some(slot)) => slot,
        // A new slot (warm-up), or a thread being torn down.
        _ => Box::leak(Box::new(RequestState::empty())),
    }
}

/// Gives a slot whose last handle went back.
fn give_back(slot: &'static RequestState) {
    let kept = LOCAL.try_with(|local| {
        let (first, count) = local.get();
        slot.next_free.store(first.cast_mut(), Relaxed);
        if count < LOCAL_MAX {
            local.set((slot, count + 1));
            return;
        }
        // Too many: the first BATCH go to the shared stack.
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        let mut next: *const RequestState = slot;
        for _ in 0..BATCH {
            // SAFETY: the list holds LOCAL_MAX + 1 > BATCH leaked slots.
            let moved: &'static RequestState = unsafe { &*next };
            next = moved.next_free.load(Relaxed);
            shared.push(moved);
        }
        local.set((next, count + 1 - BATCH));
    });
    if kept.is_err() {
        SHARED.lock().unwrap_or_else(|e| e.into_inner()).push(slot);
    }
}

/// A counted reference to a request's state: the slot goes back to the pool when the last one
/// is dropped.
pub(crate) struct StateRef(&'static RequestState);

impl StateRef {
    /// A new request of `endpoint`, owned by its handler.
    #[inline]
    pub fn new(endpoint: &'static EndpointMetrics) -> Self {
        let slot = take();
        slot.reset(endpoint, false);
        StateRef(slot)
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    /// A new request of `endpoint` that is the layer's HTTP exchange: its response body decides
    /// how it ends.
    #[inline]
    pub fn exchange(endpoint: &'static EndpointMetrics) -> Self {
        let slot = take();
        slot.reset(endpoint, true);
        StateRef(slot)
    }
}

impl StateRef {
    /// The handler hands its request to what `make` builds (a stream, with its share) and lets
    /// go of it: the request ends when that lets go.
    #[inline]
    pub fn hand_over<T>(&self, make: impl FnOnce(HandOff) -> T) -> T {
        let taker = make(self.hand_off());
        self.release_handler(HandlerExit::Returned(true));
        taker
    }

    /// A share of the request for what the handler hands it to: see
    /// [`RequestState::hand_off`].
    #[inline]
    pub fn hand_off(&self) -> HandOff {
        self.0.hand_off()
    }

    /// Lets go of a held guard's handle as `access` allows: alone (beside its enterer's
    /// handle, which stays), with a load and a store; else as any handle is dropped.
    #[inline]
    pub fn let_go(self, access: Access) {
        if access == Access::Alone {
            access.sub(&self.0.holds, REF);
            std::mem::forget(self);
        }
    }

    /// A handle the caller has already counted (a hand-off's).
    #[inline]
    fn adopt(state: &'static RequestState) -> Self {
        StateRef(state)
    }
}

impl std::ops::Deref for StateRef {
    type Target = RequestState;

    #[inline]
    fn deref(&self) -> &RequestState {
        self.0
    }
}

impl Clone for StateRef {
    #[inline]
    fn clone(&self) -> Self {
        self.0.add_ref();
        StateRef(self.0)
    }
}

impl Drop for StateRef {
    #[inline]
    fn drop(&mut self) {
        if self.0.drop_ref() {
            give_back(self.0);
        }
    }
}

/// A share of a request handed off by its handler: a handle that owns the request, and which
/// hand-off it was.
pub(crate) struct HandOff {
    pub state: StateRef,
    pub number: u32,
}

impl RequestState {
    /// What the handler hands the request to (a stream, the layer's response body) takes a
    /// share of it: a handle, an owner and its hand-off number, with one locked operation.
    #[inline]
    pub fn hand_off(&'static self) -> HandOff {
        // Its callers' handles are borrowed by nothing: a handler's, through the thread's
        // current request or a tracker given up for a stream.
        let before = self.access().add(&self.holds, REF | OWNER | HANDOFF);
        HandOff {
            state: StateRef::adopt(self),
            number: (before / HANDOFF) as u32 + 1,
        }
    }

    /// A new counted reference to the request current on this thread (which its enterer holds
    /// alive): counted alone where the enterer's handle is the request's only one.
    #[inline]
    pub fn counted(&'static self) -> StateRef {
        self.access().add(&self.holds, REF);
        StateRef(self)
    }
}
