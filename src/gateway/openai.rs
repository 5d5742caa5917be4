//! The OpenAI wire types the gateway reads: the request bodies of `/v1/chat/completions`,
//! `/v1/responses` and `/v1/embeddings`.
//!
//! Only the fields the gateway needs are typed; every other field is kept as it came
//! (`extra`) and forwarded to the provider unchanged.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;

/// A request body of one of the OpenAI APIs the gateway serves.
pub trait OpenAiRequest: DeserializeOwned + Serialize {
    /// The API's path under a provider's base URL, e.g. `/chat/completions`.
    const UPSTREAM_PATH: &'static str;

    /// The gateway's route of the API, e.g. `/v1/chat/completions` (its `endpoint` label).
    const ENDPOINT: &'static str;

    /// The requested model (the `model` label of the backend metrics).
    fn model(&self) -> &str;

    /// Whether the client asked for a streamed (SSE) answer.
    fn is_stream(&self) -> bool;

    /// Constraints the types alone do not express; the message says what is wrong.
    fn check(&self) -> Result<(), String>;

    /// Asks the provider for the token usage of a streamed answer where the API needs asking
    /// (chat completions: `stream_options.include_usage`), and tells whether the client asked
    /// for it itself: if not, the gateway keeps the usage-only chunk from it.
    fn ask_for_usage(&mut self) -> bool;
}

/// Parses and checks a request body: malformed JSON, a field of the wrong type or a missing one
/// give a 400 [`ApiError`].
pub fn parse<R: OpenAiRequest>(body: &[u8]) -> Result<R, ApiError> {
    let request: R = serde_json::from_slice(body)?;
    request.check().map_err(ApiError::invalid_request)?;
    Ok(request)
}

/// The body of `POST /v1/chat/completions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model to answer with.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// `true` for an SSE stream of `chat.completion.chunk`s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Options of a streamed answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Every other field, forwarded as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `stream_options` of a chat completion request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    /// `true` for a last chunk with the answer's `usage` (and `"choices": []`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Every other option, forwarded as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// Whether the request asks for the usage chunk at the end of its stream.
    pub fn includes_usage(&self) -> bool {
        self.is_stream()
            && self
                .stream_options
                .as_ref()
                .and_then(|options| options.include_usage)
                == Some(true)
    }
}

/// One message of a chat conversation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// The text, or an array of content parts; absent for some assistant messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Every other field (`name`, `tool_calls`, ...), forwarded as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Content given either as plain text or as an array of typed parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged, expecting = "a string or an array of content parts")]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Typed parts (`{"type": "text", ...}`, `{"type": "image_url", ...}`, ...).
    Parts(Vec<Value>),
}

impl Content {
    /// A rough size of the content in characters (the mock's token count).
    pub fn len(&self) -> usize {
        match self {
            Content::Text(text) => text.len(),
            Content::Parts(parts) => parts.len(),
        }
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl OpenAiRequest for ChatRequest {
    const UPSTREAM_PATH: &'static str = "/chat/completions";
    const ENDPOINT: &'static str = "/v1/chat/completions";

    fn model(&self) -> &str {
        &self.model
    }

    fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    fn check(&self) -> Result<(), String> {
        check_model(&self.model)?;
        if self.messages.is_empty() {
            return Err("`messages` must contain at least one message".into());
        }
        Ok(())
    }

    fn ask_for_usage(&mut self) -> bool {
        if !self.is_stream() {
            // A whole answer always has its usage; providers refuse `stream_options` here.
            return true;
        }
        let asked = self.includes_usage();
        self.stream_options
            .get_or_insert_with(StreamOptions::default)
            .include_usage = Some(true);
        asked
    }
}

/// The body of `POST /v1/responses`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponsesRequest {
    /// The model to answer with.
    pub model: String,
    /// The input: a text, or an array of input items.
    pub input: Content,
    /// `true` for an SSE stream of `response.*` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Every other field (`instructions`, `tools`, ...), forwarded as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl OpenAiRequest for ResponsesRequest {
    const UPSTREAM_PATH: &'static str = "/responses";
    const ENDPOINT: &'static str = "/v1/responses";

    fn model(&self) -> &str {
        &self.model
    }

    fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    fn check(&self) -> Result<(), String> {
        check_model(&self.model)
    }

    fn ask_for_usage(&mut self) -> bool {
        // `response.completed` always carries the usage: nothing to ask, nothing to hide.
        true
    }
}

/// The body of `POST /v1/embeddings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    /// The model to embed with.
    pub model: String,
    /// What to embed.
    pub input: EmbeddingInput,
    /// Every other field (`encoding_format`, `dimensions`, `user`, ...), forwarded as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `input` of an embeddings request: one or more texts, or texts already tokenized.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, an array of strings, an array of token ids or an array of such arrays"
)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts, one embedding each.
    Texts(Vec<String>),
    /// One text as token ids.
    Tokens(Vec<u64>),
    /// Several texts as token ids.
    TokenLists(Vec<Vec<u64>>),
}

impl EmbeddingInput {
    /// The size of each input, in order: a text's bytes, or a tokenized one's tokens.
    pub fn sizes(&self) -> Vec<InputSize> {
        match self {
            EmbeddingInput::Text(text) => vec![InputSize::Bytes(text.len())],
            EmbeddingInput::Texts(texts) => {
                texts.iter().map(|t| InputSize::Bytes(t.len())).collect()
            }
            EmbeddingInput::Tokens(tokens) => vec![InputSize::Tokens(tokens.len())],
            EmbeddingInput::TokenLists(lists) => {
                lists.iter().map(|t| InputSize::Tokens(t.len())).collect()
            }
        }
    }
}

/// The size of one input to embed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSize {
    /// A text of this many bytes.
    Bytes(usize),
    /// A tokenized text of this many tokens.
    Tokens(usize),
}

impl OpenAiRequest for EmbeddingsRequest {
    const UPSTREAM_PATH: &'static str = "/embeddings";
    const ENDPOINT: &'static str = "/v1/embeddings";

    fn model(&self) -> &str {
        &self.model
    }

    fn is_stream(&self) -> bool {
        false
    }

    fn check(&self) -> Result<(), String> {
        check_model(&self.model)?;
        let sizes = self.input.sizes();
        if sizes.is_empty() {
            return Err("`input` must not be an empty array".into());
        }
        if sizes
            .iter()
            .any(|s| matches!(s, InputSize::Bytes(0) | InputSize::Tokens(0)))
        {
            return Err("`input` must not contain an empty string or an empty array".into());
        }
        Ok(())
    }

    fn ask_for_usage(&mut self) -> bool {
        // Never streamed: the answer's body carries the usage.
        true
    }
}

fn check_model(model: &str) -> Result<(), String> {
    if model.trim().is_empty() {
        return Err("`model` must not be empty".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<ChatRequest, ApiError>) -> String {
        match result {
            Ok(_) => String::from("accepted"),
            Err(e) => e.body().error.message.to_owned(),
        }
    }

    #[test]
    fn unknown_fields_are_kept() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi","name":"x"}],"temperature":0.2}"#;
        let req: ChatRequest = parse(body).expect("valid request");
        let back = serde_json::to_value(&req).expect("serializes");
        assert_eq!(back["temperature"], 0.2);
        assert_eq!(back["messages"][0]["name"], "x");
        assert!(back.get("stream").is_none());
    }

    #[test]
    fn bad_bodies_say_why() {
        assert!(message(parse(b"{")).contains("invalid request body"));
        assert!(message(parse(br#"{"messages":[]}"#)).contains("missing field `model`"));
        let wrong = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#;
        assert!(message(parse(wrong)).contains("expected a boolean"));
        let empty = br#"{"model":"m","messages":[]}"#;
        assert!(message(parse(empty)).contains("at least one message"));
    }

    #[test]
    fn embeddings_inputs() {
        let sizes =
            |body: &str| parse::<EmbeddingsRequest>(body.as_bytes()).map(|r| r.input.sizes());
        assert_eq!(
            sizes(r#"{"model":"e","input":"hello"}"#).unwrap(),
            [InputSize::Bytes(5)]
        );
        assert_eq!(
            sizes(r#"{"model":"e","input":["a","bcd"],"encoding_format":"base64"}"#).unwrap(),
            [InputSize::Bytes(1), InputSize::Bytes(3)]
        );
        assert_eq!(
            sizes(r#"{"model":"e","input":[1,2,3]}"#).unwrap(),
            [InputSize::Tokens(3)]
        );
        assert_eq!(
            sizes(r#"{"model":"e","input":[[1],[2,3]]}"#).unwrap(),
            [InputSize::Tokens(1), InputSize::Tokens(2)]
        );
        let refused = |body: &str| match sizes(body) {
            Ok(sizes) => panic!("{body} accepted as {sizes:?}"),
            Err(e) => e.body().error.message.to_owned(),
        };
        assert!(refused(r#"{"model":"e","input":[]}"#).contains("empty array"));
        assert!(refused(r#"{"model":"e","input":["a",""]}"#).contains("empty string"));
        assert!(refused(r#"{"model":"e","input":{"text":"a"}}"#).contains("array of strings"));
        assert!(refused(r#"{"model":"e"}"#).contains("missing field `input`"));
        // Other fields go on to the provider as they came.
        let req: EmbeddingsRequest =
            parse(br#"{"model":"e","input":"x","dimensions":8,"user":"u"}"#).unwrap();
        let sent = serde_json::to_value(&req).unwrap();
        assert_eq!(sent["dimensions"], 8);
        assert_eq!(sent["input"], "x");
    }

    #[test]
    fn usage_is_asked_for_streamed_chats_only() {
        let mut streamed: ChatRequest =
            parse(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#)
                .unwrap();
        assert!(!streamed.ask_for_usage(), "the client did not ask");
        let sent = serde_json::to_value(&streamed).unwrap();
        assert_eq!(
            sent["stream_options"],
            serde_json::json!({"include_usage": true})
        );

        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,
            "stream_options":{"include_usage":true,"other":1}}"#;
        let mut asking: ChatRequest = parse(body).unwrap();
        assert!(asking.ask_for_usage());
        let sent = serde_json::to_value(&asking).unwrap();
        assert_eq!(sent["stream_options"]["other"], 1, "other options kept");

        let mut whole: ChatRequest =
            parse(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#).unwrap();
        assert!(whole.ask_for_usage());
        let sent = serde_json::to_value(&whole).unwrap();
        assert!(sent.get("stream_options").is_none(), "{sent}");
    }
}
