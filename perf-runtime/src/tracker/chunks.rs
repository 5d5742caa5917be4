//! What a streamed item is to the metrics: a chunk with content or not, and the token usage it
//! reports. A tracked stream that knows this records the time to the first token, the gap
//! between chunks and the tokens; one that does not (the default) costs nothing more.

use super::answer::ContentSeen;

/// Token counts of a provider's `usage`: `backend_tokens_total{type}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens (`prompt_tokens`, `input_tokens`).
    pub input: u64,
    /// Generated tokens (`completion_tokens`, `output_tokens`).
    pub output: u64,
    /// Prompt tokens the provider served from its cache (`cached_tokens`).
    pub cached_input: u64,
    /// Generated tokens spent reasoning (`reasoning_tokens`), counted in `output` too.
    pub reasoning: u64,
    /// Prompt tokens the provider wrote to its cache (Anthropic's
    /// `cache_creation_input_tokens`), counted in `input` too.
    pub cache_write: u64,
}

impl Usage {
    /// The counts in the order of the `type` label values: input, output, cached_input,
    /// reasoning, cache_write.
    pub(crate) fn counts(self) -> [u64; 5] {
        [
            self.input,
            self.output,
            self.cached_input,
            self.reasoning,
            self.cache_write,
        ]
    }

    /// The usage of these counts, in the order of [`counts`](Self::counts).
    pub(crate) fn from_counts(
        [input, output, cached_input, reasoning, cache_write]: [u64; 5],
    ) -> Self {
        Usage {
            input,
            output,
            cached_input,
            reasoning,
            cache_write,
        }
    }
}

/// What one item of a relayed stream is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// It carries content (a token): the first one ends the time to first token, each later one
    /// ends a chunk gap. Headers, role-only deltas, SSE comments and keep-alives do not.
    pub content: bool,
    /// The token usage it reports (the final chunk of an answer, when asked for).
    pub usage: Option<Usage>,
}

impl Chunk {
    /// A chunk with content.
    pub const CONTENT: Chunk = Chunk {
        content: true,
        usage: None,
    };

    /// Anything else: a role-only delta, a comment, a keep-alive, an empty delta.
    pub const OTHER: Chunk = Chunk {
        content: false,
        usage: None,
    };

    /// A chunk that reports `usage` (and carries no content).
    pub fn usage(usage: Usage) -> Chunk {
        Chunk {
            content: false,
            usage: Some(usage),
        }
    }
}

/// How a tracked stream tells its items apart. `()` does not: no time to first token, no gaps,
/// no usage, and nothing is done per item.
pub trait Classify<T> {
    /// What `item` is, or `None` to leave it uncounted.
    fn classify(&mut self, item: &T) -> Option<Chunk>;

    /// Whether `item` is a failure of the answer (an `Err` item: the provider broke off).
    #[doc(hidden)]
    #[inline(always)]
    fn failed(&mut self, _item: &T) -> bool {
        false
    }

    /// Where the stream keeps what it has seen of content so far (the time of its last content
    /// chunk): only a classifier that finds content needs the room.
    #[doc(hidden)]
    fn seen(&mut self) -> Option<&mut Seen> {
        None
    }
}

/// What a classified stream has seen of content so far. Not for use outside the crate.
#[doc(hidden)]
pub struct Seen(pub(crate) ContentSeen);

impl<T> Classify<T> for () {
    #[inline(always)]
    fn classify(&mut self, _: &T) -> Option<Chunk> {
        None
    }
}

/// A function that tells what each item is: what `#[perf_stream(chunks = f)]` hands the stream.
pub struct ChunksBy<F>(pub F, Seen);

impl<F> ChunksBy<F> {
    pub(crate) fn new(chunks: F) -> Self {
        ChunksBy(chunks, Seen(ContentSeen::new()))
    }
}

impl<T, F: FnMut(&T) -> Chunk> Classify<T> for ChunksBy<F> {
    #[inline]
    fn classify(&mut self, item: &T) -> Option<Chunk> {
        Some((self.0)(item))
    }

    #[inline]
    fn seen(&mut self) -> Option<&mut Seen> {
        Some(&mut self.1)
    }
}

/// A classifier `C` that also asks `P` whether an item is a failure: what `#[perf_stream]`
/// hands a stream, with `P` telling an `Err` item from the item's type. Not for use outside the
/// crate.
#[doc(hidden)]
pub struct Probed<C, P>(pub C, pub P);

impl<T, C: Classify<T>, P: FnMut(&T) -> bool> Classify<T> for Probed<C, P> {
    #[inline(always)]
    fn classify(&mut self, item: &T) -> Option<Chunk> {
        self.0.classify(item)
    }

    #[inline(always)]
    fn failed(&mut self, item: &T) -> bool {
        (self.1)(item)
    }

    #[inline(always)]
    fn seen(&mut self) -> Option<&mut Seen> {
        self.0.seen()
    }
}
