//! The mock's canned completion, in the bodies and events of both OpenAI APIs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::response::sse::Event;
use serde_json::{json, Value};

const WORDS: &[&str] = &[
    "This",
    "answer",
    "comes",
    "from",
    "the",
    "mock",
    "provider",
    "of",
    "the",
    "perf",
    "example",
    "gateway,",
    "streamed",
    "word",
    "by",
    "word",
    "so",
    "that",
    "every",
    "stage",
    "of",
    "the",
    "request",
    "shows",
    "in",
    "/metrics.",
];

/// One answer: its ids, model, words and token counts.
pub(super) struct Completion {
    id: u64,
    created: u64,
    model: String,
    words: Vec<String>,
    prompt_tokens: usize,
}

impl Completion {
    pub fn new(model: &str, chunks: u32, prompt_size: usize) -> Completion {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let words = (0..chunks as usize)
            .map(|i| {
                let word = WORDS[i % WORDS.len()];
                if i == 0 {
                    word.to_owned()
                } else {
                    format!(" {word}")
                }
            })
            .collect();
        Completion {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model: model.to_owned(),
            words,
            prompt_tokens: prompt_size.div_ceil(4),
        }
    }

    fn text(&self) -> String {
        self.words.concat()
    }

    fn completion_tokens(&self) -> usize {
        self.words.len()
    }

    /// The tokens it takes of the model's rate limit: prompt and completion.
    pub fn tokens(&self) -> u64 {
        (self.prompt_tokens + self.completion_tokens()) as u64
    }

    /// The answer's `usage`, in the chat completions' names: prompt tokens from the request's
    /// size, half of them cached; completion tokens one per word, a quarter of them reasoning.
    fn chat_usage(&self) -> Value {
        let (prompt, completion) = (self.prompt_tokens, self.completion_tokens());
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": prompt / 2},
            "completion_tokens_details": {"reasoning_tokens": completion / 4},
        })
    }

    /// The same in the Responses API's names.
    fn responses_usage(&self) -> Value {
        let (prompt, completion) = (self.prompt_tokens, self.completion_tokens());
        json!({
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
            "input_tokens_details": {"cached_tokens": prompt / 2},
            "output_tokens_details": {"reasoning_tokens": completion / 4},
        })
    }

    /// A `chat.completion` object.
    pub fn chat_completion(&self) -> Value {
        json!({
            "id": format!("chatcmpl-mock-{}", self.id),
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": self.text()},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": self.chat_usage(),
        })
    }

    /// A `chat.completion.chunk` with `choices` and `usage` (`null` on every chunk but the last
    /// when the usage is asked for; absent otherwise).
    fn chat_chunk(&self, choices: Value, usage: Option<Value>) -> Event {
        let mut chunk = json!({
            "id": format!("chatcmpl-mock-{}", self.id),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            merge(&mut chunk, json!({ "usage": usage }));
        }
        sse(None, chunk)
    }

    fn chat_delta(&self, delta: Value, finish_reason: Option<&str>, usage: Option<Value>) -> Event {
        let choice =
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason});
        self.chat_chunk(json!([choice]), usage)
    }

    /// The `chat.completion.chunk` events of a streamed chat answer: the role-only delta and a
    /// keep-alive comment at once, each word after its delay, then the finishing chunk, the
    /// usage chunk if `include_usage`, and `[DONE]`.
    pub fn chat_stream(
        &self,
        intervals: Vec<Duration>,
        include_usage: bool,
    ) -> Vec<(Duration, Event)> {
        let null = || include_usage.then_some(Value::Null);
        let role = json!({"role": "assistant", "content": ""});
        let mut events = vec![
            (Duration::ZERO, self.chat_delta(role, None, null())),
            (Duration::ZERO, Event::default().comment("keep-alive")),
        ];
        let words = self.words.iter().zip(intervals);
        events.extend(words.map(|(word, interval)| {
            let delta = json!({ "content": word });
            (interval, self.chat_delta(delta, None, null()))
        }));
        events.push((
            Duration::ZERO,
            self.chat_delta(json!({}), Some("stop"), null()),
        ));
        if include_usage {
            let usage = self.chat_chunk(json!([]), Some(self.chat_usage()));
            events.push((Duration::ZERO, usage));
        }
        events.push((Duration::ZERO, Event::default().data("[DONE]")));
        events
    }

    fn message_id(&self) -> String {
        format!("msg_mock_{}", self.id)
    }

    fn output_text(&self) -> Value {
        json!({"type": "output_text", "text": self.text(), "annotations": []})
    }

    fn message(&self, status: &str, content: Value) -> Value {
        json!({
            "id": self.message_id(),
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        })
    }

    fn response_object(&self, status: &str, output: Value, usage: Value) -> Value {
        json!({
            "id": format!("resp_mock_{}", self.id),
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.model,
            "output": output,
            "usage": usage,
        })
    }

    /// A `response` object, completed.
    pub fn response(&self) -> Value {
        let message = self.message("completed", json!([self.output_text()]));
        self.response_object("completed", json!([message]), self.responses_usage())
    }

    /// The `response.*` events of a streamed Responses answer: the response and its message
    /// opened at once with a keep-alive comment, each word as an `output_text.delta` after its
    /// delay, then the closing events.
    pub fn responses_stream(&self, intervals: Vec<Duration>) -> Vec<(Duration, Event)> {
        let item = |extra: Value| {
            let mut event =
                json!({"item_id": self.message_id(), "output_index": 0, "content_index": 0});
            merge(&mut event, extra);
            event
        };
        let in_progress =
            || json!({"response": self.response_object("in_progress", json!([]), Value::Null)});
        let mut events = vec![
            ("response.created", in_progress()),
            ("response.in_progress", in_progress()),
            (
                "response.output_item.added",
                json!({"output_index": 0, "item": self.message("in_progress", json!([]))}),
            ),
            (
                "response.content_part.added",
                item(json!({"part": {"type": "output_text", "text": "", "annotations": []}})),
            ),
        ];
        let opening = events.len();
        events.extend(
            self.words
                .iter()
                .map(|word| ("response.output_text.delta", item(json!({"delta": word})))),
        );
        events.extend([
            ("response.output_text.done", item(json!({"text": self.text()}))),
            ("response.content_part.done", item(json!({"part": self.output_text()}))),
            (
                "response.output_item.done",
                json!({"output_index": 0, "item": self.message("completed", json!([self.output_text()]))}),
            ),
            ("response.completed", json!({"response": self.response()})),
        ]);
        let mut events: Vec<(Duration, Event)> = events
            .into_iter()
            .enumerate()
            .map(|(sequence, (kind, mut body))| {
                let delta = sequence.checked_sub(opening).and_then(|i| intervals.get(i));
                merge(
                    &mut body,
                    json!({"type": kind, "sequence_number": sequence}),
                );
                (delta.copied().unwrap_or_default(), sse(Some(kind), body))
            })
            .collect();
        let keep_alive = Event::default().comment("keep-alive");
        events.insert(opening, (Duration::ZERO, keep_alive));
        events
    }
}

/// An SSE event named `kind` (unnamed if `None`) whose data is `value` as JSON.
fn sse(kind: Option<&str>, value: Value) -> Event {
    let event = Event::default();
    match kind {
        Some(kind) => event.event(kind),
        None => event,
    }
    .data(value.to_string())
}

/// Adds the fields of the object `extra` to the object `into`.
fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(into), Value::Object(extra)) = (into, extra) {
        into.extend(extra);
    }
}
