//! Durations to check a bucket search against its plain definition: the small values, the
//! extremes, each given edge and its neighbours, and pseudo-random values of every magnitude.

/// `count` pseudo-random values of every magnitude (an LCG, each shifted by a pseudo-random
/// amount), after 0..`small`, `u64::MAX`, and each of `edges` with its neighbours.
pub(crate) fn values(small: u64, edges: impl IntoIterator<Item = u64>, count: usize) -> Vec<u64> {
    let mut values: Vec<u64> = (0..small).chain([u64::MAX, u64::MAX - 1]).collect();
    for edge in edges {
        values.extend([edge.saturating_sub(1), edge, edge.saturating_add(1)]);
    }
    let mut x = 7u64;
    for _ in 0..count {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        values.push(x >> (x % 64));
    }
    values
}
