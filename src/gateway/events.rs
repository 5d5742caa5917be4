//! What the provider's answers say to the metrics: whether an SSE event carries content (a
//! token), and the token `usage` an event or a whole answer reports.
//!
//! | the provider sends | [`Chunk`] |
//! |---|---|
//! | a chat chunk whose `choices[].delta.content` is non-empty text | content |
//! | the Responses API's `response.output_text.delta` with a non-empty `delta` | content |
//! | a chat chunk with `usage` (the last one, with `stream_options.include_usage`) | usage |
//! | `response.completed`, `response.incomplete` or `response.failed` with `response.usage` | usage |
//! | a role-only delta, an empty delta, `finish_reason`, any other event, `[DONE]` | other |
//!
//! SSE comments (`: keep-alive`) never reach this far: the [`Decoder`](super::sse::Decoder)
//! drops them. Each event's data is parsed once, into the few fields read here (serde skips
//! the rest); data of any other shape is still valid JSON, and counts as other.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

pub use perf_runtime::{Chunk, Usage};

/// What one SSE event of the provider is to the metrics and to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventInfo {
    /// Content or not, and the usage it reports.
    pub chunk: Chunk,
    /// A chat chunk that only reports usage (`"choices": []`): the gateway asked for it on the
    /// client's behalf, and keeps it from a client that did not.
    pub usage_only: bool,
}

/// The data of an SSE event is not JSON (nor `[DONE]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

/// What the event whose data is `data` is; an error if `data` is neither JSON nor `[DONE]`.
pub fn classify(data: &str) -> Result<EventInfo, NotJson> {
    if data == "[DONE]" {
        return Ok(EventInfo::default());
    }
    match serde_json::from_str::<EventData<'_>>(data) {
        Ok(event) => Ok(event.info()),
        // Valid JSON of another shape (a field of an unexpected type) carries nothing we read.
        Err(_) => match serde_json::from_str::<IgnoredAny>(data) {
            Ok(_) => Ok(EventInfo::default()),
            Err(_) => Err(NotJson),
        },
    }
}

/// The `usage` of a whole (non-streamed) answer, `chat.completion` or `response`; `None` if it
/// has none, or one of another shape. An error if `body` is not JSON.
pub fn body_usage(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    #[derive(Deserialize)]
    struct ProviderResponse {
        #[serde(default)]
        usage: Option<WireUsage>,
    }
    match serde_json::from_slice::<ProviderResponse>(body) {
        Ok(answer) => Ok(answer.usage.map(Usage::from)),
        Err(_) => serde_json::from_slice::<IgnoredAny>(body).map(|_| None),
    }
}

/// The fields of an event's data that say what it is, in either API.
#[derive(Deserialize)]
struct EventData<'a> {
    /// The Responses API's event type (chat chunks have none).
    #[serde(default, rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    /// A chat chunk's choices.
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    /// A chat chunk's usage (`null` on every chunk but the last).
    #[serde(default)]
    usage: Option<WireUsage>,
    /// A Responses `*.delta` event's text.
    #[serde(default)]
    delta: Text,
    /// The response of a Responses `response.*` event.
    #[serde(default)]
    response: Option<ResponseData>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Text,
}

#[derive(Deserialize)]
struct ResponseData {
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// The Responses API's events that end a response and carry its usage.
const FINAL_RESPONSE_EVENTS: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

impl EventData<'_> {
    fn info(self) -> EventInfo {
        let kind = self.kind.as_deref();
        let chat_content = self
            .choices
            .iter()
            .flatten()
            .any(|c| c.delta.as_ref().is_some_and(|d| d.content.0));
        let content = chat_content || (kind == Some("response.output_text.delta") && self.delta.0);
        let final_usage = self
            .response
            .filter(|_| kind.is_some_and(|k| FINAL_RESPONSE_EVENTS.contains(&k)))
            .and_then(|r| r.usage);
        let usage_only = self.usage.is_some() && self.choices.as_ref().is_some_and(Vec::is_empty);
        EventInfo {
            chunk: Chunk {
                content,
                usage: self.usage.or(final_usage).map(Usage::from),
            },
            usage_only,
        }
    }
}

/// Whether a field holds non-empty text. Any other value (`null`, an object, a number) is no
/// text, and is skipped without failing the event.
#[derive(Debug, Default)]
struct Text(bool);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(!v.is_empty()))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text, E> {
                Ok(Text(false))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text, E> {
                Ok(Text(false))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text, E> {
                Ok(Text(false))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text, E> {
                Ok(Text(false))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
                Ok(Text(false))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(false))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(false))
            }
        }

        deserializer.deserialize_any(TextVisitor)
    }
}

/// A provider's `usage`, in the chat completions' names or the Responses API's (embeddings
/// report `prompt_tokens` and `total_tokens` only).
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default, alias = "input_tokens_details")]
    prompt_tokens_details: Option<Details>,
    #[serde(default, alias = "output_tokens_details")]
    completion_tokens_details: Option<Details>,
    /// Prompt tokens written to the provider's cache (Anthropic's name; counted in the prompt's
    /// tokens here, as perf's `Usage` counts them).
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    /// A usage with a `total_tokens` and no split of it (no prompt nor completion tokens) is all
    /// input: what an embedding reports, where nothing is generated.
    fn from(wire: WireUsage) -> Usage {
        let unsplit = wire
            .total_tokens
            .filter(|_| wire.completion_tokens.is_none());
        Usage {
            input: wire.prompt_tokens.or(unsplit).unwrap_or(0),
            output: wire.completion_tokens.unwrap_or(0),
            cached_input: wire
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning: wire
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            cache_write: wire.cache_creation_input_tokens.unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &str) -> Chunk {
        classify(data).expect("JSON").chunk
    }

    const USAGE: Usage = Usage {
        input: 12,
        output: 5,
        cached_input: 6,
        reasoning: 1,
        cache_write: 0,
    };

    #[test]
    fn chat_chunks() {
        let role = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#;
        assert_eq!(chunk(role), Chunk::OTHER);
        let token = r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"}}],"usage":null}"#;
        assert_eq!(chunk(token), Chunk::CONTENT);
        let escaped = r#"{"choices":[{"delta":{"content":"\n\u00e9"}}]}"#;
        assert_eq!(chunk(escaped), Chunk::CONTENT);
        let finish = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        assert_eq!(chunk(finish), Chunk::OTHER);
        let null_content = r#"{"choices":[{"delta":{"content":null,"tool_calls":[{"index":0}]}}]}"#;
        assert_eq!(chunk(null_content), Chunk::OTHER);
        assert_eq!(classify("[DONE]"), Ok(EventInfo::default()));
    }

    #[test]
    fn chat_usage_chunk() {
        let data = r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,
            "prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":1}}}"#;
        let info = classify(data).unwrap();
        assert_eq!(info.chunk, Chunk::usage(USAGE));
        assert!(info.usage_only);
        // A provider that puts the usage on its last content chunk: both, and kept for the client.
        let both = r#"{"choices":[{"delta":{"content":"."}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let info = classify(both).unwrap();
        assert!(info.chunk.content && !info.usage_only);
        assert_eq!(info.chunk.usage.map(|u| (u.input, u.output)), Some((3, 1)));
    }

    #[test]
    fn responses_events() {
        let delta = r#"{"type":"response.output_text.delta","item_id":"m","delta":"Hel"}"#;
        assert_eq!(chunk(delta), Chunk::CONTENT);
        let empty = r#"{"type":"response.output_text.delta","delta":""}"#;
        assert_eq!(chunk(empty), Chunk::OTHER);
        // Another kind of delta, with an object for a delta: no content, no failure.
        let other = r#"{"type":"response.function_call_arguments.delta","delta":{"a":[1]}}"#;
        assert_eq!(chunk(other), Chunk::OTHER);
        let created =
            r#"{"type":"response.created","response":{"status":"in_progress","usage":null}}"#;
        assert_eq!(chunk(created), Chunk::OTHER);
        let completed = r#"{"type":"response.completed","response":{"usage":{"input_tokens":12,"output_tokens":5,
            "input_tokens_details":{"cached_tokens":6},"output_tokens_details":{"reasoning_tokens":1}}}}"#;
        let info = classify(completed).unwrap();
        assert_eq!(info.chunk, Chunk::usage(USAGE));
        assert!(
            !info.usage_only,
            "the client always gets response.completed"
        );
        // Usage in an event that does not end the response is not counted (no double count).
        let running = r#"{"type":"response.in_progress","response":{"usage":{"input_tokens":12}}}"#;
        assert_eq!(chunk(running), Chunk::OTHER);
    }

    #[test]
    fn other_json_is_other_and_garbage_is_refused() {
        for data in [
            r#"{"choices":"none"}"#,
            "[1,2]",
            "42",
            r#"{"error":{"message":"x"}}"#,
        ] {
            assert_eq!(classify(data), Ok(EventInfo::default()), "{data}");
        }
        for data in ["{oops", "", "data"] {
            assert_eq!(classify(data), Err(NotJson), "{data:?}");
        }
    }

    fn input_only(input: u64) -> Usage {
        Usage {
            input,
            ..Usage::default()
        }
    }

    #[test]
    fn whole_answers() {
        let chat = br#"{"object":"chat.completion","usage":{"prompt_tokens":12,"completion_tokens":5,
            "prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":1}}}"#;
        assert_eq!(body_usage(chat).unwrap(), Some(USAGE));
        let response = br#"{"object":"response","usage":{"input_tokens":12,"output_tokens":5,
            "input_tokens_details":{"cached_tokens":6},"output_tokens_details":{"reasoning_tokens":1}}}"#;
        assert_eq!(body_usage(response).unwrap(), Some(USAGE));
        let embeddings =
            br#"{"object":"list","data":[],"usage":{"prompt_tokens":7,"total_tokens":7}}"#;
        assert_eq!(body_usage(embeddings).unwrap(), Some(input_only(7)));
        let total_only = br#"{"object":"list","usage":{"total_tokens":9}}"#;
        assert_eq!(body_usage(total_only).unwrap(), Some(input_only(9)));
        assert_eq!(body_usage(br#"{"id":"x"}"#).unwrap(), None);
        assert_eq!(body_usage(br#"{"usage":"many"}"#).unwrap(), None);
        assert!(body_usage(b"<html>").is_err());
    }
}
