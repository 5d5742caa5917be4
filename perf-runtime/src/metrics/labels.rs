//! Label values that come from outside the code (a client's model name): bounded in length and in
//! number, so that no client can grow the exposition without limit.

use std::collections::HashSet;
use std::sync::RwLock;

/// Longest label value kept, in bytes; longer values are cut at a character boundary.
pub const MAX_LABEL_LEN: usize = 128;

/// Default number of distinct values one dynamic label (`model`, `provider`) may take.
pub const DEFAULT_LABEL_CAP: usize = 500;

/// Default number of distinct `endpoint` values named at run time (and, counted apart, of
/// `operation` values) kept: more routes than a router usually has. Endpoints named in code
/// (`#[perf_endpoint]`, an [`Endpoint`](crate::Endpoint) static) are not counted.
pub const DEFAULT_ENDPOINT_CAP: usize = 500;

/// The value that stands for every value past the cap.
pub const OVERFLOW_LABEL: &str = "other";

/// Cuts `value` to at most [`MAX_LABEL_LEN`] bytes without splitting a character.
pub fn truncate(value: &str) -> &str {
    if value.len() <= MAX_LABEL_LEN {
        return value;
    }
    let mut end = MAX_LABEL_LEN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// The distinct values admitted so far for one label, up to a cap.
pub(crate) struct LabelBudget {
    cap: usize,
    allowed: Option<HashSet<Box<str>>>,
    admitted: RwLock<HashSet<Box<str>>>,
}

impl LabelBudget {
    pub fn new(cap: usize, allowed: Option<HashSet<Box<str>>>) -> Self {
        LabelBudget {
            cap,
            allowed,
            admitted: RwLock::new(HashSet::new()),
        }
    }

    /// The label value to record for `value`: itself (truncated) while the budget lasts,
    /// [`OVERFLOW_LABEL`] after.
    pub fn admit<'a>(&self, value: &'a str) -> &'a str {
        let value = truncate(value);
        if let Some(allowed) = &self.allowed {
            return if allowed.contains(value) {
                value
            } else {
                OVERFLOW_LABEL
            };
        }
        let read = self.admitted.read().unwrap_or_else(|e| e.into_inner());
        if read.contains(value) {
            return value;
        }
        let full = read.len() >= self.cap;
        drop(read);
        if full {
            return OVERFLOW_LABEL;
        }
        let mut write = self.admitted.write().unwrap_or_else(|e| e.into_inner());
        if write.len() < self.cap || write.contains(value) {
            write.insert(value.into());
            value
        } else {
            OVERFLOW_LABEL
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_a_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_LABEL_LEN);
        assert_eq!(cut.len(), 128);
        assert_eq!(truncate("gpt-4o"), "gpt-4o");
    }

    #[test]
    fn overflow_goes_to_other() {
        let budget = LabelBudget::new(2, None);
        assert_eq!(budget.admit("a"), "a");
        assert_eq!(budget.admit("b"), "b");
        assert_eq!(budget.admit("c"), OVERFLOW_LABEL);
        assert_eq!(budget.admit("a"), "a");
    }

    #[test]
    fn allow_list_admits_only_listed_values() {
        let budget = LabelBudget::new(10, Some(["gpt-4o".into()].into_iter().collect()));
        assert_eq!(budget.admit("gpt-4o"), "gpt-4o");
        assert_eq!(budget.admit("llama"), OVERFLOW_LABEL);
    }
}
