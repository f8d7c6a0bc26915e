//! A causal language model from a commit's files, checked against its configuration before
//! candle sees it, and run through candle-transformers' Qwen2 model.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::qwen2;

use crate::{EvalError, ModelConfig};

/// candle's configuration for a checked one.
fn qwen2_config(c: &ModelConfig) -> Result<qwen2::Config, EvalError> {
    let hidden_act: candle_nn::Activation =
        serde_json::from_value(serde_json::Value::String(c.hidden_act.clone())).map_err(|_| {
            EvalError::Config(format!(
                "hidden_act {:?} is not one candle knows",
                c.hidden_act
            ))
        })?;
    Ok(qwen2::Config {
        vocab_size: c.vocab_size,
        hidden_size: c.hidden_size,
        intermediate_size: c.intermediate_size,
        num_hidden_layers: c.layers,
        num_attention_heads: c.heads,
        num_key_value_heads: c.kv_heads,
        // The rotary table and the mask need no more than the context evaluated.
        max_position_embeddings: c.context,
        sliding_window: c.sliding_window,
        max_window_layers: c.layers,
        tie_word_embeddings: c.tie_word_embeddings,
        rope_theta: c.rope_theta,
        rms_norm_eps: c.rms_norm_eps,
        use_sliding_window: c.sliding_window < c.context,
        hidden_act,
    })
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
        let c = &qwen2_config(config)?;
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

    /// The final hidden state (after the last norm) at every position of `inputs`, `[len,
    /// hidden]`, in a fresh context.
    pub(crate) fn hidden(&mut self, inputs: &[u32]) -> Result<Tensor, EvalError> {
        self.model.clear_kv_cache();
        let input = Tensor::new(inputs, &Device::Cpu)?.unsqueeze(0)?;
        Ok(self.model.forward(&input, 0, None)?.squeeze(0)?)
    }

    /// The output projection, `[vocab, hidden]`, f32.
    pub(crate) fn lm_head(&self) -> &Tensor {
        &self.lm_head
    }

    /// Natural-log probabilities of `targets[i]` after `inputs[..=i]`, for each `i` (a fresh
    /// context: nothing of an earlier call is kept).
    pub(crate) fn target_log_probs(
        &mut self,
        inputs: &[u32],
        targets: &[u32],
    ) -> Result<Vec<f32>, EvalError> {
        let hidden = self.hidden(inputs)?;
        let logits = hidden.matmul(&self.lm_head.t()?)?;
        let log_probs = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?;
        let targets = Tensor::new(targets, &Device::Cpu)?.unsqueeze(1)?;
        let picked = log_probs.gather(&targets, 1)?.squeeze(1)?;
        Ok(picked.to_vec1::<f32>()?)
    }
}
