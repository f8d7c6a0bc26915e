//! A BERT masked language model from a commit's files, run through candle-transformers'
//! `BertForMaskedLM`, and scored by masked-LM loss with a fixed, seeded masking: every token of
//! a window is masked exactly once, in [`GROUPS`] groups drawn by a seeded shuffle, and charged
//! `-log2 p` of itself given the rest of the window (a pseudo-log-likelihood).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert;

use crate::compare::Stream;
use crate::{BertConfig, EvalError};

/// Groups a window's tokens are masked in: one in seven at a time, about the 15% BERT is
/// trained with.
pub(crate) const GROUPS: usize = 7;

/// The masking's seed (with the window's length): the same groups on every machine.
const MASK_SEED: u64 = 0x6167_6967_6974_6d6c; // "agigitml"

fn bert_config(c: &BertConfig) -> bert::Config {
    let hidden_act = match c.hidden_act.as_str() {
        "gelu" => bert::HiddenAct::Gelu,
        "relu" => bert::HiddenAct::Relu,
        // gelu_new, gelu_pytorch_tanh: the tanh approximation.
        _ => bert::HiddenAct::GeluApproximate,
    };
    bert::Config {
        vocab_size: c.vocab_size,
        hidden_size: c.hidden_size,
        num_hidden_layers: c.layers,
        num_attention_heads: c.heads,
        intermediate_size: c.intermediate_size,
        hidden_act,
        hidden_dropout_prob: 0.0,
        max_position_embeddings: c.max_positions,
        type_vocab_size: c.type_vocab_size,
        initializer_range: 0.02,
        layer_norm_eps: c.layer_norm_eps,
        pad_token_id: 0,
        position_embedding_type: bert::PositionEmbeddingType::Absolute,
        use_cache: false,
        classifier_dropout: None,
        model_type: Some("bert".to_owned()),
    }
}

/// The positions `0..n` in at most [`GROUPS`] groups, by a shuffle seeded with `n`.
pub(crate) fn groups(n: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut stream = Stream(MASK_SEED ^ n as u64);
    for i in (1..n).rev() {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "below i + 1, which is a usize"
        )]
        let j = stream.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let g = GROUPS.min(n);
    (0..g)
        .map(|k| {
            let mut group: Vec<usize> = order.iter().skip(k).step_by(g).copied().collect();
            group.sort_unstable();
            group
        })
        .collect()
}

/// The model, ready to score masked tokens.
pub(crate) struct MaskedLm {
    model: bert::BertForMaskedLM,
}

impl MaskedLm {
    /// Builds the model from `tensors` (those of a `BertForMaskedLM` checkpoint: `bert.*` and
    /// `cls.predictions.*`; old `gamma`/`beta` norm names accepted; the decoder tied to the word
    /// embeddings and its bias at `cls.predictions.bias` when the checkpoint leaves them out).
    /// Every tensor read must have the shape the configuration gives.
    pub(crate) fn load(
        config: &BertConfig,
        tensors: impl IntoIterator<Item = (String, Tensor)>,
    ) -> Result<Self, EvalError> {
        let mut named = HashMap::new();
        for (name, t) in tensors {
            let name = match name.rsplit_once('.') {
                Some((stem, "gamma")) if stem.ends_with("LayerNorm") => format!("{stem}.weight"),
                Some((stem, "beta")) if stem.ends_with("LayerNorm") => format!("{stem}.bias"),
                _ => name,
            };
            named.insert(name, t.to_dtype(DType::F32)?);
        }
        if !named.contains_key("cls.predictions.transform.dense.weight") {
            return Err(EvalError::Parameters(
                "cls.predictions.transform.dense.weight is missing: the checkpoint has no masked-LM head (a BertForMaskedLM has one; an encoder alone cannot be scored)"
                    .into(),
            ));
        }
        for (wanted, fallback) in [
            (
                "cls.predictions.decoder.weight",
                "bert.embeddings.word_embeddings.weight",
            ),
            ("cls.predictions.decoder.bias", "cls.predictions.bias"),
        ] {
            if !named.contains_key(wanted)
                && let Some(t) = named.get(fallback).cloned()
            {
                named.insert(wanted.to_owned(), t);
            }
        }
        let vb = VarBuilder::from_tensors(named, DType::F32, &Device::Cpu);
        let model = bert::BertForMaskedLM::load(vb, &bert_config(config)).map_err(|e| {
            EvalError::Parameters(format!("a bert of {} layers: {e}", config.layers))
        })?;
        Ok(MaskedLm { model })
    }

    /// Natural-log probabilities of `window[first..first + count]`, each with itself masked
    /// (its group's tokens replaced by `mask`) and the rest of the window seen.
    pub(crate) fn masked_log_probs(
        &self,
        window: &[u32],
        first: usize,
        count: usize,
        mask: u32,
    ) -> Result<Vec<f32>, EvalError> {
        let mut out = vec![0f32; count];
        let types = Tensor::zeros((1, window.len()), DType::U32, &Device::Cpu)?;
        for group in groups(count) {
            let mut input = window.to_vec();
            for &p in &group {
                input[first + p] = mask;
            }
            let ids = Tensor::new(input.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
            let logits = self.model.forward(&ids, &types, None)?.squeeze(0)?;
            #[allow(clippy::cast_possible_truncation, reason = "positions in a window")]
            let rows: Vec<u32> = group.iter().map(|&p| (first + p) as u32).collect();
            let rows = Tensor::new(rows.as_slice(), &Device::Cpu)?;
            let picked = logits.index_select(&rows, 0)?;
            let log_probs = candle_nn::ops::log_softmax(&picked, candle_core::D::Minus1)?;
            let targets: Vec<u32> = group.iter().map(|&p| window[first + p]).collect();
            let targets = Tensor::new(targets.as_slice(), &Device::Cpu)?.unsqueeze(1)?;
            let values = log_probs
                .gather(&targets, 1)?
                .squeeze(1)?
                .to_vec1::<f32>()?;
            for (&p, v) in group.iter().zip(values) {
                out[p] = v;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_position_is_masked_exactly_once_in_at_most_seven_balanced_groups() {
        for n in [1, 2, 6, 7, 8, 50, 510] {
            let g = groups(n);
            assert_eq!(g.len(), GROUPS.min(n));
            let mut all: Vec<usize> = g.iter().flatten().copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
            let (min, max) = (
                g.iter().map(Vec::len).min().unwrap_or(0),
                g.iter().map(Vec::len).max().unwrap_or(0),
            );
            assert!(max - min <= 1, "groups of {min} to {max}");
            // Seeded: the same groups every time.
            assert_eq!(g, groups(n));
        }
        // A shuffle, not runs of neighbours.
        assert_ne!(groups(70)[0], (0..10).collect::<Vec<_>>());
    }
}
