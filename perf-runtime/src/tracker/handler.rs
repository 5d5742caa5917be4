//! The handler's share of its request: what a [`PerformanceTracker`](super::PerformanceTracker)
//! and a [`Run`](super::Run) hold. Dropped before the handler let go of the request, it lets go
//! as the drop means: cancelled (the client went away), panicked, or, for a tracker of
//! [`track_request_stages`](crate::track_request_stages), ended.

use super::pool::StateRef;
use super::state::{HandlerExit, RequestState};

/// A handle on a request, and what dropping it means.
pub(crate) struct HandlerShare {
    state: StateRef,
    role: Role,
}

/// What dropping a share means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The handler's share: dropped before the end, the request was cancelled (or, with
    /// `ends_on_drop`, ended).
    Handler { ends_on_drop: bool },
    /// A look at the current request (`current::with`): dropping it does nothing.
    View,
}

impl HandlerShare {
    /// The handler's share of a new request.
    #[inline]
    pub fn new(state: StateRef) -> Self {
        HandlerShare {
            state,
            role: Role::Handler {
                ends_on_drop: false,
            },
        }
    }

    /// A look at a request another owns: it neither ends nor cancels it.
    #[inline]
    pub fn view(state: StateRef) -> Self {
        HandlerShare {
            state,
            role: Role::View,
        }
    }

    /// Ends the request when dropped (outside a panic).
    pub fn ending_on_drop(mut self) -> Self {
        self.role = Role::Handler { ends_on_drop: true };
        self
    }

    #[inline]
    pub fn state(&self) -> &RequestState {
        &self.state
    }

    #[inline]
    pub fn state_ref(&self) -> &StateRef {
        &self.state
    }

    /// The handler lets go, as `exit` says, if this is its share (a view does nothing).
    #[inline]
    pub fn release(&self, exit: HandlerExit) {
        if let Role::Handler { .. } = self.role {
            self.state.release_handler(exit);
        }
    }
}

impl Drop for HandlerShare {
    #[inline]
    fn drop(&mut self) {
        let Role::Handler { ends_on_drop } = self.role else {
            return;
        };
        if self.state.handler_gone() {
            return;
        }
        let exit = if self.state.is_panicking() {
            HandlerExit::Panicked
        } else if ends_on_drop {
            HandlerExit::Returned(true)
        } else {
            HandlerExit::Cancelled
        };
        self.state.release_handler(exit);
    }
}
