//! Training a fork: gradient steps in candle that lower a model's loss on training documents.
//!
//! [`train_head`] fits the output projection (`lm_head.weight`) to the training text by full-batch
//! AdamW on the cross-entropy, with the rest of the model frozen: the final hidden states are
//! computed once, by the same candle-transformers forward pass an evaluation runs, and the head
//! is the only variable. It is the cheapest training that genuinely changes what a model
//! predicts — a linear probe on the model's features — and what a round's tests use to make a
//! fork that earns its place; full fine-tuning needs a differentiable forward pass of every
//! layer, which candle-transformers' fused kernels do not provide.
//!
//! Deterministic on one machine: full batches, no dropout, no sampling.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::{Dense, Document, EvalError, ModelFiles, load, token_ids, windows};

/// How [`train_head`] trains.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct TrainOptions {
    /// Gradient steps (each over every position).
    pub steps: u32,
    /// AdamW's learning rate.
    pub learning_rate: f64,
    /// Tokens per window, as in an evaluation.
    pub context: usize,
    /// The most positions trained on (the first ones of the documents, in order): what bounds
    /// the memory the hidden states take, `positions × hidden × 4` bytes.
    pub max_positions: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            steps: 100,
            learning_rate: 0.01,
            context: crate::EvalOptions::DEFAULT_CONTEXT,
            max_positions: 1 << 16,
        }
    }
}

impl TrainOptions {
    /// These options with windows of `context` tokens.
    pub fn with_context(self, context: usize) -> Self {
        TrainOptions { context, ..self }
    }

    /// These options with at most `max_positions` positions.
    pub fn with_max_positions(self, max_positions: usize) -> Self {
        TrainOptions {
            max_positions,
            ..self
        }
    }

    /// These options with `steps` steps at `learning_rate`.
    pub fn with_steps(self, steps: u32, learning_rate: f64) -> Self {
        TrainOptions {
            steps,
            learning_rate,
            ..self
        }
    }
}

/// What [`train_head`] made.
#[derive(Debug)]
pub struct Trained {
    /// The new `lm_head.weight`, in the dtype the model had.
    pub lm_head: Dense,
    /// The training loss in bits per token before each step and after the last.
    pub bits_per_token: Vec<f64>,
    /// Positions trained on.
    pub positions: usize,
}

/// Trains `model`'s output head on `documents` (see the [module](self)); every other tensor is
/// left as it was. Replace `lm_head.weight` with [`Trained::lm_head`] to make the fork.
///
/// # Errors
/// What [`evaluate`](crate::evaluate) refuses, a model whose head is tied to its embeddings (no
/// `lm_head.weight` of its own to train), documents with fewer than two tokens in all.
pub fn train_head(
    model: &ModelFiles,
    documents: &[Document],
    options: TrainOptions,
) -> Result<Trained, EvalError> {
    let dtype = model
        .tensors
        .iter()
        .find(|(name, _)| name == "lm_head.weight")
        .map(|(_, t)| t.dtype())
        .ok_or_else(|| {
            EvalError::Parameters(
                "no lm_head.weight: a head tied to the embeddings is not trained on its own".into(),
            )
        })?;
    let context = options.context.clamp(2, crate::EvalOptions::MAX_CONTEXT);
    let (config, tokenizer, mut lm) = load(model, context)?;
    let mut hidden = Vec::new();
    let mut targets: Vec<u32> = Vec::new();
    'documents: for doc in documents {
        let (ids, _) = token_ids(&config, &tokenizer, doc)?;
        for (inputs, next) in windows(&ids, context) {
            let room = options.max_positions - targets.len();
            if room == 0 {
                break 'documents;
            }
            let take = inputs.len().min(room);
            hidden.push(lm.hidden(&inputs[..take])?);
            targets.extend_from_slice(&next[..take]);
        }
    }
    if targets.is_empty() {
        return Err(EvalError::NoText);
    }
    let positions = targets.len();
    let hidden = Tensor::cat(&hidden, 0)?;
    let targets = Tensor::new(targets, &Device::Cpu)?;
    let head = Var::from_tensor(lm.lm_head())?;
    let mut optimizer = AdamW::new(
        vec![head.clone()],
        ParamsAdamW {
            lr: options.learning_rate,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?;
    let loss = |head: &Var| -> Result<Tensor, EvalError> {
        let logits = hidden.matmul(&head.as_tensor().t()?)?;
        Ok(candle_nn::loss::cross_entropy(&logits, &targets)?)
    };
    let bits = |loss: &Tensor| -> Result<f64, EvalError> {
        Ok(f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?) / std::f64::consts::LN_2)
    };
    let mut bits_per_token = Vec::with_capacity(options.steps as usize + 1);
    for _ in 0..options.steps {
        let l = loss(&head)?;
        bits_per_token.push(bits(&l)?);
        optimizer.backward_step(&l)?;
    }
    bits_per_token.push(bits(&loss(&head)?)?);
    let t = head.as_tensor();
    let values: Vec<f64> = t
        .flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(f64::from)
        .collect();
    let lm_head = Dense::from_f64(dtype, t.dims().to_vec(), &values)
        .ok_or_else(|| EvalError::Parameters(format!("the trained head does not fit {dtype:?}")))?;
    Ok(Trained {
        lm_head,
        bits_per_token,
        positions,
    })
}
