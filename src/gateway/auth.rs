//! The gateway's own API keys, checked from `Authorization: Bearer KEY`.

use axum::http::{header, HeaderMap};

use super::error::ApiError;

/// The keys clients may use, each with the tenant its requests are counted under, if any.
#[derive(Clone)]
pub struct ApiKeys {
    keys: Vec<Key>,
}

/// A key's bytes and its tenant.
type Key = (Box<[u8]>, Option<Box<str>>);

impl ApiKeys {
    /// The keys in `keys`, of no tenant; empty ones are ignored.
    pub fn new<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::with_tenants(keys.into_iter().map(|k| (k, None::<&str>)))
    }

    /// The keys in `keys`, each with its tenant; empty keys are ignored.
    pub fn with_tenants<I, K, T>(keys: I) -> Self
    where
        I: IntoIterator<Item = (K, Option<T>)>,
        K: AsRef<str>,
        T: AsRef<str>,
    {
        let keys = keys
            .into_iter()
            .filter(|(k, _)| !k.as_ref().is_empty())
            .map(|(k, t)| (k.as_ref().as_bytes().into(), t.map(|t| t.as_ref().into())))
            .collect();
        ApiKeys { keys }
    }

    /// Accepts the request if it carries one of the keys as a bearer token, with that key's
    /// tenant: 401 otherwise.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
        let token = bearer_token(headers).ok_or_else(|| {
            ApiError::unauthorized("missing API key: send it as `Authorization: Bearer YOUR_KEY`")
        })?;
        // Compare against every key, each in constant time, so timing tells nothing.
        let found = self.keys.iter().fold(None, |found, (key, tenant)| {
            if constant_time_eq(key, token) {
                Some(tenant.as_deref())
            } else {
                found
            }
        });
        found.ok_or_else(|| ApiError::unauthorized("incorrect API key provided"))
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

/// The token of an `Authorization: Bearer TOKEN` header (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn checks_bearer_keys() {
        let keys = ApiKeys::new(["demo-key", "other"]);
        assert_eq!(keys.check(&with_auth("Bearer demo-key")).ok(), Some(None));
        assert!(keys.check(&with_auth("bearer other")).is_ok());
        assert!(keys.check(&with_auth("Bearer demo-keyx")).is_err());
        assert!(keys.check(&with_auth("Basic demo-key")).is_err());
        assert!(keys.check(&with_auth("Bearer")).is_err());
        assert!(keys.check(&HeaderMap::new()).is_err());
        let keys = ApiKeys::with_tenants([("sk-a", Some("acme")), ("sk-b", None)]);
        assert_eq!(
            keys.check(&with_auth("Bearer sk-a")).ok(),
            Some(Some("acme"))
        );
        assert_eq!(keys.check(&with_auth("Bearer sk-b")).ok(), Some(None));
    }
}
