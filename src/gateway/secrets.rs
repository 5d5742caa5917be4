//! Keeping the gateway's secrets (the clients' API keys, the provider key, the metrics token) out
//! of its logs, its banner and its answers.
//!
//! A secret is shown only as its [`fingerprint`]: a few of its first characters and its length,
//! enough for an operator to tell which key is meant, never enough to use it. Text the gateway
//! did not write (a provider's error answer) goes through a [`Redactor`] before it is logged or
//! passed on: every known secret in it is replaced by its fingerprint.

use std::borrow::Cow;
use std::sync::Arc;

/// Most characters of a provider's text written to the log.
pub const MAX_LOGGED_CHARS: usize = 500;

/// A secret as it may be shown: its first characters (at most 4, and at most a quarter of it)
/// and its length in characters, e.g. `sk-p…(51 chars)`, `te…(8 chars)`.
pub fn fingerprint(secret: &str) -> String {
    let len = secret.chars().count();
    let shown: String = secret.chars().take((len / 4).min(4)).collect();
    format!("{shown}…({len} chars)")
}

/// Replaces known secrets in text by their fingerprints. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Redactor {
    /// Each secret and its fingerprint, longest secret first (so that a secret containing
    /// another is replaced whole).
    secrets: Arc<[(String, String)]>,
}

impl Redactor {
    /// A redactor of `secrets`; empty ones are ignored.
    pub fn new<I, S>(secrets: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut secrets: Vec<(String, String)> = secrets
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .filter(|s| !s.is_empty())
            .map(|s| {
                let print = fingerprint(&s);
                (s, print)
            })
            .collect();
        secrets.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        secrets.dedup_by(|a, b| a.0 == b.0);
        Redactor {
            secrets: secrets.into(),
        }
    }

    /// `text` with every known secret replaced by its fingerprint.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for (secret, print) in self.secrets.iter() {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), print));
            }
        }
        text
    }

    /// `bytes` with every known secret replaced by its fingerprint (bytes that are not UTF-8
    /// are searched as lossy text: a secret is always UTF-8).
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let text = String::from_utf8_lossy(bytes);
        if !self.secrets.iter().any(|(s, _)| text.contains(s.as_str())) {
            return Cow::Borrowed(bytes);
        }
        Cow::Owned(self.redact(&text).into_owned().into_bytes())
    }

    /// `bytes` (a provider's answer) as a one-line quote for the log: secrets redacted, lossy
    /// UTF-8, whitespace trimmed, control characters escaped (no forged log lines), at most
    /// [`MAX_LOGGED_CHARS`] characters.
    pub fn log_quote(&self, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        let text = self.redact(text.trim());
        let mut quoted = String::new();
        for (i, c) in text.chars().enumerate() {
            if i == MAX_LOGGED_CHARS {
                quoted.push('…');
                break;
            }
            if c.is_control() {
                quoted.extend(c.escape_default());
            } else {
                quoted.push(c);
            }
        }
        quoted
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_show_a_quarter_at_most_four_chars_and_the_length() {
        assert_eq!(fingerprint("sk-UPSTREAM-SECRET-123"), "sk-U…(22 chars)");
        assert_eq!(fingerprint("test-key"), "te…(8 chars)");
        assert_eq!(fingerprint("abc"), "…(3 chars)");
        assert_eq!(fingerprint("ééééééééé"), "éé…(9 chars)");
    }

    #[test]
    fn redacts_every_secret_longest_first() {
        let redactor = Redactor::new(["key-1", "key-1-long-one", ""]);
        let text = "Bearer key-1-long-one, then key-1 and key-1 again";
        let redacted = redactor.redact(text);
        assert_eq!(
            redacted,
            "Bearer key…(14 chars), then k…(5 chars) and k…(5 chars) again"
        );
        assert!(matches!(redactor.redact("nothing"), Cow::Borrowed(_)));
        assert_eq!(
            &*redactor.redact_bytes(b"{\"m\": \"key-1\"}"),
            "{\"m\": \"k…(5 chars)\"}".as_bytes()
        );
        assert_eq!(format!("{redactor:?}"), "Redactor(2 secrets)");
    }

    #[test]
    fn log_quotes_are_one_bounded_line() {
        let redactor = Redactor::new(["s3cret-value"]);
        let quote = redactor.log_quote(b"  first line\nkey s3cret-value\r\n");
        assert_eq!(quote, "first line\\nkey s3c…(12 chars)");
        let long = "x".repeat(5000);
        let quote = redactor.log_quote(long.as_bytes());
        assert_eq!(quote.chars().count(), MAX_LOGGED_CHARS + 1);
    }
}
