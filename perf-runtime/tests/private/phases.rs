//! How a request's time splits into phases: front end (the outermost stages before the first
//! backend call), backend, streaming; nested stages and stages after the backend call started
//! are not front-end time.

use std::thread::sleep;
use std::time::Duration;

use perf_test_kit::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn answered_request_without_frontend_stage() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let backend = tracker.backend_request("openrouter", "gpt-4o");
    sleep(MS);
    backend.first_byte();
    tracker.record_percentages();
    // No front-end stage ran: no frontend observation, and a 0 % front end.
    assert_eq!(frontend(&registry, CHAT).0, 0);
    let [front, back, stream] = assert_percentages_set(&registry, CHAT);
    assert_eq!(front, 0.0);
    assert_eq!(stream, 0.0);
    assert!((back - 100.0).abs() < 1e-9);
}

#[test]
fn nested_stages_count_once_in_frontend_time() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    {
        let _outer = tracker.stage("request_preparation");
        sleep(5 * MS);
        {
            let _inner = tracker.stage("auth_validation");
            sleep(10 * MS);
            {
                let _innermost = tracker.stage("request_parsing");
                sleep(5 * MS);
            }
        }
    }
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    tracker.record_percentages();

    for stage in ["request_preparation", "auth_validation", "request_parsing"] {
        assert_eq!(stage_count(&registry, CHAT, stage), 1, "{stage}");
    }
    let outer = stage_sum(&registry, CHAT, "request_preparation");
    let inner = stage_sum(&registry, CHAT, "auth_validation");
    let (front_count, front_sum) = frontend(&registry, CHAT);
    assert_eq!(front_count, 1);
    assert!(outer >= 0.02 && inner >= 0.015);
    // The front end is the outer stage alone, not outer + inner + innermost.
    assert!((front_sum - outer).abs() < 1e-6, "{front_sum} vs {outer}");
}

#[test]
fn sibling_stages_after_a_nested_one_still_count() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    {
        let _outer = tracker.stage("request_parsing");
        drop(tracker.stage("auth_validation"));
    }
    {
        let _next = tracker.stage("request_preparation");
        sleep(2 * MS);
    }
    tracker.record_percentages();
    let expected = stage_sum(&registry, CHAT, "request_parsing")
        + stage_sum(&registry, CHAT, "request_preparation");
    let (c, s) = frontend(&registry, CHAT);
    assert_eq!(c, 1);
    // Sums are kept in whole microseconds, each observation rounded: two stages may differ
    // from the one front-end observation of their total by up to 2 × 0.5 µs.
    assert!((s - expected).abs() <= 1e-6 + 1e-9, "{s} vs {expected}");
}

#[test]
fn stages_after_the_backend_started_are_not_frontend() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    {
        let _stage = tracker.stage("request_parsing");
        sleep(2 * MS);
    }
    let backend = tracker.backend_request("openrouter", "gpt-4o");
    {
        // Work while the provider thinks.
        let _stage = tracker.stage("request_preparation");
        sleep(5 * MS);
    }
    backend.first_byte();
    {
        // Work after it answered.
        let _stage = tracker.stage("auth_validation");
        sleep(5 * MS);
    }
    tracker.record_percentages();

    let parsing = stage_sum(&registry, CHAT, "request_parsing");
    let (c, s) = frontend(&registry, CHAT);
    assert_eq!(c, 1);
    assert!((s - parsing).abs() < 1e-6, "{s} vs {parsing}");
    assert_eq!(stage_count(&registry, CHAT, "request_preparation"), 1);
    assert_eq!(stage_count(&registry, CHAT, "auth_validation"), 1);
}
