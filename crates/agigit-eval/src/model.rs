//! A causal language model from a commit's files: `config.json`, `tokenizer.json` and the
//! parameters, checked against each other before candle sees them.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::qwen2;

use crate::EvalError;

/// The architectures (`model_type` in `config.json`) this build evaluates.
pub const SUPPORTED: &[&str] = &["qwen2", "llama", "mistral"];

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

/// A configuration checked for evaluation.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// The architecture (`model_type`).
    pub model_type: String,
    /// Tokens in the vocabulary (rows of the embedding).
    pub vocab_size: usize,
    /// The token put before each document so its first token is predicted too (`bos_token_id`,
    /// else the first `eos_token_id`); `None`: the first token is charged `log2(vocab_size)`
    /// bits, as a uniform guess.
    pub prefix_token: Option<u32>,
    inner: qwen2::Config,
    /// Whether the checkpoint's attention projections carry biases (Qwen2 does; Llama and
    /// Mistral do not, and get zero biases).
    attention_bias: bool,
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
        let hidden_act: candle_nn::Activation = match &raw.hidden_act {
            None => candle_nn::Activation::Silu,
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|_| bad(format!("hidden_act {v} is not an activation candle knows")))?,
        };
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
        let inner = qwen2::Config {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            max_position_embeddings: context,
            sliding_window: sliding,
            max_window_layers: raw.num_hidden_layers,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            rope_theta: theta,
            rms_norm_eps: raw.rms_norm_eps,
            use_sliding_window: sliding < context,
            hidden_act,
        };
        Ok(ModelConfig {
            model_type,
            vocab_size: raw.vocab_size,
            prefix_token: first_id(raw.bos_token_id.as_ref())
                .or_else(|| first_id(raw.eos_token_id.as_ref()))
                .filter(|&t| (t as usize) < raw.vocab_size),
            inner,
            attention_bias,
        })
    }

    /// The number of layers.
    pub fn layers(&self) -> usize {
        self.inner.num_hidden_layers
    }
}

/// The model, ready to compute logits for every position.
pub(crate) struct CausalLm {
    model: qwen2::Model,
    lm_head: Tensor,
}

impl CausalLm {
    /// Builds the model from `tensors` (names as in the checkpoint, any float dtype; computed
    /// in f32 on the CPU). Every tensor the architecture reads must be there with the shape the
    /// configuration gives; others are ignored.
    pub(crate) fn load(
        config: &ModelConfig,
        mut tensors: HashMap<String, Tensor>,
    ) -> Result<Self, EvalError> {
        let c = &config.inner;
        let head_dim = c.hidden_size / c.num_attention_heads;
        let kv = head_dim * c.num_key_value_heads;
        let expect = |tensors: &HashMap<String, Tensor>, name: &str, shape: &[usize]| match tensors
            .get(name)
        {
            None => Err(EvalError::Parameters(format!(
                "{name} is missing (a {} of {} layers reads it)",
                config.model_type, c.num_hidden_layers
            ))),
            Some(t) if t.dims() != shape => Err(EvalError::Parameters(format!(
                "{name} is {:?}, the configuration makes it {shape:?}",
                t.dims()
            ))),
            Some(_) => Ok(()),
        };
        let h = c.hidden_size;
        expect(&tensors, "model.embed_tokens.weight", &[c.vocab_size, h])?;
        expect(&tensors, "model.norm.weight", &[h])?;
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            for (name, shape) in [
                ("self_attn.q_proj.weight", vec![h, h]),
                ("self_attn.k_proj.weight", vec![kv, h]),
                ("self_attn.v_proj.weight", vec![kv, h]),
                ("self_attn.o_proj.weight", vec![h, h]),
                ("mlp.gate_proj.weight", vec![c.intermediate_size, h]),
                ("mlp.up_proj.weight", vec![c.intermediate_size, h]),
                ("mlp.down_proj.weight", vec![h, c.intermediate_size]),
                ("input_layernorm.weight", vec![h]),
                ("post_attention_layernorm.weight", vec![h]),
            ] {
                expect(&tensors, &format!("{p}.{name}"), &shape)?;
            }
            for (proj, len) in [("q_proj", h), ("k_proj", kv), ("v_proj", kv)] {
                let name = format!("{p}.self_attn.{proj}.bias");
                if config.attention_bias {
                    expect(&tensors, &name, &[len])?;
                } else {
                    // Llama and Mistral: the same layer without biases.
                    let zeros = Tensor::zeros(len, DType::F32, &Device::Cpu)?;
                    tensors.insert(name, zeros);
                }
            }
        }
        let lm_head = match tensors.get("lm_head.weight") {
            Some(_) => {
                expect(&tensors, "lm_head.weight", &[c.vocab_size, h])?;
                tensors.get("lm_head.weight").cloned()
            }
            None => tensors.get("model.embed_tokens.weight").cloned(),
        }
        .ok_or_else(|| EvalError::Parameters("lm_head.weight is missing".into()))?;
        if !c.tie_word_embeddings && !tensors.contains_key("lm_head.weight") {
            return Err(EvalError::Parameters(
                "lm_head.weight is missing and tie_word_embeddings is not set".into(),
            ));
        }
        let mut f32s = HashMap::with_capacity(tensors.len());
        for (name, t) in tensors {
            f32s.insert(name, t.to_dtype(DType::F32)?);
        }
        let lm_head = lm_head.to_dtype(DType::F32)?;
        let vb = VarBuilder::from_tensors(f32s, DType::F32, &Device::Cpu);
        let model = qwen2::Model::new(c, vb)?;
        Ok(CausalLm { model, lm_head })
    }

    /// Natural-log probabilities of `targets[i]` after `inputs[..=i]`, for each `i` (a fresh
    /// context: nothing of an earlier call is kept).
    pub(crate) fn target_log_probs(
        &mut self,
        inputs: &[u32],
        targets: &[u32],
    ) -> Result<Vec<f32>, EvalError> {
        self.model.clear_kv_cache();
        let input = Tensor::new(inputs, &Device::Cpu)?.unsqueeze(0)?;
        let hidden = self.model.forward(&input, 0, None)?.squeeze(0)?;
        let logits = hidden.matmul(&self.lm_head.t()?)?;
        let log_probs = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?;
        let targets = Tensor::new(targets, &Device::Cpu)?.unsqueeze(1)?;
        let picked = log_probs.gather(&targets, 1)?.squeeze(1)?;
        Ok(picked.to_vec1::<f32>()?)
    }
}
