//! What one item of a provider's streamed answer is to the metrics: a chunk with content or not,
//! and the token usage it reports. The tracker times content chunks; the metrics and the price
//! table count the usage.

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
