//! `config.json`, checked: every number bounded and consistent before anything is allocated by
//! it (no candle here: the fuzz target builds this module alone).

use crate::EvalError;

/// The architectures (`model_type` in `config.json`) this build evaluates: the causal families
/// ([`CAUSAL`]) by next-token loss, `bert` by masked-LM loss ([`BertConfig`]).
pub const SUPPORTED: &[&str] = &["qwen2", "llama", "mistral", "bert"];

/// The causal families ([`ModelConfig`]).
pub const CAUSAL: &[&str] = &["qwen2", "llama", "mistral"];

/// `config.json`'s `model_type` (empty when it has none).
///
/// # Errors
/// [`EvalError::Config`] for bytes that are not a JSON object.
pub fn model_type(bytes: &[u8]) -> Result<String, EvalError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| EvalError::Config(format!("not JSON ({e})")))?;
    Ok(value
        .get("model_type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

/// The most layers, heads and hidden units a configuration may declare (far above any model
/// evaluated on one machine; a bound on what a hostile `config.json` can make us allocate
/// before the tensors are checked).
const MAX_LAYERS: usize = 1024;
const MAX_WIDTH: usize = 1 << 20;

/// What `config.json` says, as far as evaluation needs it. Fields a family lacks are optional.
#[derive(Debug, serde::Deserialize)]
struct RawConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rope_theta: Option<f64>,
    rms_norm_eps: f64,
    hidden_act: Option<serde_json::Value>,
    tie_word_embeddings: Option<bool>,
    use_sliding_window: Option<bool>,
    sliding_window: Option<usize>,
    rope_scaling: Option<serde_json::Value>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    bos_token_id: Option<serde_json::Value>,
    eos_token_id: Option<serde_json::Value>,
}

/// The activations (`hidden_act`) evaluated, by their names in `config.json`.
pub const ACTIVATIONS: &[&str] = &[
    "silu",
    "swish",
    "gelu",
    "gelu_new",
    "gelu_pytorch_tanh",
    "relu",
];

/// A configuration checked for evaluation: every size from 1 to 2^20 (layers to 1024), heads
/// dividing the hidden size, key/value heads dividing the heads, an even head size.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ModelConfig {
    /// The architecture (`model_type`).
    pub model_type: String,
    /// Tokens in the vocabulary (rows of the embedding).
    pub vocab_size: usize,
    /// The width of the residual stream.
    pub hidden_size: usize,
    /// The width of the MLP.
    pub intermediate_size: usize,
    /// Layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// The rotary embedding's base.
    pub rope_theta: f64,
    /// The RMS norm's epsilon.
    pub rms_norm_eps: f64,
    /// The MLP's activation, one of [`ACTIVATIONS`].
    pub hidden_act: String,
    /// Whether the output head is the embedding.
    pub tie_word_embeddings: bool,
    /// The attention window in tokens, at most the context evaluated.
    pub sliding_window: usize,
    /// The context evaluated, in tokens.
    pub context: usize,
    /// Whether the checkpoint's attention projections carry biases (Qwen2 does; Llama and
    /// Mistral do not, and get zero biases).
    pub attention_bias: bool,
    /// The token put before each document so its first token is predicted too (`bos_token_id`,
    /// else the first `eos_token_id`); `None`: the first token is charged `log2(vocab_size)`
    /// bits, as a uniform guess.
    pub prefix_token: Option<u32>,
}

/// `hidden_act`: one of `supported`, `default` when absent.
fn activation(
    value: Option<&serde_json::Value>,
    default: &str,
    supported: &[&str],
) -> Result<String, EvalError> {
    match value {
        None => Ok(default.to_owned()),
        Some(serde_json::Value::String(name)) if supported.contains(&name.as_str()) => {
            Ok(name.clone())
        }
        Some(v) => Err(EvalError::Config(format!(
            "hidden_act {v} is not evaluated; supported: {}",
            supported.join(", ")
        ))),
    }
}

fn first_id(v: Option<&serde_json::Value>) -> Option<u32> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::Array(a) => a
            .first()
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
        _ => None,
    }
}

impl ModelConfig {
    /// Parses and checks `config.json` for a context of `context` tokens.
    ///
    /// # Errors
    /// [`EvalError::Config`] for JSON that is not a configuration, numbers that do not fit
    /// together, or features this build does not evaluate; [`EvalError::Unsupported`] for an
    /// architecture outside [`SUPPORTED`].
    pub fn parse(bytes: &[u8], context: usize) -> Result<Self, EvalError> {
        let bad = |why: String| EvalError::Config(why);
        // The architecture first: a configuration of another family fails as unsupported,
        // whatever else it lacks.
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON ({e})")))?;
        let model_type = value
            .get("model_type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if model_type == "bert" {
            return Err(bad(
                "bert is a masked language model, evaluated by masked-LM loss (BertConfig); this takes the causal families: qwen2, llama, mistral".into(),
            ));
        }
        if !SUPPORTED.contains(&model_type.as_str()) {
            return Err(EvalError::Unsupported { model_type });
        }
        let raw: RawConfig = serde_json::from_value(value)
            .map_err(|e| bad(format!("not a {model_type} configuration ({e})")))?;
        if raw.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(bad(
                "rope_scaling is set: scaled rotary embeddings are not evaluated by this build"
                    .into(),
            ));
        }
        let heads = raw.num_attention_heads;
        let kv_heads = raw.num_key_value_heads.unwrap_or(heads);
        let fits = |n: usize| n > 0 && n <= MAX_WIDTH;
        if !(fits(raw.vocab_size)
            && fits(raw.hidden_size)
            && fits(raw.intermediate_size)
            && fits(heads)
            && fits(kv_heads)
            && raw.num_hidden_layers > 0
            && raw.num_hidden_layers <= MAX_LAYERS)
        {
            return Err(bad(format!(
                "sizes out of range (each from 1 to {MAX_WIDTH}, layers to {MAX_LAYERS})"
            )));
        }
        if !raw.hidden_size.is_multiple_of(heads) || !heads.is_multiple_of(kv_heads) {
            return Err(bad(format!(
                "{heads} attention heads and {kv_heads} key/value heads do not divide a hidden size of {}",
                raw.hidden_size
            )));
        }
        let head_dim = raw.hidden_size / heads;
        if !head_dim.is_multiple_of(2) || raw.head_dim.is_some_and(|d| d != head_dim) {
            return Err(bad(format!(
                "a head size of {head_dim} (hidden size / heads) must be even and equal head_dim"
            )));
        }
        let theta = raw.rope_theta.unwrap_or(10_000.0);
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !(positive(theta) && theta > 1.0 && positive(raw.rms_norm_eps)) {
            return Err(bad(
                "rope_theta and rms_norm_eps must be positive numbers".into()
            ));
        }
        let hidden_act = activation(raw.hidden_act.as_ref(), "silu", ACTIVATIONS)?;
        if raw.mlp_bias == Some(true) {
            return Err(bad(
                "mlp_bias is set: biased MLPs are not evaluated by this build".into(),
            ));
        }
        let attention_bias = match model_type.as_str() {
            "qwen2" => true,
            _ => raw.attention_bias == Some(true),
        };
        // The window used is `context` tokens: the rotary table and the sliding window need
        // no more (a window at least as wide as the context changes nothing).
        let sliding = match (raw.use_sliding_window, raw.sliding_window) {
            (Some(false), _) | (_, None) => context,
            (_, Some(w)) => w.clamp(1, context),
        };
        Ok(ModelConfig {
            prefix_token: first_id(raw.bos_token_id.as_ref())
                .or_else(|| first_id(raw.eos_token_id.as_ref()))
                .filter(|&t| (t as usize) < raw.vocab_size),
            model_type,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            layers: raw.num_hidden_layers,
            heads,
            kv_heads,
            rope_theta: theta,
            rms_norm_eps: raw.rms_norm_eps,
            hidden_act,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            sliding_window: sliding,
            context,
            attention_bias,
        })
    }
}

/// What a BERT `config.json` says, as far as evaluation needs it.
#[derive(Debug, serde::Deserialize)]
struct RawBert {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    max_position_embeddings: usize,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<serde_json::Value>,
    position_embedding_type: Option<String>,
}

/// The activations of a BERT (`hidden_act`): the exact GELU, its tanh approximation, ReLU.
pub const BERT_ACTIVATIONS: &[&str] = &["gelu", "gelu_new", "gelu_pytorch_tanh", "relu"];

/// A BERT configuration checked for masked-LM evaluation: sizes from 1 to 2^20 (layers to
/// 1024), heads dividing the hidden size, absolute positions, and a window of `context` tokens
/// that the position table holds.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BertConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// The width of the residual stream.
    pub hidden_size: usize,
    /// The width of the MLP.
    pub intermediate_size: usize,
    /// Layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Rows of the position table: the widest window.
    pub max_positions: usize,
    /// Rows of the token-type table (every token is of type 0).
    pub type_vocab_size: usize,
    /// The layer norms' epsilon.
    pub layer_norm_eps: f64,
    /// The activation, one of [`BERT_ACTIVATIONS`].
    pub hidden_act: String,
    /// The window evaluated, in tokens (with `[CLS]` and `[SEP]` when the tokenizer has them).
    pub context: usize,
}

impl BertConfig {
    /// Parses and checks a BERT `config.json` for a window of `context` tokens.
    ///
    /// # Errors
    /// [`EvalError::Unsupported`] for another architecture; [`EvalError::Config`] for numbers
    /// that do not fit together, features this build does not evaluate, or a window wider than
    /// the position table.
    pub fn parse(bytes: &[u8], context: usize) -> Result<Self, EvalError> {
        let bad = |why: String| EvalError::Config(why);
        let model_type = model_type(bytes)?;
        if model_type != "bert" {
            return Err(EvalError::Unsupported { model_type });
        }
        let raw: RawBert = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not a bert configuration ({e})")))?;
        let fits = |n: usize| n > 0 && n <= MAX_WIDTH;
        let types = raw.type_vocab_size.unwrap_or(2);
        if !(fits(raw.vocab_size)
            && fits(raw.hidden_size)
            && fits(raw.intermediate_size)
            && fits(raw.num_attention_heads)
            && fits(raw.max_position_embeddings)
            && fits(types)
            && raw.num_hidden_layers > 0
            && raw.num_hidden_layers <= MAX_LAYERS)
        {
            return Err(bad(format!(
                "sizes out of range (each from 1 to {MAX_WIDTH}, layers to {MAX_LAYERS})"
            )));
        }
        if !raw.hidden_size.is_multiple_of(raw.num_attention_heads) {
            return Err(bad(format!(
                "{} attention heads do not divide a hidden size of {}",
                raw.num_attention_heads, raw.hidden_size
            )));
        }
        if raw
            .position_embedding_type
            .as_deref()
            .is_some_and(|t| t != "absolute")
        {
            return Err(bad(
                "position_embedding_type is not \"absolute\": relative positions are not evaluated by this build"
                    .into(),
            ));
        }
        let eps = raw.layer_norm_eps.unwrap_or(1e-12);
        if !(eps.is_finite() && eps > 0.0) {
            return Err(bad("layer_norm_eps must be a positive number".into()));
        }
        let hidden_act = activation(raw.hidden_act.as_ref(), "gelu", BERT_ACTIVATIONS)?;
        if context > raw.max_position_embeddings {
            return Err(bad(format!(
                "a window of {context} tokens is wider than the model's {} positions (max_position_embeddings): evaluate with a context of at most that",
                raw.max_position_embeddings
            )));
        }
        Ok(BertConfig {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            layers: raw.num_hidden_layers,
            heads: raw.num_attention_heads,
            max_positions: raw.max_position_embeddings,
            type_vocab_size: types,
            layer_norm_eps: eps,
            hidden_act,
            context,
        })
    }
}
