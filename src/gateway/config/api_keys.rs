//! The keys clients may use: `--api-key` entries (`KEY` or `KEY=TENANT`), the lines of an
//! `--api-key-file`, and the demo key when there are none.

use std::path::PathBuf;

/// The API key clients use when none is given (`--api-key`, `--api-key-file` or their
/// variables): a well-known demo key, not a secret, which the banner shows as it is.
pub const DEFAULT_API_KEY: &str = "demo-key";

/// The keys of an `--api-key-file`, read when the flags are parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// Where they were read from.
    pub path: PathBuf,
    /// The keys, in the file's order.
    pub keys: Vec<String>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyFile({}: {} keys)",
            self.path.display(),
            self.keys.len()
        )
    }
}

/// Reads an `--api-key-file`: one key per line, surrounding whitespace trimmed, blank lines and
/// `#` comments left out. A file that cannot be read, or holds no key, is an error.
pub(super) fn read_key_file(path: &str) -> Result<KeyFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err(format!("{path} holds no key"));
    }
    Ok(KeyFile {
        path: path.into(),
        keys,
    })
}

/// The keys of `entries` (`KEY` or `KEY=TENANT`, trimmed; empty ones left out) with the tenant
/// each is counted under, if any, else [`DEFAULT_API_KEY`] without a tenant.
pub(super) fn keys_and_tenants<'a>(
    entries: impl IntoIterator<Item = &'a String>,
) -> Vec<(String, Option<String>)> {
    let keys: Vec<(String, Option<String>)> = entries
        .into_iter()
        .map(|entry| key_and_tenant(entry.trim()))
        .filter(|(key, _)| !key.is_empty())
        .collect();
    if keys.is_empty() {
        return vec![(DEFAULT_API_KEY.to_owned(), None)];
    }
    keys
}

/// `KEY=TENANT` split at its last `=`, each side trimmed; an entry with no `=`, or nothing after
/// its last one (a base64 key's padding, `abc==`), is a key of no tenant.
fn key_and_tenant(entry: &str) -> (String, Option<String>) {
    match entry.rsplit_once('=') {
        Some((key, tenant)) if !tenant.trim().is_empty() && !key.trim().is_empty() => {
            (key.trim().to_owned(), Some(tenant.trim().to_owned()))
        }
        _ => (entry.to_owned(), None),
    }
}
