//! What the learning and round tests share: a Markov-chain text generator and head swaps.

#![allow(
    dead_code,
    clippy::expect_used,
    reason = "each test file uses its share"
)]

use agigit_delta::Tensor;
use agigit_eval::{Document, ModelFiles};

/// SplitMix64.
pub(crate) fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Documents from a Markov chain over eight letters: after each letter, one of two successors
/// (fixed per letter) with probability 3/4 and 1/4 — about 0.81 bits per byte for a model that
/// knows the chain, 8 for one that knows nothing.
pub(crate) fn documents(prefix: &str, count: usize, len: usize, mut seed: u64) -> Vec<Document> {
    const LETTERS: &[u8] = b"etaoinsh";
    (0..count)
        .map(|d| {
            let mut at = (next(&mut seed) % 8) as usize;
            let text: String = (0..len)
                .map(|_| {
                    let r = next(&mut seed) % 4;
                    at = if r == 0 {
                        (at * 5 + 3) % 8
                    } else {
                        (at + 1) % 8
                    };
                    char::from(LETTERS[at])
                })
                .collect();
            Document {
                name: format!("{prefix}{d}.txt"),
                text,
            }
        })
        .collect()
}

pub(crate) fn with_head(model: &ModelFiles, head: Tensor) -> ModelFiles {
    ModelFiles {
        config: model.config.clone(),
        tokenizer: model.tokenizer.clone(),
        tensors: model
            .tensors
            .iter()
            .map(|(name, t)| {
                let t = if name == "lm_head.weight" {
                    head.clone()
                } else {
                    t.clone()
                };
                (name.clone(), t)
            })
            .collect(),
    }
}

pub(crate) fn head(model: &ModelFiles) -> &Tensor {
    &model
        .tensors
        .iter()
        .find(|(n, _)| n == "lm_head.weight")
        .expect("the toy has a head")
        .1
}

/// `model` with uniform noise in `[-scale/2, scale/2)` (from `seed`) added to its head.
pub(crate) fn with_noise(model: &ModelFiles, mut seed: u64, scale: f64) -> ModelFiles {
    let h = head(model);
    #[allow(clippy::cast_precision_loss, reason = "53 bits are exact")]
    let noisy: Vec<f64> = h
        .view()
        .to_f64()
        .expect("a float head")
        .iter()
        .map(|w| w + ((next(&mut seed) >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * scale)
        .collect();
    let t = Tensor::from_f64(h.dtype(), h.shape().to_vec(), &noisy).expect("the head's shape");
    with_head(model, t)
}

/// The tests' training: windows of 64 tokens, `n` steps at a learning rate of 0.05.
pub(crate) fn steps(n: u32) -> agigit_eval::train::TrainOptions {
    agigit_eval::train::TrainOptions::default()
        .with_context(64)
        .with_steps(n, 0.05)
}
