//! Stage names beyond the five built in: interned once, and bounded by `MAX_STAGES`.
//!
//! The interner is process-global, so this binary holds a single test that interns names, and
//! its counts are exact.

use perf_runtime::{current, Stage, StageName, MAX_STAGES};
use perf_test_kit::*;

/// The five built-in stages plus `other` are interned before any user name.
const BUILTIN_IDS: usize = 6;

#[test]
fn builtin_stages_are_constants() {
    // Touches no new name: safe to run alongside the interning test.
    assert_eq!(Stage::named("request_parsing"), Stage::REQUEST_PARSING);
    assert_eq!(Stage::named("auth_validation"), Stage::AUTH_VALIDATION);
    assert_eq!(
        Stage::named("request_preparation"),
        Stage::REQUEST_PREPARATION
    );
    assert_eq!(Stage::named("backend_fetch"), Stage::BACKEND_FETCH);
    assert_eq!(Stage::named("stream_processing"), Stage::STREAM_PROCESSING);
    assert_eq!(Stage::named("other"), Stage::OTHER);
    assert_eq!(
        Stage::BUILTIN.map(Stage::name),
        [
            "request_parsing",
            "auth_validation",
            "request_preparation",
            "backend_fetch",
            "stream_processing"
        ]
    );
    assert_eq!(Stage::OTHER.name(), "other");
    assert_eq!(Stage::BACKEND_FETCH.to_string(), "backend_fetch");
    assert_eq!(
        format!("{:?}", Stage::AUTH_VALIDATION),
        "Stage(auth_validation)"
    );
    assert_eq!(Stage::from("request_parsing"), Stage::REQUEST_PARSING);
}

#[test]
fn custom_stages_then_overflow() {
    // A custom name is interned once and recorded under its own label.
    let cache = Stage::named("cache_lookup");
    assert_eq!(Stage::named("cache_lookup"), cache);
    assert_eq!(Stage::from("cache_lookup"), cache);
    assert_eq!(cache.name(), "cache_lookup");
    assert_ne!(cache, Stage::OTHER);
    static CACHE: StageName = StageName::new("cache_lookup");
    assert_eq!(CACHE.get(), cache);

    let (registry, _metrics, tracker) = private_tracker(CHAT);
    drop(tracker.stage("cache_lookup"));
    drop(tracker.stage(cache));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(tracker.run(async {
        drop(current::stage(&CACHE));
    }));
    assert_eq!(
        count(
            &registry,
            "request_stage_duration_seconds",
            &[("stage", "cache_lookup"), ("endpoint", CHAT)]
        ),
        3
    );
    // A custom stage before the backend is front-end work like any other.
    assert_eq!(
        count(
            &registry,
            "frontend_processing_seconds",
            &[("endpoint", CHAT)]
        ),
        1
    );

    // Fill the table: exactly MAX_STAGES ids exist, the built-in six and cache_lookup included.
    let room = MAX_STAGES - BUILTIN_IDS - 1;
    let names: Vec<String> = (0..room + 10)
        .map(|i| format!("custom_stage_{i}"))
        .collect();
    let stages: Vec<Stage> = names.iter().map(|n| Stage::named(n)).collect();
    for (i, (name, stage)) in names.iter().zip(&stages).enumerate() {
        if i < room {
            assert_ne!(*stage, Stage::OTHER, "{name}");
            assert_eq!(stage.name(), name);
        } else {
            assert_eq!(*stage, Stage::OTHER, "{name} is past MAX_STAGES");
        }
    }
    // Interned names keep their ids; past the cap, every new name is `other`.
    assert_eq!(Stage::named("cache_lookup"), cache);
    assert_eq!(Stage::named(&names[0]), stages[0]);
    assert_eq!(Stage::named("yet_another_stage"), Stage::OTHER);
    let distinct: std::collections::HashSet<Stage> = stages.iter().copied().collect();
    assert_eq!(distinct.len(), room + 1);

    // An overflowing stage records under stage="other", and so does a late StageName.
    static LATE: StageName = StageName::new("late_stage_name");
    assert_eq!(LATE.get(), Stage::OTHER);
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    drop(tracker.stage("one_more_stage"));
    drop(tracker.stage(names.last().unwrap().as_str()));
    drop(tracker.stage(stages[0]));
    assert_eq!(
        count(
            &registry,
            "request_stage_duration_seconds",
            &[("stage", "other"), ("endpoint", CHAT)]
        ),
        2
    );
    assert_eq!(
        count(
            &registry,
            "request_stage_duration_seconds",
            &[("stage", "custom_stage_0"), ("endpoint", CHAT)]
        ),
        1
    );
    // Bounded: the stage label takes at most MAX_STAGES values.
    assert!(label_values(&registry, "request_stage_duration_seconds", "stage").len() <= MAX_STAGES);
}
