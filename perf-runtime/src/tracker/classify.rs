//! How a tracked stream tells its items apart: a classifier says what each item is (a
//! [`Chunk`]) and keeps, for the stream, the timing of the content seen so far. A tracked stream
//! with one records the time to the first token, the gaps between chunks and the tokens; one
//! without (the default, `()`) costs nothing more.

use super::content::ContentGaps;
use crate::chunk::Chunk;

/// How a tracked stream tells its items apart. `()` does not: no time to first token, no gaps,
/// no usage, and nothing is done per item. The macros pick the classifier (`#[perf_stream]`,
/// `#[perf_stream(chunks = f)]`); by hand, [`PerformanceTracker::stream_chunks`](crate::PerformanceTracker::stream_chunks)
/// and [`current::stream_chunks`](crate::current::stream_chunks) take the function.
pub trait Classify<T> {
    /// What `item` is, or `None` to leave it uncounted.
    fn classify(&mut self, item: &T) -> Option<Chunk>;

    /// Whether `item` is a failure of the answer (an `Err` item: the provider broke off).
    #[inline(always)]
    fn failed(&mut self, _item: &T) -> bool {
        false
    }

    /// Where the stream keeps the timing of the content it has seen so far (the time of its
    /// last content chunk, the gaps not recorded yet): only a classifier that finds content
    /// needs the room.
    fn gaps(&mut self) -> Option<&mut Gaps> {
        None
    }
}

/// The timing of the content a classified stream has seen so far (opaque).
pub struct Gaps(pub(crate) ContentGaps);

impl<T> Classify<T> for () {
    #[inline(always)]
    fn classify(&mut self, _: &T) -> Option<Chunk> {
        None
    }
}

/// A function that tells what each item is: what `#[perf_stream(chunks = f)]` hands the stream.
pub struct ChunksBy<F>(pub F, Gaps);

impl<F> ChunksBy<F> {
    pub(crate) fn new(chunks: F) -> Self {
        ChunksBy(chunks, Gaps(ContentGaps::new()))
    }
}

impl<T, F: FnMut(&T) -> Chunk> Classify<T> for ChunksBy<F> {
    #[inline]
    fn classify(&mut self, item: &T) -> Option<Chunk> {
        Some((self.0)(item))
    }

    #[inline]
    fn gaps(&mut self) -> Option<&mut Gaps> {
        Some(&mut self.1)
    }
}

/// A classifier `C` that also asks `P` whether an item is a failure: what `#[perf_stream]`
/// hands a stream, with `P` telling an `Err` item from the item's type.
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
    fn gaps(&mut self) -> Option<&mut Gaps> {
        self.0.gaps()
    }
}
