//! A provider's rate limits, as the headers of its answers state them: OpenAI's
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` and Anthropic's
//! `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`.
//! [`current::rate_limits`](crate::current::rate_limits) sets the
//! `backend_ratelimit_{remaining,limit,reset_seconds}{provider, model, resource}` gauges.

use std::time::{SystemTime, UNIX_EPOCH};

/// The `resource` label values, in the order of [`RateLimits::each`].
pub const RESOURCES: [&str; 4] = ["requests", "tokens", "input_tokens", "output_tokens"];

/// One limited resource, as far as the headers told.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limit {
    /// The limit (`x-ratelimit-limit-requests`, `anthropic-ratelimit-requests-limit`).
    pub limit: Option<u64>,
    /// What is left of it (`x-ratelimit-remaining-requests`, `…-requests-remaining`).
    pub remaining: Option<u64>,
    /// Seconds until it is replenished: OpenAI's duration (`6m0s`, `20ms`), or Anthropic's RFC
    /// 3339 time less now.
    pub reset_seconds: Option<f64>,
}

/// A provider's rate limits by resource.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RateLimits {
    /// Requests per period.
    pub requests: Limit,
    /// Tokens per period (OpenAI; Anthropic's most restrictive token limit).
    pub tokens: Limit,
    /// Input tokens per period (Anthropic).
    pub input_tokens: Limit,
    /// Output tokens per period (Anthropic).
    pub output_tokens: Limit,
}

impl RateLimits {
    /// The limits stated by `headers` (name, value); names are matched without regard to case,
    /// values that do not parse are left out. Takes any header map: with `http`'s,
    /// `headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes()))`.
    ///
    /// ```
    /// use perf_runtime::ratelimits::RateLimits;
    ///
    /// let limits = RateLimits::from_headers([
    ///     ("x-ratelimit-limit-requests", &b"500"[..]),
    ///     ("x-ratelimit-remaining-requests", b"499"),
    ///     ("x-ratelimit-reset-requests", b"1m30.5s"),
    ///     ("content-type", b"application/json"),
    /// ]);
    /// assert_eq!(limits.requests.remaining, Some(499));
    /// assert_eq!(limits.requests.reset_seconds, Some(90.5));
    /// ```
    pub fn from_headers<'a, I>(headers: I) -> RateLimits
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut limits = RateLimits::default();
        for (name, value) in headers {
            let Ok(value) = std::str::from_utf8(value) else {
                continue;
            };
            limits.header(name, value.trim());
        }
        limits
    }

    /// Whether no header stated a limit.
    pub fn is_empty(&self) -> bool {
        *self == RateLimits::default()
    }

    /// Each resource with its `resource` label, in the order of [`RESOURCES`].
    pub fn each(&self) -> impl Iterator<Item = (&'static str, &Limit)> {
        RESOURCES.into_iter().zip([
            &self.requests,
            &self.tokens,
            &self.input_tokens,
            &self.output_tokens,
        ])
    }

    fn resource(&mut self, name: &str) -> Option<&mut Limit> {
        let is = |word: &str| name.eq_ignore_ascii_case(word);
        if is("requests") {
            Some(&mut self.requests)
        } else if is("tokens") {
            Some(&mut self.tokens)
        } else if is("input-tokens") {
            Some(&mut self.input_tokens)
        } else if is("output-tokens") {
            Some(&mut self.output_tokens)
        } else {
            None
        }
    }

    /// One header, its name in any case (compared in place: nothing is allocated).
    fn header(&mut self, name: &str, value: &str) {
        let after = |prefix: &str| {
            name.get(..prefix.len())
                .filter(|head| head.eq_ignore_ascii_case(prefix))
                .map(|_| &name[prefix.len()..])
        };
        // OpenAI: x-ratelimit-<what>-<resource>; Anthropic: anthropic-ratelimit-<resource>-<what>.
        let (what, resource, anthropic) = if let Some(rest) = after("x-ratelimit-") {
            let Some((what, resource)) = rest.split_once('-') else {
                return;
            };
            (what, resource, false)
        } else if let Some(rest) = after("anthropic-ratelimit-") {
            let Some((resource, what)) = rest.rsplit_once('-') else {
                return;
            };
            (what, resource, true)
        } else {
            return;
        };
        let Some(limit) = self.resource(resource) else {
            return;
        };
        let what = |word: &str| what.eq_ignore_ascii_case(word);
        if what("limit") {
            limit.limit = value.parse().ok().or(limit.limit);
        } else if what("remaining") {
            limit.remaining = value.parse().ok().or(limit.remaining);
        } else if what("reset") {
            {
                let reset = if anthropic {
                    rfc3339_seconds(value).map(|at| (at - unix_now()).max(0.0))
                } else {
                    duration_seconds(value)
                };
                limit.reset_seconds = reset.or(limit.reset_seconds);
            }
        }
    }
}

/// OpenAI's reset duration: `1s`, `6m0s`, `20ms`, `1h2m3.5s`, or a plain number of seconds.
fn duration_seconds(value: &str) -> Option<f64> {
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then_some(seconds);
    }
    let mut total = 0.0;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&end| end > 0)?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some(total)
}

/// Seconds since the Unix epoch now.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An RFC 3339 time (`2025-01-01T00:00:30Z`, `…T00:00:30.5+01:00`) in seconds since the epoch.
fn rfc3339_seconds(value: &str) -> Option<f64> {
    let number = |s: &str| s.parse::<i64>().ok();
    let (date, time) = value.split_once(['T', 't', ' '])?;
    let mut date = date.splitn(3, '-');
    let (year, month, day) = (
        number(date.next()?)?,
        number(date.next()?)?,
        number(date.next()?)?,
    );
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => time.split_at(at),
        None => return None,
    };
    let mut clock = clock.splitn(3, ':');
    let (hour, minute) = (number(clock.next()?)?, number(clock.next()?)?);
    let second: f64 = clock.next()?.parse().ok()?;
    let offset = match offset {
        "Z" | "z" => 0,
        sign_hh_mm => {
            let sign = if sign_hh_mm.starts_with('-') { -1 } else { 1 };
            let (hh, mm) = sign_hh_mm[1..].split_once(':')?;
            sign * (number(hh)? * 3600 + number(mm)? * 60)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days since the epoch of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3600 + minute * 60 - offset) as f64 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_headers() {
        let limits = RateLimits::from_headers([
            ("X-RateLimit-Limit-Tokens", &b"30000"[..]),
            ("x-ratelimit-remaining-tokens", b"29000"),
            ("x-ratelimit-reset-tokens", b"20ms"),
            ("x-ratelimit-reset-requests", b"6m0s"),
            ("x-ratelimit-remaining-requests", b"many"),
        ]);
        assert_eq!(limits.tokens.limit, Some(30000));
        assert_eq!(limits.tokens.remaining, Some(29000));
        assert_eq!(limits.tokens.reset_seconds, Some(0.02));
        assert_eq!(limits.requests.reset_seconds, Some(360.0));
        assert_eq!(limits.requests.remaining, None);
        assert!(RateLimits::from_headers([("x-ratelimit-limit-requests", &b""[..])]).is_empty());
    }

    #[test]
    fn anthropic_headers() {
        let limits = RateLimits::from_headers([
            ("anthropic-ratelimit-input-tokens-limit", &b"40000"[..]),
            ("anthropic-ratelimit-input-tokens-remaining", b"39000"),
            ("anthropic-ratelimit-output-tokens-remaining", b"7000"),
            (
                "anthropic-ratelimit-requests-reset",
                b"2000-01-01T00:00:00Z",
            ),
        ]);
        assert_eq!(limits.input_tokens.limit, Some(40000));
        assert_eq!(limits.input_tokens.remaining, Some(39000));
        assert_eq!(limits.output_tokens.remaining, Some(7000));
        // A reset in the past is now.
        assert_eq!(limits.requests.reset_seconds, Some(0.0));
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            rfc3339_seconds("2024-02-29T12:30:15.5Z"),
            Some(1_709_209_815.5)
        );
        assert_eq!(
            rfc3339_seconds("2024-02-29T13:30:15.5+01:00"),
            Some(1_709_209_815.5)
        );
        assert_eq!(rfc3339_seconds("yesterday"), None);
        assert_eq!(duration_seconds("1h2m3.5s"), Some(3723.5));
        assert_eq!(duration_seconds("1.5"), Some(1.5));
        assert_eq!(duration_seconds("3 weeks"), None);
    }
}
