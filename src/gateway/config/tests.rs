//! The flags as clap parses them, and the settings built from them.

use super::*;
use clap::CommandFactory;

#[test]
fn flags_are_consistent() {
    Config::command().debug_assert();
}

#[test]
fn keys_may_name_their_tenant() {
    let config = Config::parse_from([
        "gateway",
        "--api-key",
        "sk-a=acme",
        "--api-key",
        "sk-b",
        "--api-key",
        "c2stYw==",
        "--api-key",
        " sk-d = globex ",
    ]);
    assert_eq!(config.client_keys(), ["sk-a", "sk-b", "c2stYw==", "sk-d"]);
    let tenants: Vec<Option<String>> = config
        .client_tenants()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(
        tenants,
        [Some("acme".into()), None, None, Some("globex".into())]
    );
}

#[test]
fn api_key_repeats() {
    let config = Config::parse_from(["gateway", "--api-key", "a", "--api-key", "b"]);
    assert_eq!(config.api_keys, ["a", "b"]);
    assert_eq!(config.client_keys(), ["a", "b"]);
    assert!(!config.uses_default_key());
}

#[test]
fn without_keys_the_demo_key() {
    let config = Config::parse_from(["gateway"]);
    assert_eq!(config.client_keys(), [DEFAULT_API_KEY]);
    assert!(config.uses_default_key());
}

/// A file in the temporary directory, unique to this process and `name`, holding `text`.
fn key_file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("perf-keys-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("a temporary file");
    path.to_string_lossy().into_owned()
}

#[test]
fn api_key_file_one_key_a_line_with_comments() {
    let path = key_file(
        "ok",
        "# the clients' keys\n\n  key-one  \r\nkey-two\n   \n# key-three\n",
    );
    let config = Config::parse_from(["gateway", "--api-key-file", &path]);
    assert_eq!(config.client_keys(), ["key-one", "key-two"]);
    assert!(!config.uses_default_key(), "no demo key beside a file's");
    // The keys stay out of Debug.
    let debug = format!("{:?}", config.api_key_file);
    assert!(
        debug.contains("2 keys") && !debug.contains("key-one"),
        "{debug}"
    );
    let config = Config::parse_from(["gateway", "--api-key", "flag", "--api-key-file", &path]);
    assert_eq!(config.client_keys(), ["flag", "key-one", "key-two"]);
    let _ = std::fs::remove_file(path);
}

#[test]
fn api_key_file_unreadable_or_empty_is_an_error() {
    let missing = std::env::temp_dir().join("perf-keys-surely-missing/keys");
    let missing = missing.to_string_lossy().into_owned();
    let error = Config::try_parse_from(["gateway", "--api-key-file", &missing])
        .expect_err("a missing file");
    assert!(error.to_string().contains("cannot read"), "{error}");
    let empty = key_file("empty", "# nothing yet\n\n");
    let error = Config::try_parse_from(["gateway", "--api-key-file", &empty])
        .expect_err("a file without keys");
    assert!(error.to_string().contains("holds no key"), "{error}");
    let _ = std::fs::remove_file(empty);
}

#[test]
fn secrets_are_every_key_and_token() {
    let config = Config::parse_from([
        "gateway",
        "--api-key",
        "client",
        "--upstream-key",
        "upstream",
        "--metrics-token",
        "token",
    ]);
    assert_eq!(config.secrets(), ["client", "upstream", "token"]);
}

#[test]
fn timeouts_and_limits_default_and_zero_means_none() {
    let config = Config::parse_from(["gateway"]);
    let secs = |s| Some(Duration::from_secs(s));
    assert_eq!(
        config.upstream_timeouts(),
        UpstreamTimeouts {
            first_byte: secs(60),
            idle: secs(30),
            total: secs(600)
        }
    );
    assert_eq!(
        config.connection_limits(),
        ConnectionLimits {
            header_read_timeout: secs(10),
            max_connections: Some(10_000),
            counted: false,
        }
    );
    let config = Config::parse_from([
        "gateway",
        "--upstream-timeout-ms",
        "0",
        "--upstream-idle-timeout-ms",
        "250",
        "--header-read-timeout-ms",
        "0",
        "--max-connections",
        "0",
    ]);
    assert_eq!(config.upstream_timeouts().first_byte, None);
    assert_eq!(
        config.upstream_timeouts().idle,
        Some(Duration::from_millis(250))
    );
    assert_eq!(config.connection_limits(), ConnectionLimits::default());
}

#[test]
fn provider_defaults_to_mock_then_upstream_host() {
    let config = Config::parse_from(["gateway"]);
    assert_eq!(config.provider_label(), "mock");
    let config = Config::parse_from(["gateway", "--upstream", "https://api.openai.com/v1"]);
    assert_eq!(config.provider_label(), "api.openai.com");
}

#[test]
fn the_mock_lists_the_allowed_models() {
    let config = Config::parse_from(["gateway"]);
    assert_eq!(config.mock().models, DEFAULT_MODELS);
    let config = Config::parse_from(["gateway", "--allowed-models", "b, a,b"]);
    assert_eq!(config.mock().models, ["a", "b"]);
}

#[test]
fn llm_flags_default_and_parse() {
    let config = Config::parse_from(["gateway", "--mock-chunk-interval-ms", "30"]);
    assert_eq!(config.mock().first_token, Duration::from_millis(30));
    assert_eq!(config.mock().fail_every, 0);
    assert_eq!(config.upstream_retries, 0);
    assert!(config.server_timing);
    let config = Config::parse_from([
        "gateway",
        "--mock-first-token-ms",
        "400",
        "--mock-fail-every",
        "3",
        "--upstream-retries",
        "2",
        "--no-server-timing",
    ]);
    assert_eq!(config.mock().first_token, Duration::from_millis(400));
    assert_eq!(config.mock().fail_every, 3);
    assert_eq!(config.upstream_retries, 2);
    assert!(!config.server_timing);
}
