//! Property tests of perf live in `tests/`; this crate has no code of its own.
