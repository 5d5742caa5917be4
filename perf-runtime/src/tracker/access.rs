//! How a caller changes a request's words: with locked operations, as it must while anything
//! else may reach the request, or with plain loads and stores where every handle the request
//! has is on the caller's thread and borrowed by nothing (`RequestState::access_with`): nothing
//! else can reach the state meanwhile, and whatever reaches it later gets there through a
//! handle made afterwards, on this thread.
//!
//! Both keep the words atomic, so a caller that is wrong about being alone loses an update at
//! worst, never memory safety.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, Ordering::*};

/// How a caller may change a request's words.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Access {
    /// Others may change them meanwhile: locked operations.
    Shared,
    /// Every handle of the request is on the caller's thread: plain loads and stores.
    Alone,
}

impl Access {
    /// Adds `n` to `word`; the value before.
    #[inline]
    pub fn add(self, word: &AtomicU64, n: u64) -> u64 {
        match self {
            Access::Shared => word.fetch_add(n, AcqRel),
            Access::Alone => {
                let before = word.load(Relaxed);
                word.store(before.wrapping_add(n), Relaxed);
                before
            }
        }
    }

    /// Subtracts `n` from `word`; the value before.
    #[inline]
    pub fn sub(self, word: &AtomicU64, n: u64) -> u64 {
        self.add(word, n.wrapping_neg())
    }

    /// Sets the bits `bits` in `word`, unless they are set already.
    #[inline]
    pub fn set_bits(self, word: &AtomicU32, bits: u32) {
        let before = word.load(Relaxed);
        if before & bits == bits {
            return;
        }
        match self {
            Access::Shared => {
                word.fetch_or(bits, Relaxed);
            }
            Access::Alone => word.store(before | bits, Relaxed),
        }
    }

    /// Makes `word` at least `value`.
    #[inline]
    pub fn raise(self, word: &AtomicU64, value: u64) {
        self.keep(word, value, u64::max, AtomicU64::fetch_max);
    }

    /// Makes `word` at most `value`.
    #[inline]
    pub fn lower(self, word: &AtomicU64, value: u64) {
        self.keep(word, value, u64::min, AtomicU64::fetch_min);
    }

    /// Sets `word` to `pick` of it and `value`: `locked` does it as one locked operation.
    #[inline(always)]
    fn keep(
        self,
        word: &AtomicU64,
        value: u64,
        pick: fn(u64, u64) -> u64,
        locked: fn(&AtomicU64, u64, Ordering) -> u64,
    ) {
        match self {
            Access::Shared => {
                locked(word, value, Relaxed);
            }
            Access::Alone => word.store(pick(word.load(Relaxed), value), Relaxed),
        }
    }

    /// Sets `word` to `value` if it is 0.
    #[inline]
    pub fn set_once(self, word: &AtomicU64, value: u64) {
        match self {
            Access::Shared => {
                let _ = word.compare_exchange(0, value, Relaxed, Relaxed);
            }
            Access::Alone => {
                if word.load(Relaxed) == 0 {
                    word.store(value, Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_accesses_change_a_word_alike() {
        for access in [Access::Shared, Access::Alone] {
            let word = AtomicU64::new(5);
            assert_eq!(access.add(&word, 3), 5);
            assert_eq!(access.sub(&word, 2), 8);
            access.raise(&word, 4);
            access.lower(&word, 9);
            assert_eq!(word.load(Relaxed), 6);
            access.raise(&word, 10);
            access.lower(&word, 7);
            assert_eq!(word.load(Relaxed), 7);
            access.set_once(&word, 1);
            assert_eq!(word.load(Relaxed), 7);
            let zero = AtomicU64::new(0);
            access.set_once(&zero, 4);
            access.set_once(&zero, 5);
            assert_eq!(zero.load(Relaxed), 4);
            let flags = AtomicU32::new(0);
            access.set_bits(&flags, 0b101);
            access.set_bits(&flags, 0b1);
            assert_eq!(flags.load(Relaxed), 0b101);
        }
    }
}
