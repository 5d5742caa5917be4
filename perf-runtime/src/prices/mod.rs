//! What a backend call cost: a table of USD prices per token by provider and model, and the
//! cost of a call's [`Usage`] under it.
//!
//! The table is made in code ([`PriceTable::insert`]) or, with the `prices` feature, read from
//! a JSON file with the field names of LiteLLM's `model_prices_and_context_window.json`
//! ([`PriceTable::from_json`], [`Metrics::load_prices`](crate::Metrics::load_prices)). A
//! [`Metrics`](crate::Metrics) holds one table at a time, swapped whole
//! ([`Metrics::set_prices`](crate::Metrics::set_prices)): a backend set (provider, model,
//! endpoint) resolves its price once per table, so a call prices its usage with two atomic
//! loads, and a reload never makes a request wait.
//!
//! # What a call costs
//!
//! With `u` the call's usage (OpenAI's convention: `input` counts every prompt token, those read
//! from and written to the provider's cache included; `output` counts every generated token,
//! reasoning included), and the rates of the tier the prompt falls in (the highest
//! `above` threshold that `u.input` exceeds, else the base rates):
//!
//! ```text
//! cost = (input − cached_input − cache_write) × input rate
//!      + cached_input × cache-read rate   (the input rate if the table has none)
//!      + cache_write  × cache-write rate  (the input rate if the table has none)
//!      + (output − reasoning) × output rate
//!      + reasoning × reasoning rate       (the output rate if the table has none)
//! ```

#[cfg(feature = "prices")]
mod litellm;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, RwLock};

#[cfg(feature = "prices")]
pub use litellm::PriceError;

use crate::chunk::Usage;

/// USD per token of each kind of token; `None` where the provider prices it like another kind
/// (see the module's docs) or, in a tier, like the base rates.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// A prompt token (`input_cost_per_token`).
    pub input: Option<f64>,
    /// A generated token (`output_cost_per_token`).
    pub output: Option<f64>,
    /// A prompt token read from the provider's cache (`cache_read_input_token_cost`).
    pub cache_read: Option<f64>,
    /// A prompt token written to the provider's cache (`cache_creation_input_token_cost`).
    pub cache_write: Option<f64>,
    /// A reasoning token, where priced apart from output (`output_cost_per_reasoning_token`).
    pub reasoning: Option<f64>,
}

impl Rates {
    /// Input and output rates, in USD per token.
    pub fn per_token(input: f64, output: f64) -> Self {
        Rates {
            input: Some(input),
            output: Some(output),
            ..Rates::default()
        }
    }

    /// Every rate set here, else `base`'s.
    fn or(self, base: Rates) -> Rates {
        Rates {
            input: self.input.or(base.input),
            output: self.output.or(base.output),
            cache_read: self.cache_read.or(base.cache_read),
            cache_write: self.cache_write.or(base.cache_write),
            reasoning: self.reasoning.or(base.reasoning),
        }
    }

    /// Whether every rate is a finite number, none below 0.
    fn valid(&self) -> bool {
        [
            self.input,
            self.output,
            self.cache_read,
            self.cache_write,
            self.reasoning,
        ]
        .into_iter()
        .flatten()
        .all(|rate| rate.is_finite() && rate >= 0.0)
    }

    fn bits(&self) -> [u64; 5] {
        let bits = |rate: Option<f64>| rate.map_or(u64::MAX, f64::to_bits);
        [
            bits(self.input),
            bits(self.output),
            bits(self.cache_read),
            bits(self.cache_write),
            bits(self.reasoning),
        ]
    }
}

/// The price of one provider's model: base rates, and the rates of the tiers above a prompt
/// size where the provider has them (LiteLLM's `..._above_200k_tokens`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Price {
    base: Rates,
    /// `(above, rates)`, by increasing `above`: a call whose prompt has more than `above` tokens
    /// is priced at `rates` (and the base rates where they are `None`).
    tiers: Vec<(u64, Rates)>,
}

impl Price {
    /// A price of these base rates.
    pub fn new(base: Rates) -> Self {
        Price {
            base,
            tiers: Vec::new(),
        }
    }

    /// Adds a tier: a call whose prompt has more than `above` tokens is priced at `rates`
    /// (falling back to the base rates where `rates` has none).
    pub fn above(mut self, above: u64, rates: Rates) -> Self {
        match self.tiers.iter_mut().find(|(at, _)| *at == above) {
            Some((_, tier)) => *tier = rates.or(*tier),
            None => self.tiers.push((above, rates)),
        }
        self.tiers.sort_by_key(|(at, _)| *at);
        self
    }

    /// The base rates.
    pub fn base(&self) -> Rates {
        self.base
    }

    /// The rates a prompt of `input` tokens is priced at.
    pub fn rates_for(&self, input: u64) -> Rates {
        match self.tiers.iter().rev().find(|(above, _)| input > *above) {
            Some((_, tier)) => tier.or(self.base),
            None => self.base,
        }
    }

    /// What `usage` costs, in USD (see the module's docs).
    pub fn cost(&self, usage: &Usage) -> f64 {
        let rates = self.rates_for(usage.input);
        let input = rates.input.unwrap_or(0.0);
        let output = rates.output.unwrap_or(0.0);
        let cached = usage.cached_input.min(usage.input);
        let written = usage.cache_write.min(usage.input - cached);
        let fresh = usage.input - cached - written;
        let reasoning = usage.reasoning.min(usage.output);
        let text = usage.output - reasoning;
        fresh as f64 * input
            + cached as f64 * rates.cache_read.unwrap_or(input)
            + written as f64 * rates.cache_write.unwrap_or(input)
            + text as f64 * output
            + reasoning as f64 * rates.reasoning.unwrap_or(output)
    }

    fn valid(&self) -> bool {
        self.base.valid() && self.tiers.iter().all(|(_, rates)| rates.valid())
    }

    /// The same price, made once for the process: a table swapped in keeps the prices that did
    /// not change, so reloading a file leaks nothing new.
    fn interned(self) -> &'static Price {
        static INTERNED: Mutex<Option<HashMap<Vec<u64>, &'static Price>>> = Mutex::new(None);
        let mut key: Vec<u64> = self.base.bits().to_vec();
        for (above, rates) in &self.tiers {
            key.push(*above);
            key.extend(rates.bits());
        }
        let mut interned = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
        interned
            .get_or_insert_with(HashMap::new)
            .entry(key)
            .or_insert_with(|| Box::leak(Box::new(self)))
    }
}

/// Prices by provider and model.
///
/// [`get`](Self::get) looks a call's `provider` and `model` labels up: first the pair
/// (an entry inserted with that provider: LiteLLM's `litellm_provider`), then the model alone
/// (an entry's name as written, `gpt-4o` or `azure/gpt-4o`).
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    pairs: HashMap<(Box<str>, Box<str>), &'static Price>,
    models: HashMap<Box<str>, &'static Price>,
}

impl PriceTable {
    /// An empty table: every model is unpriced.
    pub fn new() -> Self {
        PriceTable::default()
    }

    /// Prices `model` (of `provider`, if given; the model alone matches any provider). A
    /// `model` written `provider/name` is found under that provider as `name` too. A price with
    /// a negative, infinite or NaN rate is refused (`false`).
    pub fn insert(&mut self, provider: Option<&str>, model: &str, price: Price) -> bool {
        if !price.valid() {
            return false;
        }
        let price = price.interned();
        if let Some(provider) = provider {
            let name = model
                .strip_prefix(provider)
                .and_then(|rest| rest.strip_prefix('/'))
                .unwrap_or(model);
            self.pairs.insert((provider.into(), name.into()), price);
        }
        self.models.insert(model.into(), price);
        true
    }

    /// The price of `provider`'s `model`, if the table has one.
    pub fn get(&self, provider: &str, model: &str) -> Option<&'static Price> {
        let pair: (Box<str>, Box<str>) = (provider.into(), model.into());
        self.pairs
            .get(&pair)
            .or_else(|| self.models.get(model))
            .copied()
    }

    /// How many models (entries by name) are priced.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether no model is priced.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// The table a [`Metrics`](crate::Metrics) prices calls with, and its generation: 0 while no
/// table was ever set (no cost is counted then, and no token is unpriced), one more with each
/// table set.
pub(crate) struct PriceSlot {
    table: RwLock<Option<Arc<PriceTable>>>,
    generation: AtomicU64,
}

impl PriceSlot {
    pub const fn new() -> Self {
        PriceSlot {
            table: RwLock::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// Swaps `table` in: backend sets resolve their price again at their next call.
    pub fn set(&self, table: PriceTable) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(table));
        self.generation.fetch_add(1, Release);
    }

    /// The table now.
    pub fn table(&self) -> Option<Arc<PriceTable>> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The generation now (0: no table).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Acquire)
    }

    /// The price of `provider`'s `model` in the table now. Takes a read lock: once per backend
    /// set and table.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&'static Price> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        table.as_ref()?.get(provider, model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, cached: u64, write: u64, reasoning: u64) -> Usage {
        Usage {
            input,
            output,
            cached_input: cached,
            reasoning,
            cache_write: write,
        }
    }

    #[test]
    fn a_cost_is_each_kind_of_token_at_its_rate() {
        let price = Price::new(Rates {
            cache_read: Some(0.5e-6),
            cache_write: Some(3e-6),
            reasoning: Some(20e-6),
            ..Rates::per_token(2e-6, 10e-6)
        });
        // 1,000 prompt tokens: 200 read from the cache, 100 written, 700 fresh; 500 generated,
        // 300 of them reasoning.
        let cost = price.cost(&usage(1000, 500, 200, 100, 300));
        let by_hand = 700.0 * 2e-6 + 200.0 * 0.5e-6 + 100.0 * 3e-6 + 200.0 * 10e-6 + 300.0 * 20e-6;
        assert!((cost - by_hand).abs() < 1e-15, "{cost} {by_hand}");
        // Without cache or reasoning rates, those tokens are priced as input and output.
        let plain = Price::new(Rates::per_token(2e-6, 10e-6));
        let cost = plain.cost(&usage(1000, 500, 200, 100, 300));
        assert!((cost - (1000.0 * 2e-6 + 500.0 * 10e-6)).abs() < 1e-15);
    }

    #[test]
    fn a_prompt_above_a_tier_is_priced_at_the_tier_whole() {
        let price = Price::new(Rates::per_token(1e-6, 4e-6))
            .above(200_000, Rates::per_token(2e-6, 8e-6))
            .above(
                128_000,
                Rates {
                    input: Some(1.5e-6),
                    ..Rates::default()
                },
            );
        assert_eq!(price.rates_for(128_000), Rates::per_token(1e-6, 4e-6));
        assert_eq!(price.rates_for(128_001).input, Some(1.5e-6));
        assert_eq!(price.rates_for(128_001).output, Some(4e-6));
        assert_eq!(price.rates_for(200_001), Rates::per_token(2e-6, 8e-6));
        let cost = price.cost(&usage(250_000, 1000, 0, 0, 0));
        assert!((cost - (250_000.0 * 2e-6 + 1000.0 * 8e-6)).abs() < 1e-12);
    }

    #[test]
    fn lookup_by_provider_and_model_then_by_model() {
        let mut table = PriceTable::new();
        let openai = Price::new(Rates::per_token(1e-6, 2e-6));
        let azure = Price::new(Rates::per_token(3e-6, 4e-6));
        assert!(table.insert(Some("openai"), "gpt-4o", openai.clone()));
        assert!(table.insert(Some("azure"), "azure/gpt-4o", azure.clone()));
        assert!(!table.insert(None, "bad", Price::new(Rates::per_token(-1.0, 0.0))));
        assert_eq!(
            table.get("openai", "gpt-4o"),
            Some(&openai).map(|p| p.clone().interned())
        );
        assert_eq!(table.get("azure", "gpt-4o").unwrap(), &azure);
        assert_eq!(table.get("mock", "gpt-4o").unwrap(), &openai);
        assert_eq!(table.get("mock", "azure/gpt-4o").unwrap(), &azure);
        assert!(table.get("openai", "gpt-5").is_none());
        assert_eq!(table.len(), 2);
    }
}
