//! Label values that come from outside the code (a client's model name): bounded in length and in
//! number, so that no client can grow the exposition without limit.

use std::borrow::Cow;
use std::collections::HashSet;

use super::leaked_map::LeakedMap;

/// Longest label value kept, in bytes; longer values are cut at a character boundary.
pub const MAX_LABEL_LEN: usize = 128;

/// Default number of distinct values one dynamic label (`model`, `provider`) may take.
pub const DEFAULT_LABEL_CAP: usize = 500;

/// Default number of distinct `endpoint` values named at run time (and, counted apart, of
/// `operation` values) kept: more routes than a router usually has. Endpoints named in code
/// (`#[perf_endpoint]`, an [`Endpoint`](crate::Endpoint) static) are not counted.
pub const DEFAULT_ENDPOINT_CAP: usize = 500;

/// The value that stands for every value past the cap. A client cannot send it: a value of its
/// own spelled `other` is recorded as `other_` (see [`escape_reserved`]).
pub const OVERFLOW_LABEL: &str = "other";

/// The value of the streaming no backend answered (`provider` and `model`); a client's `unknown`
/// is recorded as `unknown_`.
pub(crate) const UNKNOWN_LABEL: &str = "unknown";

/// `value`, unless it spells one of the values perf gives a meaning ([`OVERFLOW_LABEL`],
/// `unknown`), or one of them followed by underscores: then it gets one more underscore.
///
/// So a client that sends the model `other` gets a series of its own (`other_`), and never
/// lands in the series of the requests past the cap; the mapping is one-to-one (`other_` becomes
/// `other__`), so two client values never share a series either.
pub fn escape_reserved(value: &str) -> Cow<'_, str> {
    let reserved = [OVERFLOW_LABEL, UNKNOWN_LABEL].into_iter().any(|word| {
        value
            .strip_prefix(word)
            .is_some_and(|rest| rest.bytes().all(|b| b == b'_'))
    });
    if reserved {
        Cow::Owned(format!("{value}_"))
    } else {
        Cow::Borrowed(value)
    }
}

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
    /// The values admitted (a value of `()`: leaking it allocates nothing).
    admitted: LeakedMap<Box<str>, ()>,
}

impl LabelBudget {
    pub fn new(cap: usize, allowed: Option<HashSet<Box<str>>>) -> Self {
        LabelBudget {
            cap,
            allowed,
            admitted: LeakedMap::new(),
        }
    }

    /// The label value to record for `value`: itself (truncated, [reserved
    /// values](escape_reserved) escaped) while the budget lasts, [`OVERFLOW_LABEL`] after.
    pub fn admit<'a>(&self, value: &'a str) -> Cow<'a, str> {
        let value = truncate(value);
        if let Some(allowed) = &self.allowed {
            return if allowed.contains(value) {
                escape_reserved(value)
            } else {
                Cow::Borrowed(OVERFLOW_LABEL)
            };
        }
        let value = escape_reserved(value);
        let room = |len| len < self.cap;
        match self
            .admitted
            .get_or_try_make(&*value, room, |_| ((*value).into(), ()))
        {
            Some(()) => value,
            None => Cow::Borrowed(OVERFLOW_LABEL),
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
    fn a_client_cannot_send_the_reserved_values() {
        let budget = LabelBudget::new(10, None);
        assert_eq!(budget.admit(OVERFLOW_LABEL), "other_");
        assert_eq!(budget.admit("other_"), "other__");
        assert_eq!(budget.admit("unknown"), "unknown_");
        assert_eq!(budget.admit("other-model"), "other-model");
        assert_eq!(budget.admit("others"), "others");
        let listed = LabelBudget::new(10, Some(["other".into()].into_iter().collect()));
        assert_eq!(listed.admit("other"), "other_");
    }

    #[test]
    fn allow_list_admits_only_listed_values() {
        let budget = LabelBudget::new(10, Some(["gpt-4o".into()].into_iter().collect()));
        assert_eq!(budget.admit("gpt-4o"), "gpt-4o");
        assert_eq!(budget.admit("llama"), OVERFLOW_LABEL);
    }
}
