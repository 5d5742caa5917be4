//! The mock's embeddings and its list of models, in OpenAI's shapes.

use serde_json::{json, Value};

use crate::gateway::openai::{EmbeddingInput, EmbeddingsRequest, InputSize};

/// The models the mock lists when none are configured (it answers any model name).
pub const DEFAULT_MODELS: [&str; 3] = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"];

/// The `created` time of every model the mock lists (Unix seconds): a fixed one, as a
/// provider's models have.
const CREATED: u64 = 1_700_000_000;

/// Dimensions of an embedding unless the request asks for others (`dimensions`).
pub const DEFAULT_DIMENSIONS: usize = 16;

/// Most dimensions an embedding may have.
const MAX_DIMENSIONS: usize = 3072;

/// `GET /models`: `models` as OpenAI lists them.
pub(super) fn list(models: &[String]) -> Value {
    let data: Vec<Value> = models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "mock"}))
        .collect();
    json!({"object": "list", "data": data})
}

/// The prompt tokens of an embeddings request: a quarter of each text's bytes, rounded up,
/// and one per token id of a tokenized input.
pub(super) fn prompt_tokens(input: &EmbeddingInput) -> usize {
    let tokens = |size: InputSize| match size {
        InputSize::Bytes(bytes) => bytes.div_ceil(4),
        InputSize::Tokens(tokens) => tokens,
    };
    input.sizes().into_iter().map(tokens).sum()
}

/// The answer to `req`: one embedding per input, a unit vector that depends only on that input
/// (the same text embeds the same), as floats or, with `"encoding_format": "base64"` (what
/// OpenAI's Python SDK asks for by default), as the base64 of their little-endian `f32`s.
pub(super) fn response(req: &EmbeddingsRequest) -> Value {
    let dimensions = req
        .extra
        .get("dimensions")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_DIMENSIONS, |d| {
            (d as usize).clamp(1, MAX_DIMENSIONS)
        });
    let base64 = req.extra.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let seeds: Vec<u64> = match &req.input {
        EmbeddingInput::Text(text) => vec![hash(text.as_bytes())],
        EmbeddingInput::Texts(texts) => texts.iter().map(|t| hash(t.as_bytes())).collect(),
        EmbeddingInput::Tokens(tokens) => vec![hash_tokens(tokens)],
        EmbeddingInput::TokenLists(lists) => lists.iter().map(|t| hash_tokens(t)).collect(),
    };
    let data: Vec<Value> = seeds
        .into_iter()
        .enumerate()
        .map(|(index, seed)| {
            let vector = unit_vector(seed, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::from(encode_base64(&bytes))
            } else {
                Value::from(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = prompt_tokens(&req.input);
    json!({
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

/// FNV-1a of `bytes`.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hash_tokens(tokens: &[u64]) -> u64 {
    let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
    hash(&bytes)
}

/// `dimensions` numbers drawn from `seed` (xorshift64*), scaled to length 1.
fn unit_vector(seed: u64, dimensions: usize) -> Vec<f32> {
    let mut state = seed | 1;
    let raw: Vec<f64> = (0..dimensions)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let x = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
            x as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    raw.iter().map(|x| (x / norm) as f32).collect()
}

/// Standard base64, with padding.
fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> EmbeddingsRequest {
        crate::gateway::openai::parse(body.as_bytes()).expect("a valid request")
    }

    #[test]
    fn base64_as_specified() {
        // RFC 4648's test vectors.
        for (bytes, text) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode_base64(bytes.as_bytes()), text, "{bytes:?}");
        }
    }

    #[test]
    fn one_unit_vector_per_input_and_the_usage() {
        let answer = response(&request(
            r#"{"model":"e","input":["hello","hello","a longer text"]}"#,
        ));
        let data = answer["data"].as_array().expect("data");
        assert_eq!(data.len(), 3);
        let vector = |i: usize| -> Vec<f64> {
            assert_eq!(data[i]["index"], i);
            assert_eq!(data[i]["object"], "embedding");
            let v = data[i]["embedding"].as_array().expect("floats");
            v.iter().map(|x| x.as_f64().expect("a float")).collect()
        };
        assert_eq!(vector(0).len(), DEFAULT_DIMENSIONS);
        let norm: f64 = vector(2).iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(vector(0), vector(1), "the same text embeds the same");
        assert_ne!(vector(0), vector(2));
        // 5 bytes: 2 tokens, twice; 13 bytes: 4.
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 8, "total_tokens": 8})
        );
        assert_eq!(answer["model"], "e");
        assert_eq!(answer["object"], "list");
    }

    #[test]
    fn base64_embeddings_and_dimensions() {
        let floats = response(&request(r#"{"model":"e","input":"x","dimensions":5}"#));
        let encoded = response(&request(
            r#"{"model":"e","input":"x","dimensions":5,"encoding_format":"base64"}"#,
        ));
        let floats: Vec<f32> = floats["data"][0]["embedding"]
            .as_array()
            .expect("floats")
            .iter()
            .map(|x| x.as_f64().expect("a float") as f32)
            .collect();
        assert_eq!(floats.len(), 5);
        let bytes: Vec<u8> = floats.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(encoded["data"][0]["embedding"], encode_base64(&bytes));
        let tokens = response(&request(r#"{"model":"e","input":[[1,2,3],[4]]}"#));
        assert_eq!(tokens["usage"]["prompt_tokens"], 4);
    }

    #[test]
    fn models_as_listed() {
        let listed = list(&["a".to_owned(), "b".to_owned()]);
        assert_eq!(listed["object"], "list");
        assert_eq!(
            listed["data"][1],
            json!({"id": "b", "object": "model", "created": CREATED, "owned_by": "mock"})
        );
    }
}
