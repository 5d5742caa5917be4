//! The mock's rate limits, stated as OpenAI states them on every answer:
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`. Each model has a budget of
//! [`REQUESTS_PER_MINUTE`] requests (`--mock-requests-per-minute`) and [`TOKENS_PER_REQUEST`]
//! tokens (prompt and completion) for each of them a minute; the model [`DRAIN_MODEL`] has a small one ([`DRAIN_REQUESTS`] requests), which a few
//! requests run down: past it, the mock answers 429 (`rate_limit_exceeded`), with the headers.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

/// Requests a model may take a minute.
pub const REQUESTS_PER_MINUTE: u64 = 10_000;
/// Tokens a model may take a minute, for each request it may take.
pub const TOKENS_PER_REQUEST: u64 = 200;
/// The model whose limits a few requests run down (`fault:drain`).
pub const DRAIN_MODEL: &str = "fault:drain";
/// Requests [`DRAIN_MODEL`] may take a minute.
pub const DRAIN_REQUESTS: u64 = 10;
/// Tokens [`DRAIN_MODEL`] may take a minute.
pub const DRAIN_TOKENS: u64 = 10_000;

const WINDOW: Duration = Duration::from_secs(60);

/// What each model took in the current minute, and what it may take.
#[derive(Debug)]
pub(super) struct Limits {
    used: Mutex<HashMap<String, Window>>,
    requests_per_minute: u64,
}

#[derive(Debug)]
struct Window {
    began: Instant,
    requests: u64,
    tokens: u64,
}

impl Limits {
    /// Limits of `requests_per_minute` requests a model, and [`TOKENS_PER_REQUEST`] tokens for
    /// each.
    pub fn new(requests_per_minute: u64) -> Self {
        Limits {
            used: Mutex::default(),
            requests_per_minute,
        }
    }

    /// `model` takes a request of `tokens`: `Ok` with the headers to send, or `Err` with the
    /// headers of a 429 when its budget is spent.
    pub fn take(&self, model: &str, tokens: u64) -> Result<Headers, Headers> {
        let (request_limit, token_limit) = if model == DRAIN_MODEL {
            (DRAIN_REQUESTS, DRAIN_TOKENS)
        } else {
            let requests = self.requests_per_minute;
            (requests, requests.saturating_mul(TOKENS_PER_REQUEST))
        };
        let now = Instant::now();
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let window = used.entry(model.to_owned()).or_insert(Window {
            began: now,
            requests: 0,
            tokens: 0,
        });
        if now.duration_since(window.began) >= WINDOW {
            *window = Window {
                began: now,
                requests: 0,
                tokens: 0,
            };
        }
        let spent = window.requests >= request_limit || window.tokens >= token_limit;
        if !spent {
            window.requests += 1;
            window.tokens = (window.tokens + tokens).min(token_limit);
        }
        let reset = WINDOW.saturating_sub(now.duration_since(window.began));
        let headers = Headers {
            limits: [request_limit, token_limit],
            remaining: [request_limit - window.requests, token_limit - window.tokens],
            reset_ms: reset.as_millis() as u64,
        };
        if spent {
            Err(headers)
        } else {
            Ok(headers)
        }
    }
}

/// The rate-limit headers of one answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Headers {
    limits: [u64; 2],
    remaining: [u64; 2],
    reset_ms: u64,
}

impl Headers {
    /// Puts the headers on `response`.
    pub fn stamp(self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        let reset = format!("{}ms", self.reset_ms);
        for (i, resource) in ["requests", "tokens"].into_iter().enumerate() {
            let values = [
                ("limit", self.limits[i].to_string()),
                ("remaining", self.remaining[i].to_string()),
                ("reset", reset.clone()),
            ];
            for (what, value) in values {
                let name = format!("x-ratelimit-{what}-{resource}");
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    headers.insert(name, value);
                }
            }
        }
        response
    }

    /// A 429 with these headers, as OpenAI answers a spent limit.
    pub fn too_many(self) -> Response {
        self.stamp(super::fault::status_answer(
            StatusCode::TOO_MANY_REQUESTS,
            false,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_model_runs_its_limits_down() {
        let limits = Limits::new(REQUESTS_PER_MINUTE);
        for taken in 1..=DRAIN_REQUESTS {
            let headers = limits.take(DRAIN_MODEL, 100).expect("within the limit");
            assert_eq!(
                headers.remaining,
                [DRAIN_REQUESTS - taken, DRAIN_TOKENS - taken * 100]
            );
        }
        let spent = limits.take(DRAIN_MODEL, 100).expect_err("spent");
        assert_eq!(spent.remaining[0], 0);
        let other = limits.take("gpt-4o", 100).expect("its own budget");
        assert_eq!(
            other.remaining,
            [
                REQUESTS_PER_MINUTE - 1,
                REQUESTS_PER_MINUTE * TOKENS_PER_REQUEST - 100
            ]
        );
    }

    #[test]
    fn a_raised_limit_lets_a_load_test_through() {
        let limits = Limits::new(1_000_000);
        for _ in 0..20_000 {
            limits.take("gpt-4o", 150).expect("within the raised limit");
        }
        let spent = Limits::new(2);
        spent.take("gpt-4o", 1).unwrap();
        spent.take("gpt-4o", 1).unwrap();
        let refused = spent.take("gpt-4o", 1).expect_err("past 2 a minute");
        assert_eq!(refused.limits, [2, 2 * TOKENS_PER_REQUEST]);
    }
}
