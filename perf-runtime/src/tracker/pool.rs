//! Request states are pooled: a request takes a slot and gives it back when its last handle
//! goes, so that sharing one state between a handler and its streams allocates nothing once the
//! pool is warm.
//!
//! Each thread keeps a small stack of free slots (no lock); a thread that runs dry takes a batch
//! from a process-wide stack, and one that holds too many gives a batch back there. With tokio's
//! work stealing a request often starts on one thread and ends on another, so the batches go
//! both ways; the lock is taken once per batch, never per request.

use std::cell::RefCell;
use std::sync::Mutex;

use super::state::RequestState;

/// Free slots a thread keeps before it gives a batch back.
const LOCAL_MAX: usize = 64;
/// Slots moved between a thread and the shared stack at once.
const BATCH: usize = 32;

static SHARED: Mutex<Vec<&'static RequestState>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: RefCell<Vec<&'static RequestState>> = const { RefCell::new(Vec::new()) };
}

/// A free slot: this thread's, else a batch from the shared stack, else a new one.
pub(super) fn take() -> &'static RequestState {
    let local = LOCAL.try_with(|local| {
        let mut local = local.borrow_mut();
        if local.is_empty() {
            let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
            let from = shared.len().saturating_sub(BATCH);
            local.extend(shared.drain(from..));
        }
        local.pop()
    });
    match local {
        Ok(Some(slot)) => slot,
        // A new slot (warm-up), or a thread being torn down.
        _ => Box::leak(Box::new(RequestState::empty())),
    }
}

/// Gives a slot whose last handle went back.
pub(super) fn give_back(slot: &'static RequestState) {
    let kept = LOCAL.try_with(|local| {
        let mut local = local.borrow_mut();
        if local.capacity() == 0 {
            local.reserve_exact(LOCAL_MAX + 1);
        }
        local.push(slot);
        if local.len() > LOCAL_MAX {
            let from = local.len() - BATCH;
            let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
            shared.extend(local.drain(from..));
        }
    });
    if kept.is_err() {
        SHARED.lock().unwrap_or_else(|e| e.into_inner()).push(slot);
    }
}
