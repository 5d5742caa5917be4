//! Support for the macros' expansions. Not a public API: it may change in any release.

/// Wraps a value to ask, by autoref specialization, whether it means the backend answered.
pub struct Answer<'a, T>(pub &'a T);

/// An `Err` means no first byte came: the call failed before answering.
pub trait ResultAnswer {
    /// Whether the backend answered.
    fn answered(&self) -> bool;
}

impl<T, E> ResultAnswer for Answer<'_, Result<T, E>> {
    fn answered(&self) -> bool {
        self.0.is_ok()
    }
}

/// Any other value means the call completed: the backend answered.
pub trait AnyAnswer {
    /// Whether the backend answered.
    fn answered(&self) -> bool;
}

impl<T> AnyAnswer for &Answer<'_, T> {
    fn answered(&self) -> bool {
        true
    }
}
