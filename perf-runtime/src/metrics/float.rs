//! Series of fractional values: a counter of US dollars, a gauge set to the latest value a
//! provider reported. One atomic word each: they change once per backend call (a usage report,
//! a response's rate-limit headers), not once per chunk, so they are not sharded.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::family::Series;
use super::reading::{Extras, Kind, Value};

/// A monotonic sum of non-negative `f64`s (`backend_cost_usd_total`): a compare-and-swap loop
/// over the value's bits.
pub(crate) struct FloatCounter(AtomicU64);

impl FloatCounter {
    pub fn new() -> Self {
        FloatCounter(AtomicU64::new(0f64.to_bits()))
    }

    /// Adds `value`; a negative, infinite or NaN value is ignored (a counter only grows).
    #[inline]
    pub fn add(&self, value: f64) {
        if !(value.is_finite() && value > 0.0) {
            return;
        }
        let _ = self.0.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }

    /// The sum so far.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }
}

impl Series for FloatCounter {
    const KIND: Kind = Kind::Counter;

    fn read(&self, _: Extras, push: &mut dyn FnMut(Option<(&'static str, &'static str)>, Value)) {
        push(None, Value::Counter(self.get()));
    }
}

/// A gauge set to the latest value (`backend_ratelimit_remaining`).
pub(crate) struct Gauge(AtomicU64);

impl Gauge {
    pub fn new() -> Self {
        Gauge(AtomicU64::new(0f64.to_bits()))
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Relaxed);
    }

    /// The value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }
}

impl Series for Gauge {
    const KIND: Kind = Kind::Gauge;

    fn read(&self, _: Extras, push: &mut dyn FnMut(Option<(&'static str, &'static str)>, Value)) {
        push(None, Value::Gauge(self.get()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_adds_and_ignores_what_would_make_it_shrink() {
        let counter = FloatCounter::new();
        counter.add(0.25);
        counter.add(0.5);
        counter.add(-1.0);
        counter.add(f64::NAN);
        assert_eq!(counter.get(), 0.75);
        let gauge = Gauge::new();
        gauge.set(42.0);
        gauge.set(7.0);
        assert_eq!(gauge.get(), 7.0);
    }
}
