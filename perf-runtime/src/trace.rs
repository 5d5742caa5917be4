//! Trace ids: what links a histogram bucket's exemplar to one request.
//!
//! Every request has one: the id of the W3C `traceparent` header the client sent (the handler
//! hands it over with [`current::set_trace_id`](crate::current::set_trace_id)), else a random one
//! made when the request starts. The buckets a request lands in keep it as their latest exemplar,
//! so a dot on a latency graph leads to the request's trace.

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU128;

/// A W3C trace id: 16 bytes, never all zero, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(NonZeroU128);

impl TraceId {
    /// The trace id of a W3C `traceparent` header (`00-<trace id>-<parent id>-<flags>`), or
    /// `None` if the header is not a valid one (a future version's header is read by its first
    /// four fields, as the W3C recommendation asks).
    ///
    /// ```
    /// # use perf_runtime::TraceId;
    /// let id = TraceId::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    /// assert_eq!(id.unwrap().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert_eq!(TraceId::from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
    /// ```
    pub fn from_traceparent(header: &str) -> Option<TraceId> {
        let mut fields = header.trim().split('-');
        let (version, trace, parent, flags) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let more = fields.next().is_some();
        let valid = hex(version, 2).is_some_and(|v| v != 0xff && (v != 0 || !more))
            && hex(parent, 16).is_some_and(|p| p != 0)
            && hex(flags, 2).is_some();
        if !valid {
            return None;
        }
        hex(trace, 32).and_then(TraceId::from_u128)
    }

    /// The trace id with this value, `None` for 0 (the invalid id).
    pub fn from_u128(id: u128) -> Option<TraceId> {
        NonZeroU128::new(id).map(TraceId)
    }

    /// A new random trace id (from a per-thread generator seeded by the OS: fast, unique in
    /// practice, not for secrets).
    pub fn random() -> TraceId {
        let id = u128::from(next_random()) << 64 | u128::from(next_random());
        TraceId::from_u128(id).unwrap_or(TraceId(NonZeroU128::MIN))
    }

    /// The id as a number.
    pub fn as_u128(self) -> u128 {
        self.0.get()
    }

    /// A `traceparent` header for a call made on behalf of this trace: this id, a new random
    /// parent (span) id, sampled.
    ///
    /// ```
    /// # use perf_runtime::TraceId;
    /// let id = TraceId::random();
    /// assert_eq!(TraceId::from_traceparent(&id.traceparent()), Some(id));
    /// ```
    pub fn traceparent(self) -> String {
        let mut header = String::with_capacity(55);
        header.push_str("00-");
        header.push_str(hex_digits(self.as_u128(), &mut [0; 32]));
        header.push('-');
        header.push_str(hex_digits(u128::from(next_random().max(1)), &mut [0; 16]));
        header.push_str("-01");
        header
    }
}

/// The last `digits.len()` lowercase hex digits of `value`, written into `digits`. A gateway
/// writes three ids per request (its answer's `traceparent` and `x-trace-id`, the provider's
/// `traceparent`): a table lookup per digit, not the formatting machinery's hundreds of
/// instructions.
fn hex_digits<const N: usize>(mut value: u128, digits: &mut [u8; N]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for digit in digits.iter_mut().rev() {
        *digit = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
    std::str::from_utf8(digits).unwrap_or_default()
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(hex_digits(self.as_u128(), &mut [0; 32]))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

/// `text` as a number if it is exactly `digits` lowercase hex digits.
fn hex(text: &str, digits: usize) -> Option<u128> {
    let lowercase_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    (text.len() == digits && text.bytes().all(lowercase_hex))
        .then(|| u128::from_str_radix(text, 16).ok())
        .flatten()
}

/// wyrand: one multiply per number, a state per thread seeded from the OS' randomness.
fn next_random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()));
    }
    STATE
        .try_with(|state| {
            let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
            state.set(s);
            let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
            (t >> 64) as u64 ^ t as u64
        })
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_valid_traceparent_headers() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let ok = |h: &str| TraceId::from_traceparent(h).map(|t| t.to_string());
        assert_eq!(
            ok(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(),
            Some(id)
        );
        assert_eq!(
            ok(&format!("cc-{id}-00f067aa0ba902b7-01-more")).as_deref(),
            Some(id)
        );
        for bad in [
            format!("00-{id}-00f067aa0ba902b7-01-more"),
            format!("ff-{id}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase()),
            format!("00-{id}-0000000000000000-01"),
            format!("00-{id}-00f067aa0ba902b7"),
            format!("00-{}-00f067aa0ba902b7-01", &id[1..]),
            "00-+bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01".to_string(),
            String::new(),
        ] {
            assert_eq!(ok(&bad), None, "{bad}");
        }
    }

    #[test]
    fn random_ids_differ_and_round_trip() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| TraceId::random()).collect();
        assert_eq!(ids.len(), 1000);
        let id = TraceId::random();
        assert_eq!(TraceId::from_traceparent(&id.traceparent()), Some(id));
    }

    #[test]
    fn ids_are_written_as_32_lowercase_hex_digits() {
        for value in [1, 0xabc, u128::from(u64::MAX), u128::MAX, 0x4bf9_2f35 << 96] {
            let id = TraceId::from_u128(value).unwrap();
            assert_eq!(id.to_string(), format!("{value:032x}"));
            let header = id.traceparent();
            let fields: Vec<&str> = header.split('-').collect();
            assert_eq!(fields.len(), 4, "{header}");
            assert_eq!(
                (fields[0], fields[1], fields[3]),
                ("00", &*id.to_string(), "01")
            );
            assert_eq!(fields[2].len(), 16);
            assert_ne!(u64::from_str_radix(fields[2], 16), Ok(0));
        }
    }
}
