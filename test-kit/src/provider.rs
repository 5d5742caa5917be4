//! A simulated LLM provider's streamed answer, event by event, and what each event is to perf.
//!
//! Plain `perf_runtime` and std, so that the user crates (`tests/user-crates/`, outside the
//! workspace) include this very file by `#[path]` rather than depend on the test kit: the
//! handler-shape tests and the user crates' chat gateway relay the same events.

use perf_runtime::{Chunk, Usage};

/// One event of a simulated provider's streamed answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The role-only first delta: no content.
    Role,
    /// A content token.
    Token(String),
    /// The answer's token usage, reported once, after its last token.
    Usage(Usage),
    /// `data: [DONE]`: the last event; the stream ends after it.
    Done,
}

/// What each event is to the metrics: `#[perf_stream(chunks = event_chunk)]`.
pub fn event_chunk(event: &Event) -> Chunk {
    match event {
        Event::Token(_) => Chunk::CONTENT,
        Event::Usage(usage) => Chunk::usage(*usage),
        Event::Role | Event::Done => Chunk::OTHER,
    }
}
