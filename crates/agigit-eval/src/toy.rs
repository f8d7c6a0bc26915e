//! Small models whose losses are known in closed form, built by hand: for tests of an
//! evaluation pipeline (this crate's, a client's) and for demonstrations. They run through the
//! same candle-transformers forward pass as any checkpoint.
//!
//! Both use a vocabulary of the 256 code points U+0000..U+00FF, token id = code point
//! ([`byte_tokenizer_json`]), so ASCII text is one token per byte, and two Qwen2-shaped layers
//! that add nothing to the residual stream (their output projections are zero): the final state
//! is the current token's embedding, an indicator, which the final norm scales to `sqrt(H)`.
//!
//! - [`Toy::Uniform`]: the head is zero; every token has probability `1 / 256`: 8 bits.
//! - [`Toy::Cycle`]: after each byte of the cycle comes the next (after the last, the first);
//!   the head gives it the logit `ln 255`, so it has probability exactly one half (1 bit) and
//!   any other token `1 / 510` ([`WRONG_BITS`]). A byte outside the cycle predicts itself.
//! - [`Toy::Random`]: every weight drawn from a seed (uniform, small): a model whose attention
//!   and MLP do real work, for determinism checks (no closed form).
//!
//! [`bert`]: a small BERT masked language model with random weights (its vocabulary the same
//! 256 code points and `[CLS]`, `[SEP]`, `[MASK]`), for the masked-LM path.

use agigit_delta::Tensor;

use crate::ModelFiles;

/// Tokens in the vocabulary.
pub const VOCAB: usize = 256;
/// The hidden size: one dimension per token.
pub const HIDDEN: usize = 256;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const FFN: usize = 8;
const LAYERS: usize = 2;

/// Bits a [`Toy::Cycle`] model spends on a token that is not the one it predicts:
/// `log2(2 · 255)`.
pub const WRONG_BITS: f64 = 8.994_353_436_858_858;

/// Which toy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toy<'a> {
    /// Predicts nothing: 8 bits per token.
    Uniform,
    /// Predicts the next byte of this cycle with probability one half.
    Cycle(&'a [u8]),
    /// Every weight drawn from this seed.
    Random(u64),
}

/// `n` values uniform in `[-scale, scale)` from `seed` (SplitMix64; the same on every machine).
fn random(seed: &mut u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // The top 24 bits, as a fraction of 2^24: exact in f32.
            #[allow(clippy::cast_precision_loss, reason = "24 bits are exact in f32")]
            let unit = (z >> 40) as f32 / (1u64 << 24) as f32;
            (unit * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A tokenizer (`tokenizer.json`) of the 256 code points U+0000..U+00FF, id = code point.
pub fn byte_tokenizer_json() -> Vec<u8> {
    let vocab: serde_json::Map<String, serde_json::Value> = (0u8..=255)
        .map(|b| (char::from(b).to_string(), serde_json::Value::from(b)))
        .collect();
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": []}
    })
    .to_string()
    .into_bytes()
}

/// The toy's `config.json` for `model_type` (`qwen2`, `llama`, `mistral`), with `prefix` as
/// its `bos_token_id`.
pub fn config_json(model_type: &str, prefix: Option<u32>) -> Vec<u8> {
    serde_json::json!({
        "model_type": model_type, "vocab_size": VOCAB, "hidden_size": HIDDEN,
        "intermediate_size": FFN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "max_position_embeddings": 4096,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-12, "hidden_act": "silu",
        "tie_word_embeddings": false, "bos_token_id": prefix,
        "sliding_window": 4096, "use_sliding_window": false,
    })
    .to_string()
    .into_bytes()
}

fn f32s(shape: Vec<usize>, values: &[f32]) -> Tensor {
    // The shapes below are built to match their values.
    Tensor::from_f32(shape, values).unwrap_or_else(|_| unreachable!("a toy tensor's shape"))
}

fn zeros(shape: Vec<usize>) -> Tensor {
    let n = shape.iter().product();
    f32s(shape, &vec![0.0; n])
}

/// The toy's tensors, with Qwen2's attention biases when `biases`.
pub fn tensors(toy: Toy<'_>, biases: bool) -> Vec<(String, Tensor)> {
    let (v, h) = (VOCAB, HIDDEN);
    let mut embed = vec![0f32; v * h];
    for t in 0..v {
        embed[t * h + t] = 1.0;
    }
    let mut head = vec![0f32; v * h];
    if let Toy::Cycle(cycle) = toy {
        #[allow(clippy::cast_precision_loss, reason = "255 and 256 are exact")]
        let logit = ((v - 1) as f32).ln() / (h as f32).sqrt();
        for t in 0..v {
            let next = cycle
                .iter()
                .position(|&c| usize::from(c) == t)
                .map_or(t, |i| usize::from(cycle[(i + 1) % cycle.len()]));
            head[next * h + t] = logit;
        }
    }
    let mut out = vec![
        (
            "model.embed_tokens.weight".to_owned(),
            f32s(vec![v, h], &embed),
        ),
        (
            "model.norm.weight".to_owned(),
            f32s(vec![h], &[1.0; HIDDEN]),
        ),
        ("lm_head.weight".to_owned(), f32s(vec![v, h], &head)),
    ];
    let kv = h / HEADS * KV_HEADS;
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        let mut add = |name: &str, t: Tensor| out.push((format!("{p}.{name}"), t));
        add("self_attn.q_proj.weight", zeros(vec![h, h]));
        add("self_attn.k_proj.weight", zeros(vec![kv, h]));
        add("self_attn.v_proj.weight", zeros(vec![kv, h]));
        add("self_attn.o_proj.weight", zeros(vec![h, h]));
        add("mlp.gate_proj.weight", zeros(vec![FFN, h]));
        add("mlp.up_proj.weight", zeros(vec![FFN, h]));
        add("mlp.down_proj.weight", zeros(vec![h, FFN]));
        add("input_layernorm.weight", f32s(vec![h], &[1.0; HIDDEN]));
        add(
            "post_attention_layernorm.weight",
            f32s(vec![h], &[1.0; HIDDEN]),
        );
        if biases {
            add("self_attn.q_proj.bias", zeros(vec![h]));
            add("self_attn.k_proj.bias", zeros(vec![kv]));
            add("self_attn.v_proj.bias", zeros(vec![kv]));
        }
    }
    if let Toy::Random(mut seed) = toy {
        for (name, t) in &mut out {
            let shape = t.shape().to_vec();
            let n = shape.iter().product();
            // Norm weights near one; everything else small, as at initialization.
            let values = if name.ends_with("norm.weight") {
                random(&mut seed, n, 0.1)
                    .into_iter()
                    .map(|x| 1.0 + x)
                    .collect()
            } else {
                random(&mut seed, n, 0.05)
            };
            *t = f32s(shape, &values);
        }
    }
    out
}

/// The whole toy model for `model_type`, with `prefix` as its prefix token.
pub fn model(toy: Toy<'_>, model_type: &str, prefix: Option<u32>) -> ModelFiles {
    ModelFiles {
        config: config_json(model_type, prefix),
        tokenizer: byte_tokenizer_json(),
        tensors: tensors(toy, model_type == "qwen2"),
    }
}

/// The special tokens of the toy BERT's vocabulary, after the 256 code points.
pub const BERT_SPECIALS: [&str; 3] = ["[CLS]", "[SEP]", "[MASK]"];
/// Tokens in the toy BERT's vocabulary.
pub const BERT_VOCAB: usize = VOCAB + BERT_SPECIALS.len();
const BERT_HIDDEN: usize = 32;
const BERT_FFN: usize = 64;
/// The toy BERT's widest window.
pub const BERT_POSITIONS: usize = 128;

/// The toy BERT's `tokenizer.json`: the 256 code points and its special tokens.
pub fn bert_tokenizer_json() -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(&byte_tokenizer_json())
        .unwrap_or_else(|_| unreachable!("the byte tokenizer is JSON"));
    value["added_tokens"] = BERT_SPECIALS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            serde_json::json!({"id": VOCAB + i, "content": name, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    value.to_string().into_bytes()
}

/// The toy BERT's `config.json`.
pub fn bert_config_json() -> Vec<u8> {
    serde_json::json!({
        "model_type": "bert", "vocab_size": BERT_VOCAB, "hidden_size": BERT_HIDDEN,
        "intermediate_size": BERT_FFN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "max_position_embeddings": BERT_POSITIONS, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "hidden_act": "gelu", "position_embedding_type": "absolute",
    })
    .to_string()
    .into_bytes()
}

/// A `BertForMaskedLM` of two layers with every weight drawn from `seed` (norms near one), its
/// decoder tied to the word embeddings as Hugging Face checkpoints leave it (no
/// `cls.predictions.decoder.*`; the bias at `cls.predictions.bias`).
pub fn bert(seed: u64) -> ModelFiles {
    let (v, h, f) = (BERT_VOCAB, BERT_HIDDEN, BERT_FFN);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("bert.embeddings.word_embeddings.weight".into(), vec![v, h]),
        (
            "bert.embeddings.position_embeddings.weight".into(),
            vec![BERT_POSITIONS, h],
        ),
        (
            "bert.embeddings.token_type_embeddings.weight".into(),
            vec![2, h],
        ),
        ("bert.embeddings.LayerNorm.weight".into(), vec![h]),
        ("bert.embeddings.LayerNorm.bias".into(), vec![h]),
        ("cls.predictions.transform.dense.weight".into(), vec![h, h]),
        ("cls.predictions.transform.dense.bias".into(), vec![h]),
        ("cls.predictions.transform.LayerNorm.weight".into(), vec![h]),
        ("cls.predictions.transform.LayerNorm.bias".into(), vec![h]),
        ("cls.predictions.bias".into(), vec![v]),
    ];
    for i in 0..LAYERS {
        let p = format!("bert.encoder.layer.{i}");
        for (name, shape) in [
            ("attention.self.query", vec![h, h]),
            ("attention.self.key", vec![h, h]),
            ("attention.self.value", vec![h, h]),
            ("attention.output.dense", vec![h, h]),
            ("intermediate.dense", vec![f, h]),
            ("output.dense", vec![h, f]),
        ] {
            let rows = shape[0];
            shapes.push((format!("{p}.{name}.weight"), shape));
            shapes.push((format!("{p}.{name}.bias"), vec![rows]));
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("{p}.{norm}.weight"), vec![h]));
            shapes.push((format!("{p}.{norm}.bias"), vec![h]));
        }
    }
    let mut seed = seed;
    let tensors = shapes
        .into_iter()
        .map(|(name, shape)| {
            let n = shape.iter().product();
            let values: Vec<f32> = if name.ends_with("LayerNorm.weight") {
                random(&mut seed, n, 0.1)
                    .into_iter()
                    .map(|x| 1.0 + x)
                    .collect()
            } else {
                // Small, as at initialization: the guesses stay near uniform.
                random(&mut seed, n, 0.1)
            };
            let t = f32s(shape, &values);
            (name, t)
        })
        .collect();
    ModelFiles {
        config: bert_config_json(),
        tokenizer: bert_tokenizer_json(),
        tensors,
    }
}
