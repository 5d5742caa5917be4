//! Property tests (proptest) over what clients control:
//!
//! * **label values**: any `provider` and `model` strings (any `char`, controls and NUL
//!   included, quotes, backslashes, newlines, up to 5 kB) under any label cap give an
//!   exposition that parses line by line, with every value cut to 128 bytes, at most `cap + 1`
//!   values per label, and exactly the counts a model of the label budget predicts;
//! * **request bodies**: any bytes, any JSON, mutated valid bodies and deep nesting given to the
//!   gateway's parser never panic, and give a request with a model or a 400.
//!
//! Bounded for CI: 256 cases per property unless `PROPTEST_CASES` says otherwise. A longer run:
//! `PROPTEST_CASES=100000 cargo test --release -p perf-fuzz --test fuzz_labels`.

use std::collections::{BTreeMap, BTreeSet};

use perf::gateway::error::ApiError;
use perf::gateway::openai::{parse, ChatRequest, OpenAiRequest, ResponsesRequest};
use perf_runtime::metrics::{MAX_LABEL_LEN, OVERFLOW_LABEL};
use perf_runtime::{exposition, Metrics, PerformanceTracker};
use perf_test_kit::check_exposition;
use prometheus::Registry;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};

const CHAT: &str = "/v1/chat/completions";

/// Cases per property: `PROPTEST_CASES`, else 256 (a bounded run for CI).
fn cases_from_env() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> Config {
    Config {
        // A failing case is printed, shrunk, and not written into the source tree.
        failure_persistence: None,
        ..Config::with_cases(cases_from_env())
    }
}

/// Characters that break naive encoders, and some that do not.
const NASTY: &[char] = &[
    '"',
    '\\',
    '\n',
    '\r',
    '\t',
    '\0',
    '{',
    '}',
    '=',
    ',',
    '#',
    ' ',
    'n',
    'a',
    'é',
    '🚀',
    '\u{202e}',
    '\u{feff}',
    '\u{2028}',
    '\u{85}',
    '\u{7f}',
    '\u{fffe}',
    '\u{10ffff}',
];

/// A label value a client could send.
fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        // Any characters at all, controls included.
        vec(any::<char>(), 0..40).prop_map(|chars| chars.into_iter().collect()),
        // Dense in the characters that need escaping, past the 128-byte cut.
        vec(select(NASTY), 0..300).prop_map(|chars| chars.into_iter().collect()),
        // A few values, so that some repeat and the cap is reached.
        select(&["gpt-4o", "other", "unknown", "", "\"", "\\", "\n"][..]).prop_map(String::from),
        // 5 kB: long runs cut on a character boundary.
        (select(NASTY), 1000usize..5000).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// `value` cut to [`MAX_LABEL_LEN`] bytes on a character boundary, as the runtime documents.
fn cut(value: &str) -> String {
    let mut end = value.len().min(MAX_LABEL_LEN);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

/// The label budget as documented: the first `cap` distinct (cut) values are kept, every
/// later one is `other`; a value spelled like a reserved one (`other`, `unknown`) is kept with
/// one more underscore.
struct Budget {
    cap: usize,
    admitted: BTreeSet<String>,
}

impl Budget {
    fn admit(&mut self, value: &str) -> String {
        let mut value = cut(value);
        // The reserved words (and them followed by underscores) get one more underscore.
        let reserved = ["other", "unknown"].iter().any(|word| {
            value
                .strip_prefix(word)
                .is_some_and(|rest| rest.chars().all(|c| c == '_'))
        });
        if reserved {
            value.push('_');
        }
        if self.admitted.contains(&value) || self.admitted.len() < self.cap {
            self.admitted.insert(value.clone());
            value
        } else {
            OVERFLOW_LABEL.to_owned()
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_label_values_keep_the_exposition_valid_and_bounded(
        cap in 0usize..6,
        requests in vec((label_value(), label_value()), 1..12),
    ) {
        let registry = Registry::new();
        let metrics = Metrics::builder().label_cap(cap).build(&registry).unwrap();
        let (mut providers, mut models) = (
            Budget { cap, admitted: BTreeSet::new() },
            Budget { cap, admitted: BTreeSet::new() },
        );
        let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (provider, model) in &requests {
            let tracker = PerformanceTracker::with_metrics(metrics, CHAT);
            drop(tracker.stage("request_parsing"));
            tracker.backend_request(provider, model).first_byte();
            drop(tracker.streaming());
            tracker.record_percentages();
            *expected
                .entry((providers.admit(provider), models.admit(model)))
                .or_default() += 1;
        }

        let text = exposition::render(metrics);
        let samples = check_exposition(&text).map_err(TestCaseError::fail)?;
        for sample in &samples {
            for (name, value) in &sample.labels {
                // A reserved value cut to the limit takes one more byte (`other___…_` + `_`).
                prop_assert!(value.len() <= MAX_LABEL_LEN + 1, "{}: {} bytes", name, value.len());
            }
        }
        for family in ["backend_ttfb_seconds_count", "streaming_duration_seconds_count"] {
            let found: BTreeMap<(String, String), u64> = samples
                .iter()
                .filter(|s| s.name == family)
                .map(|s| {
                    let label = |n| s.label(n).unwrap_or_default().to_owned();
                    ((label("provider"), label("model")), s.value as u64)
                })
                .collect();
            // Byte for byte what the budget predicts: the values and their counts.
            prop_assert_eq!(&found, &expected, "{}", family);
            let distinct = |pick: fn(&(String, String)) -> &String| {
                found.keys().map(pick).collect::<BTreeSet<_>>().len()
            };
            prop_assert!(distinct(|k| &k.0) <= cap + 1);
            prop_assert!(distinct(|k| &k.1) <= cap + 1);
        }
    }

    #[test]
    fn any_body_parses_or_is_a_400(body in request_body()) {
        check_body::<ChatRequest>(&body)?;
        check_body::<ResponsesRequest>(&body)?;
    }
}

/// The gateway's parser on `body`: a request with a non-blank model, or a 400 in the OpenAI
/// shape. A panic fails the case (proptest catches it and shrinks the body).
fn check_body<R: OpenAiRequest>(body: &[u8]) -> Result<(), TestCaseError> {
    let parsed: Result<R, ApiError> = parse(body);
    match parsed {
        Ok(request) => prop_assert!(!request.model().trim().is_empty()),
        Err(error) => {
            prop_assert_eq!(error.status().as_u16(), 400, "{}", error);
            prop_assert_eq!(error.body().error.kind, "invalid_request_error");
        }
    }
    Ok(())
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        label_value().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((label_value(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A body shaped like a request, each field of any type or missing.
fn request_like() -> impl Strategy<Value = Vec<u8>> {
    let field = || proptest::option::of(json_value());
    let message = (field(), field()).prop_map(|(role, content)| {
        let mut m = Map::new();
        m.insert("role".into(), role.unwrap_or_else(|| json!("user")));
        if let Some(content) = content {
            m.insert("content".into(), content);
        }
        Value::Object(m)
    });
    (
        prop_oneof![label_value().prop_map(Value::String), json_value()],
        proptest::option::of(vec(message, 0..3)),
        field(),
        field(),
    )
        .prop_map(|(model, messages, stream, input)| {
            let mut body = Map::new();
            body.insert("model".into(), model);
            if let Some(messages) = messages {
                body.insert("messages".into(), Value::Array(messages));
            }
            if let Some(stream) = stream {
                body.insert("stream".into(), stream);
            }
            if let Some(input) = input {
                body.insert("input".into(), input);
            }
            Value::Object(body).to_string().into_bytes()
        })
}

/// A valid body with bytes replaced, inserted or cut off: broken escapes, broken UTF-8,
/// unterminated strings.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let valid = select(vec![
        br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hi \u00e9 \ud83d\ude80"}]}"#.to_vec(),
        br#"{"model":"m","input":[{"type":"input_text","text":"x"}],"stream":false}"#.to_vec(),
    ]);
    let edit = (any::<prop::sample::Index>(), any::<u8>(), 0u8..3);
    (valid, vec(edit, 1..8)).prop_map(|(mut body, edits)| {
        for (at, byte, kind) in edits {
            let i = at.index(body.len() + 1);
            match kind {
                0 if i < body.len() => body[i] = byte,
                1 => body.insert(i, byte),
                _ => body.truncate(i),
            }
        }
        body
    })
}

fn request_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        request_like(),
        mutated(),
        // Deep nesting: serde_json's recursion limit answers it, the stack is not at risk.
        (0usize..20_000).prop_map(|depth| {
            format!(
                r#"{{"model":"m","messages":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .into_bytes()
        }),
    ]
}

#[test]
fn the_parser_accepts_what_it_should() {
    // The properties above would pass for a parser that rejects everything.
    let chat = br#"{"model":"gpt\"4o\u0000","messages":[{"role":"user","content":"Hi"}]}"#;
    let request: ChatRequest = parse(chat).expect("a valid chat request");
    assert_eq!(request.model(), "gpt\"4o\0");
    let responses = br#"{"model":"m","input":"Hi","stream":true}"#;
    let request: ResponsesRequest = parse(responses).expect("a valid responses request");
    assert!(request.is_stream());
}
