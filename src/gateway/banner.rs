//! What the example binary prints once started: where the gateway listens, its provider, its
//! keys, `/metrics`, and sample `curl` commands.
//!
//! No secret is printed: the clients' keys are shown as [fingerprints](super::secrets::fingerprint),
//! and the sample `curl` sends `$KEY` for the reader to set, unless the gateway runs with the
//! built-in demo key alone ([`DEFAULT_API_KEY`], no secret), which is shown as it is so that the
//! `curl` can be pasted as printed. A user name or password in the provider's URL is left out.

use std::fmt::Write;
use std::io;

use reqwest::Url;

use super::config::{Config, DEFAULT_API_KEY};
use super::secrets::fingerprint;
use super::server::Gateway;

/// The banner of `gateway`, started with `config`; `open_files` is what
/// [`raise_open_file_limit`](super::server::raise_open_file_limit) gave.
pub fn banner(config: &Config, gateway: &Gateway, open_files: &io::Result<u64>) -> String {
    let base = gateway.base_url();
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "perf example gateway on {base}");
    let _ = match gateway.mock() {
        Some(mock) => writeln!(
            out,
            "  provider: built-in mock at {} (TTFB {} ms, first token {} ms later, {} chunks \
             every {} ms, jitter ±{} ms)",
            mock.base_url(),
            config.mock_ttfb_ms,
            config.mock().first_token.as_millis(),
            config.mock_chunks,
            config.mock_chunk_interval_ms,
            config.mock_jitter_ms,
        ),
        None => writeln!(
            out,
            "  provider: {}",
            without_credentials(gateway.upstream_url())
        ),
    };
    let keys = config.client_keys();
    let (shown, key) = if config.uses_default_key() {
        let shown = format!("{DEFAULT_API_KEY} (the demo key: give your own with --api-key-file)");
        (shown, DEFAULT_API_KEY)
    } else {
        let prints: Vec<String> = keys.iter().map(|k| fingerprint(k)).collect();
        (prints.join(", "), "$KEY")
    };
    let _ = writeln!(out, "  api keys: {shown}");
    if let Some(key) = &config.upstream_key {
        let _ = writeln!(out, "  provider key: {}", fingerprint(key));
    }
    match open_files {
        Ok(_) => {
            let plan = gateway.descriptor_plan();
            let _ = writeln!(out, "  capacity: {plan}");
            if let Some(asked) = plan.connections_lowered_from {
                let _ = writeln!(
                    out,
                    "  warning: --max-connections {asked} does not fit the open-file limit; \
                     raise the hard limit (ulimit -Hn) to serve more"
                );
            }
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "  warning: the open-file limit could not be raised: {e}"
            );
        }
    }
    let protected = if config.metrics_token.is_some() {
        " (Authorization: Bearer <--metrics-token>)"
    } else {
        ""
    };
    let _ = writeln!(out, "  metrics:  {}{protected}", gateway.metrics_url());
    let _ = writeln!(out);
    if key == "$KEY" {
        let _ = writeln!(out, "  # with KEY set to one of the api keys above:");
    }
    // `$KEY` is expanded by the shell within double quotes; the demo key needs no quoting.
    let _ = writeln!(
        out,
        "  curl -N {base}/chat/completions -H \"Authorization: Bearer {key}\" \\"
    );
    let _ = writeln!(out, "    -H 'Content-Type: application/json' \\");
    let _ = writeln!(
        out,
        "    -d '{{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Hi\"}}]}}'"
    );
    let _ = writeln!(
        out,
        "  curl {base}/models -H \"Authorization: Bearer {key}\""
    );
    out
}

/// `url` without its user name and password, if it has any.
fn without_credentials(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_urls_lose_their_credentials() {
        let url = Url::parse("https://user:pa55@api.example.com/v1").unwrap();
        assert_eq!(
            without_credentials(&url).as_str(),
            "https://api.example.com/v1"
        );
    }
}
