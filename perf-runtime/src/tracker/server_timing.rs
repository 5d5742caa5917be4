//! The `Server-Timing` header of a request so far: the time of each stage it ran, and of its
//! backend, from the request's own tallies.

use std::sync::atomic::Ordering::Relaxed;

use super::state::RequestState;
use crate::clock::ticks_to_ns;
use crate::stage::Stage;

impl RequestState {
    /// The `Server-Timing` header value of the request so far: each stage that ran (but the
    /// backend's and the streaming's, which go as one `backend` entry), in milliseconds.
    pub fn server_timing(&self) -> String {
        // Room for the built-in stages and the backend: one allocation.
        let mut out = String::with_capacity(192);
        let mut entry = |name: &str, ns: u64| {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(name);
            out.push_str(";dur=");
            push_millis(&mut out, ns);
        };
        for (id, time) in self.stage_ticks.iter().enumerate() {
            let ns = ticks_to_ns(time.load(Relaxed));
            let stage = Stage::from_index(id);
            if ns > 0 && stage != Stage::BACKEND_FETCH && stage != Stage::STREAM_PROCESSING {
                entry(stage.name(), ns);
            }
        }
        let backend = ticks_to_ns(self.backend_ticks());
        if backend > 0 {
            entry("backend", backend);
        }
        out
    }
}

/// Appends `ns` in milliseconds with three decimals (`0.041`, `501.700`), rounded to the
/// microsecond. Written digit by digit: formatting an `f64` took about 1,000 instructions an
/// entry, and with the string's growth a third of what instrumentation added to a JSON request
/// of the example gateway (`benches/end-to-end-instructions.sh`).
fn push_millis(out: &mut String, ns: u64) {
    let micros = ns.saturating_add(500) / 1000;
    // The whole milliseconds, last digit first (u64::MAX µs has 17 of them), then the three
    // decimals.
    let mut whole = [0u8; 20];
    let mut at = whole.len();
    let mut rest = micros / 1000;
    loop {
        at -= 1;
        whole[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend(whole[at..].iter().map(|&digit| char::from(digit)));
    out.push('.');
    let decimals = micros % 1000;
    for unit in [100, 10, 1] {
        out.push(char::from(b'0' + (decimals / unit % 10) as u8));
    }
}

#[cfg(test)]
mod tests {
    use super::push_millis;

    #[test]
    fn milliseconds_are_written_as_the_float_formatting_writes_them() {
        let values = crate::metrics::test_values::values(3000, [1_000_000, 999_999_500], 20_000);
        for ns in values {
            // Below 2^50 ns an f64 holds the value exactly; at a half microsecond the two
            // roundings may differ.
            if ns >= 1 << 50 || (499..=501).contains(&(ns % 1000)) {
                continue;
            }
            let mut ours = String::new();
            push_millis(&mut ours, ns);
            assert_eq!(ours, format!("{:.3}", ns as f64 / 1e6), "{ns}");
        }
        let mut longest = String::new();
        push_millis(&mut longest, u64::MAX);
        assert_eq!(longest, "18446744073709.551");
    }
}
