//! A price table read from JSON with the field names of LiteLLM's
//! `model_prices_and_context_window.json`: an object of models, each an object of fields.
//!
//! Read per model: `litellm_provider` (or `provider`), `input_cost_per_token`,
//! `output_cost_per_token`, `cache_read_input_token_cost`, `cache_creation_input_token_cost`,
//! `output_cost_per_reasoning_token`, and each of them followed by `_above_<N>k_tokens` (a tier
//! for prompts of more than N × 1,000 tokens). Every other field is ignored, and so are the
//! entry `sample_spec` (LiteLLM's description of the fields) and entries that price neither
//! input nor output tokens (images, audio by the second). A field above given anything but a
//! number (or `null`), or a negative one, is an error naming its line.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::{Price, PriceTable, Rates};

/// Why a price file could not be read. A table that fails to load leaves the one in use as it
/// was.
#[derive(Debug)]
pub struct PriceError {
    path: Option<PathBuf>,
    line: usize,
    column: usize,
    message: String,
}

impl PriceError {
    /// The line of the file the error is on (1-based; 0 when the file could not be read).
    pub fn line(&self) -> usize {
        self.line
    }
}

impl fmt::Display for PriceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.as_deref().unwrap_or(Path::new("price table"));
        if self.line == 0 {
            write!(f, "{}: {}", path.display(), self.message)
        } else {
            write!(
                f,
                "{}: line {}, column {}: {}",
                path.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for PriceError {}

impl PriceTable {
    /// A table from the text of a LiteLLM-style price file (see the field names above).
    ///
    /// ```
    /// let table = perf_runtime::prices::PriceTable::from_json(r#"{
    ///     "gpt-4o": {
    ///         "litellm_provider": "openai",
    ///         "input_cost_per_token": 2.5e-6,
    ///         "output_cost_per_token": 1e-5,
    ///         "cache_read_input_token_cost": 1.25e-6,
    ///         "max_tokens": 16384
    ///     }
    /// }"#).unwrap();
    /// let price = table.get("openai", "gpt-4o").unwrap();
    /// assert_eq!(price.base().input, Some(2.5e-6));
    /// ```
    pub fn from_json(text: &str) -> Result<PriceTable, PriceError> {
        let entries: HashMap<String, Entry> =
            serde_json::from_str(text).map_err(|error| PriceError {
                path: None,
                line: error.line(),
                column: error.column(),
                message: error
                    .to_string()
                    .split(" at line ")
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            })?;
        let mut table = PriceTable::new();
        for (model, entry) in entries {
            if model == "sample_spec" || (entry.base.input.is_none() && entry.base.output.is_none())
            {
                continue;
            }
            let mut price = Price::new(entry.base);
            for (above, rates) in entry.tiers {
                price = price.above(above, rates);
            }
            table.insert(entry.provider.as_deref(), &model, price);
        }
        Ok(table)
    }

    /// A table from the LiteLLM-style price file at `path`; the error names the file and line.
    pub fn from_file(path: impl AsRef<Path>) -> Result<PriceTable, PriceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| PriceError {
            path: Some(path.to_owned()),
            line: 0,
            column: 0,
            message: error.to_string(),
        })?;
        PriceTable::from_json(&text).map_err(|error| PriceError {
            path: Some(path.to_owned()),
            ..error
        })
    }
}

/// One model's fields that matter here.
#[derive(Default)]
struct Entry {
    provider: Option<String>,
    base: Rates,
    tiers: Vec<(u64, Rates)>,
}

/// Which rate of a [`Rates`] a field sets.
type RateOf = fn(&mut Rates) -> &mut Option<f64>;

/// The rate a field name sets: `(rate, tier threshold in tokens)`.
fn field(name: &str) -> Option<(RateOf, Option<u64>)> {
    let (stem, above) = match name.split_once("_above_") {
        Some((stem, tier)) => {
            let thousands = tier.strip_suffix("k_tokens")?.parse::<u64>().ok()?;
            (stem, Some(thousands.checked_mul(1000)?))
        }
        None => (name, None),
    };
    let rate: RateOf = match stem {
        "input_cost_per_token" => |r| &mut r.input,
        "output_cost_per_token" => |r| &mut r.output,
        "cache_read_input_token_cost" => |r| &mut r.cache_read,
        "cache_creation_input_token_cost" => |r| &mut r.cache_write,
        "output_cost_per_reasoning_token" => |r| &mut r.reasoning,
        _ => return None,
    };
    Some((rate, above))
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Entry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a model's object of prices")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
                let mut entry = Entry::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "litellm_provider" || key == "provider" {
                        entry.provider = map.next_value::<Option<String>>()?;
                        continue;
                    }
                    let Some((rate, above)) = field(&key) else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    let Some(value) = map.next_value::<Option<f64>>()? else {
                        continue;
                    };
                    if !(value.is_finite() && value >= 0.0) {
                        return Err(de::Error::custom(format!(
                            "`{key}` is {value}: a price is a number of USD per token, not \
                             below 0"
                        )));
                    }
                    let rates = match above {
                        None => &mut entry.base,
                        Some(above) => match entry.tiers.iter().position(|(at, _)| *at == above) {
                            Some(at) => &mut entry.tiers[at].1,
                            None => {
                                entry.tiers.push((above, Rates::default()));
                                &mut entry.tiers.last_mut().expect("just pushed").1
                            }
                        },
                    };
                    *rate(rates) = Some(value);
                }
                Ok(entry)
            }
        }
        deserializer.deserialize_map(EntryVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_litellm_fields_and_ignores_the_rest() {
        let table = PriceTable::from_json(
            r#"{
              "sample_spec": {"max_tokens": "LEGACY", "input_cost_per_token": 0.0, "litellm_provider": "one of"},
              "claude-sonnet-4": {
                "litellm_provider": "anthropic", "mode": "chat", "supports_vision": true,
                "input_cost_per_token": 3e-6, "output_cost_per_token": 1.5e-5,
                "cache_read_input_token_cost": 3e-7, "cache_creation_input_token_cost": 3.75e-6,
                "input_cost_per_token_above_200k_tokens": 6e-6,
                "output_cost_per_token_above_200k_tokens": 2.25e-5,
                "cache_creation_input_token_cost_above_1hr": 6e-6,
                "tool_use_system_prompt_tokens": 159, "search_context_cost_per_query": {"a": 1}
              },
              "dall-e-3": {"litellm_provider": "openai", "input_cost_per_pixel": 1e-8},
              "o3": {"input_cost_per_token": 2e-6, "output_cost_per_token": 8e-6, "output_cost_per_reasoning_token": null}
            }"#,
        )
        .unwrap();
        assert_eq!(table.len(), 2);
        let claude = table.get("anthropic", "claude-sonnet-4").unwrap();
        assert_eq!(claude.base().cache_write, Some(3.75e-6));
        assert_eq!(claude.rates_for(200_001).input, Some(6e-6));
        assert_eq!(claude.rates_for(200_001).cache_read, Some(3e-7));
        assert!(table.get("openai", "dall-e-3").is_none());
        assert!(table.get("x", "o3").unwrap().base().reasoning.is_none());
    }

    #[test]
    fn a_bad_file_names_its_line() {
        let text = "{\n  \"gpt-4o\": {\n    \"input_cost_per_token\": \"cheap\"\n  }\n}";
        let error = PriceTable::from_json(text).unwrap_err();
        assert_eq!(error.line(), 3, "{error}");
        assert!(error.to_string().contains("line 3"), "{error}");
        let error =
            PriceTable::from_json("{\n \"a\": {\n \"input_cost_per_token\": -1e-6}}").unwrap_err();
        assert_eq!(error.line(), 3, "{error}");
        assert!(error.to_string().contains("not below 0"), "{error}");
        let error = PriceTable::from_json("{\n \"a\": {,}\n}").unwrap_err();
        assert_eq!(error.line(), 2, "{error}");
        let missing = PriceTable::from_file("/nonexistent/prices.json").unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("/nonexistent/prices.json: "),
            "{missing}"
        );
    }
}
