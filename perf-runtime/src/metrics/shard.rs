//! Spreading concurrent writes over separate cache lines, one writer per line where possible.
//!
//! One shared atomic per series makes every core that records into it fight for the same cache
//! line: on two cores the prometheus crate's histograms record *slower* from two threads than
//! from one. Each series here has a few shards, each on its own cache lines, and a scrape adds
//! them up. The first [`OWNED`] threads that record each own a shard for their life: its words
//! have that one writer, so a write is a plain load and store (no locked read-modify-write).
//! Threads beyond them (and a thread being torn down) share the last shard, written with atomic
//! adds. No observation is lost or counted twice either way.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

/// Shards owned by one thread each.
pub(crate) const OWNED: usize = 8;
/// Shards per series: the owned ones, then the one shared by every other thread.
pub(crate) const SHARDS: usize = OWNED + 1;

/// Words per cache line (128 bytes: two 64-byte lines, as adjacent-line prefetch pairs them).
pub(crate) const LINE_WORDS: usize = 16;

/// The shard a thread writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shard(usize);

impl Shard {
    /// The shard shared by the threads that own none.
    pub const SHARED: Shard = Shard(OWNED);

    pub fn index(self) -> usize {
        self.0
    }

    /// Whether the calling thread is this shard's only writer.
    pub fn owned(self) -> bool {
        self.0 < OWNED
    }

    /// Adds `n` to `word` of this shard (wrapping): a plain load and store where the shard has
    /// one writer, an atomic add where it is shared.
    #[inline]
    pub fn add(self, word: &AtomicU64, n: u64) {
        if self.owned() {
            word.store(word.load(Relaxed).wrapping_add(n), Relaxed);
        } else {
            word.fetch_add(n, Relaxed);
        }
    }
}

/// Sixteen atomic words alone on their cache lines.
#[repr(C, align(128))]
pub(crate) struct Line(pub [AtomicU64; LINE_WORDS]);

impl Line {
    pub fn new() -> Self {
        Line(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// `words` atomic words per shard, each shard on lines of its own.
pub(crate) struct ShardedWords {
    lines: Box<[Line]>,
    lines_per_shard: usize,
}

impl ShardedWords {
    pub fn new(words: usize) -> Self {
        let lines_per_shard = words.div_ceil(LINE_WORDS).max(1);
        ShardedWords {
            lines: (0..SHARDS * lines_per_shard).map(|_| Line::new()).collect(),
            lines_per_shard,
        }
    }

    /// Word `word` of shard `shard`.
    #[inline]
    pub fn word(&self, shard: usize, word: usize) -> &AtomicU64 {
        &self.lines[shard * self.lines_per_shard + word / LINE_WORDS].0[word % LINE_WORDS]
    }

    /// The words of `shard`, for indexing without bounds checks on the recording path.
    #[inline(always)]
    pub fn words(&self, shard: Shard) -> Words<'_> {
        let first = shard.index() * self.lines_per_shard;
        debug_assert!(first < self.lines.len());
        Words {
            // SAFETY: a `Shard`'s index is below `SHARDS`, so the shard's first line is within
            // `lines` (`SHARDS * lines_per_shard` of them).
            first: unsafe { self.lines.as_ptr().add(first) }.cast(),
            len: self.lines_per_shard * LINE_WORDS,
            lines: std::marker::PhantomData,
        }
    }

    /// Adds `n` to word `word` of the calling thread's shard.
    #[inline]
    pub fn add(&self, word: usize, n: u64) {
        self.add_at(current(), word, n);
    }

    /// Adds `n` to word `word` of shard `shard`, which must be the calling thread's.
    #[inline]
    pub fn add_at(&self, shard: Shard, word: usize, n: u64) {
        shard.add(self.word(shard.index(), word), n);
    }

    /// Word `word` summed over the shards.
    pub fn sum(&self, word: usize) -> u64 {
        (0..SHARDS)
            .map(|shard| self.word(shard, word).load(Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// One shard's words, borrowed from their [`ShardedWords`].
#[derive(Clone, Copy)]
pub(crate) struct Words<'a> {
    first: *const AtomicU64,
    len: usize,
    lines: std::marker::PhantomData<&'a [Line]>,
}

impl<'a> Words<'a> {
    /// Word `i`, unchecked.
    ///
    /// # Safety
    /// `i` is below the words per shard given to [`ShardedWords::new`].
    #[inline(always)]
    pub unsafe fn at(self, i: usize) -> &'a AtomicU64 {
        debug_assert!(i < self.len);
        // SAFETY: a `Line` is `repr(C)` with nothing but `LINE_WORDS` words (128 bytes, its
        // alignment: no padding), so the shard's consecutive lines are consecutive words, at
        // least as many as asked for, which the caller does not exceed.
        unsafe { &*self.first.add(i) }
    }
}

/// Owned shards taken, one bit each.
static CLAIMED: AtomicU32 = AtomicU32::new(0);

/// A thread's owned shard, given back when the thread ends.
struct Claim(usize);

const UNCLAIMED: usize = usize::MAX;

impl Drop for Claim {
    fn drop(&mut self) {
        // Not this thread's shard any more: its writes from now on go to the shared one.
        let _ = SHARD.try_with(|shard| shard.set(Shard::SHARED.index()));
        // Release: the thread's last writes happen before the next owner's first.
        CLAIMED.fetch_and(!(1 << self.0), Release);
    }
}

thread_local! {
    /// The thread's shard, read on every write (no destructor: a plain thread-local read).
    static SHARD: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// What gives an owned shard back when the thread ends.
    static CLAIM: Cell<Option<Claim>> = const { Cell::new(None) };
}

/// The calling thread's shard: the owned one it claimed at its first write, or the shared one
/// (all owned shards taken, or the thread's claim already given back as it ends).
#[inline]
pub(crate) fn current() -> Shard {
    match SHARD.try_with(Cell::get) {
        Ok(UNCLAIMED) => claim(),
        Ok(index) => Shard(index),
        Err(_) => Shard::SHARED,
    }
}

/// The thread's first write: an owned shard if one is free (given back when the thread ends),
/// else the shared one.
#[cold]
fn claim() -> Shard {
    let index = take_free();
    let kept = index != Shard::SHARED.index()
        && CLAIM
            .try_with(|claim| claim.set(Some(Claim(index))))
            .is_ok();
    if !kept && index != Shard::SHARED.index() {
        // The thread is ending: give it back at once.
        CLAIMED.fetch_and(!(1 << index), Release);
    }
    let index = if kept { index } else { Shard::SHARED.index() };
    let _ = SHARD.try_with(|shard| shard.set(index));
    Shard(index)
}

/// The lowest free owned shard, now taken, or the shared one.
#[cold]
fn take_free() -> usize {
    let mut claimed = CLAIMED.load(Relaxed);
    loop {
        let free = !claimed & ((1 << OWNED) - 1);
        if free == 0 {
            return Shard::SHARED.index();
        }
        let index = free.trailing_zeros() as usize;
        // Acquire: the previous owner's writes happen before ours.
        match CLAIMED.compare_exchange_weak(claimed, claimed | 1 << index, Acquire, Relaxed) {
            Ok(_) => return index,
            Err(now) => claimed = now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_shard_exactly() {
        let words = ShardedWords::new(20);
        std::thread::scope(|s| {
            // More threads than owned shards, in waves: owned shards change hands, the rest
            // share the last one.
            for _ in 0..3 {
                for _ in 0..12 {
                    s.spawn(|| {
                        for _ in 0..1000 {
                            words.add(19, 1);
                        }
                    });
                }
            }
        });
        assert_eq!(words.sum(19), 36_000);
        assert_eq!(words.sum(0), 0);
    }

    #[test]
    fn a_thread_keeps_its_shard() {
        let first = current();
        assert_eq!(current(), first);
    }
}
