#![doc = include_str!("../README.md")]
//!
//! ## What is measured
//!
//! Architectures come from `config.json`'s `model_type` ([`SUPPORTED`]): the Qwen2 / Llama /
//! Mistral family through `candle-transformers`' Qwen2 model, and BERT through its
//! `BertForMaskedLM` (below). The computation is in f32 on the CPU.
//!
//! Each document is tokenized (no special tokens added), the configuration's prefix token
//! (`bos_token_id`, else `eos_token_id`) is put before it, and every token is scored by the
//! model given the tokens before it in windows of `context` tokens (each window starts a fresh
//! context; the first token of a window after the first is predicted from the token before it
//! alone). Without a prefix token the first token is charged `log2(vocab_size)` bits. Bits per
//! byte is the sum of every token's `-log2 p` over the UTF-8 bytes of the documents; each
//! document's sum is taken in order in f64 from candle's f32 log-probabilities.
//!
//! A BERT is scored by masked-LM loss: each document in windows of `context` tokens, `[CLS]` and
//! `[SEP]` around each when the tokenizer has them; a window's tokens are split into seven
//! groups by a seeded shuffle (the same on every machine), each group in turn replaced by
//! `[MASK]` and each of its tokens charged `-log2 p` of itself given the rest of the window.
//! Every token is charged once: a pseudo-log-likelihood, which ranks BERT-family models on one
//! tokenizer and is not comparable with a causal model's bits.

#![cfg_attr(docsrs, feature(doc_cfg))]

use agigit_delta::Tensor as Dense;

pub mod compare;
mod config;
pub mod documents;
#[cfg(feature = "evaluate")]
mod masked;
#[cfg(feature = "evaluate")]
mod model;
pub mod round;
pub mod toy;
#[cfg(feature = "evaluate")]
pub mod train;

pub use config::{
    ACTIVATIONS, BERT_ACTIVATIONS, BertConfig, CAUSAL, ModelConfig, SUPPORTED, model_type,
};
pub use documents::{Document, add_documents};

/// An evaluation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// `config.json` names an architecture this build does not evaluate.
    #[error(
        "model_type {model_type:?} is not evaluated by this build; supported: {}",
        SUPPORTED.join(", ")
    )]
    Unsupported {
        /// What `config.json` says (empty when it says nothing).
        model_type: String,
    },
    /// `config.json` is not usable.
    #[error("config.json: {0}")]
    Config(String),
    /// `tokenizer.json` is not usable.
    #[error("tokenizer.json: {0}")]
    Tokenizer(String),
    /// The parameters do not fit the configuration.
    #[error("parameters: {0}")]
    Parameters(String),
    /// A held-out file is not readable as documents.
    #[error("{file}{}: {why}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Data {
        /// The file.
        file: String,
        /// The line (JSON Lines).
        line: Option<usize>,
        /// What is wrong.
        why: String,
    },
    /// Nothing to evaluate.
    #[error("no held-out text: the documents hold no bytes")]
    NoText,
    /// candle failed.
    #[cfg(feature = "evaluate")]
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
}

/// How an evaluation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EvalOptions {
    /// Tokens per window (at most the model's context); part of what the value means, so a
    /// receipt states it.
    pub context: usize,
}

impl EvalOptions {
    /// The default window.
    pub const DEFAULT_CONTEXT: usize = 512;
    /// The widest window.
    pub const MAX_CONTEXT: usize = 8192;

    /// Options with a window of `context` tokens (clamped to 2..=[`MAX_CONTEXT`](Self::MAX_CONTEXT)).
    pub fn with_context(context: usize) -> Self {
        EvalOptions {
            context: context.clamp(2, Self::MAX_CONTEXT),
        }
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self::with_context(Self::DEFAULT_CONTEXT)
    }
}

/// One document's loss.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DocumentLoss {
    /// The document's name.
    pub name: String,
    /// Its UTF-8 bytes.
    pub bytes: u64,
    /// Tokens scored.
    pub tokens: u64,
    /// Bits the model needs for it (`-log2 p` summed over its tokens).
    pub bits: f64,
}

impl DocumentLoss {
    /// The bytes of this loss as a leaf of [`Evaluation::loss_root`]'s tree: the name's length
    /// (u32) and UTF-8, then bytes, tokens (u64) and bits (the f64's IEEE 754 bits), all
    /// little-endian.
    pub fn leaf_bytes(&self) -> Vec<u8> {
        let name = self.name.as_bytes();
        let mut out = Vec::with_capacity(4 + name.len() + 24);
        let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&name[..len as usize]);
        out.extend_from_slice(&self.bytes.to_le_bytes());
        out.extend_from_slice(&self.tokens.to_le_bytes());
        out.extend_from_slice(&self.bits.to_bits().to_le_bytes());
        out
    }

    /// Its leaf hash in [`Evaluation::loss_root`]'s tree.
    pub fn leaf_hash(&self) -> agigit_hash::merkle::Digest {
        agigit_hash::merkle::leaf_hash(&self.leaf_bytes())
    }
}

/// An evaluation's result.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// The architecture evaluated.
    pub model_type: String,
    /// The window, in tokens.
    pub context: usize,
    /// Bits per byte over all documents (the sum of bits over the sum of bytes).
    pub bits_per_byte: f64,
    /// Bits per token over all documents.
    pub bits_per_token: f64,
    /// Bytes evaluated.
    pub bytes: u64,
    /// Tokens scored.
    pub tokens: u64,
    /// Every document's loss, in the order given.
    pub documents: Vec<DocumentLoss>,
}

impl Evaluation {
    /// The root of an RFC 9162 Merkle tree over every document's loss, in order
    /// ([`DocumentLoss::leaf_bytes`]): what a receipt publishes, so that a challenger can name
    /// the documents it disagrees on and the evaluator prove what it claimed for each
    /// ([`loss_path`](Self::loss_path), [`verify_loss`]).
    pub fn loss_root(&self) -> agigit_hash::merkle::Digest {
        agigit_hash::merkle::root(&self.loss_leaves())
    }

    /// Document `index`'s inclusion path in [`loss_root`](Self::loss_root)'s tree.
    pub fn loss_path(&self, index: usize) -> Option<Vec<agigit_hash::merkle::Digest>> {
        agigit_hash::merkle::path(&self.loss_leaves(), index)
    }

    /// The receipt (kind 1724) that publishes this evaluation of `commit` on the data tree
    /// `data` of repository `repo`, computed by `software` (`agigit 0.1.0`).
    pub fn receipt(
        &self,
        repo: agigit_event::RepoCoordinate,
        commit: agigit_hash::ObjectId,
        data: agigit_hash::ObjectId,
        software: impl Into<String>,
        note: impl Into<String>,
    ) -> agigit_event::EvalReceipt {
        agigit_event::EvalReceipt {
            repo,
            commit,
            data,
            metric: "bits-per-byte".into(),
            value: self.bits_per_byte,
            bytes: self.bytes,
            tokens: self.tokens,
            documents: self.documents.len() as u64,
            context: self.context as u64,
            losses: self.loss_root(),
            model: self.model_type.clone(),
            software: software.into(),
            blob: None,
            note: note.into(),
        }
    }

    fn loss_leaves(&self) -> Vec<agigit_hash::merkle::Digest> {
        self.documents.iter().map(DocumentLoss::leaf_hash).collect()
    }
}

/// The bytes of a loss list: every document's [`DocumentLoss::leaf_bytes`], in order — what an
/// evaluator publishes as a blob beside its receipt, so that anyone can compare models document
/// by document and check each loss against the receipt's root.
pub fn encode_losses(losses: &[DocumentLoss]) -> Vec<u8> {
    losses.iter().flat_map(DocumentLoss::leaf_bytes).collect()
}

/// Why a loss list does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("loss list: {0}")]
pub struct LossListError(String);

/// Reads a loss list of `count` documents (the count the receipt states; the allocation is
/// bounded by the bytes given, never by it). Every name must be UTF-8 and every loss a finite,
/// non-negative number of bits; nothing may follow the last.
///
/// # Errors
/// [`LossListError`] naming the document and what is wrong.
pub fn decode_losses(bytes: &[u8], count: u64) -> Result<Vec<DocumentLoss>, LossListError> {
    const FIXED: usize = 4 + 24;
    let err = |i: u64, why: &str| LossListError(format!("document {i}: {why}"));
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(bytes.len() / FIXED));
    let mut rest = bytes;
    for i in 0..count {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(err(i, "the list ends early"));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len + 24 {
            return Err(err(i, "the list ends early"));
        }
        let (name, tail) = tail.split_at(len);
        let name = std::str::from_utf8(name).map_err(|_| err(i, "a name that is not UTF-8"))?;
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&tail[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let bits = f64::from_bits(word(16));
        if !bits.is_finite() || bits < 0.0 {
            return Err(err(
                i,
                "a loss that is not a finite, non-negative number of bits",
            ));
        }
        out.push(DocumentLoss {
            name: name.to_owned(),
            bytes: word(0),
            tokens: word(8),
            bits,
        });
        rest = &tail[24..];
    }
    if !rest.is_empty() {
        return Err(LossListError(format!(
            "{} bytes after the last of {count} documents",
            rest.len()
        )));
    }
    Ok(out)
}

/// Whether `loss` is document `index` of `count` under `root`, by its inclusion `path`.
pub fn verify_loss(
    root: &agigit_hash::merkle::Digest,
    count: u64,
    index: u64,
    loss: &DocumentLoss,
    path: &[agigit_hash::merkle::Digest],
) -> bool {
    agigit_hash::merkle::verify(root, count, index, &loss.leaf_hash(), path)
}

/// A model's files as the commit holds them.
#[derive(Debug)]
pub struct ModelFiles {
    /// `config.json`.
    pub config: Vec<u8>,
    /// `tokenizer.json`.
    pub tokenizer: Vec<u8>,
    /// Every tensor of the parameters, by name.
    pub tensors: Vec<(String, Dense)>,
}

#[cfg(feature = "evaluate")]
fn to_candle(t: &Dense) -> Result<candle_core::Tensor, EvalError> {
    use agigit_delta::DType as D;
    let dtype = match t.dtype() {
        D::F32 => candle_core::DType::F32,
        D::F16 => candle_core::DType::F16,
        D::BF16 => candle_core::DType::BF16,
        D::F64 => candle_core::DType::F64,
        other => {
            return Err(EvalError::Parameters(format!(
                "a {other:?} tensor: only floating-point parameters (F32, F16, BF16, F64) are evaluated"
            )));
        }
    };
    Ok(candle_core::Tensor::from_raw_buffer(
        t.data(),
        dtype,
        t.shape(),
        &candle_core::Device::Cpu,
    )?)
}

/// The checked configuration, the tokenizer and the model of `files`.
#[cfg(feature = "evaluate")]
fn load(
    files: &ModelFiles,
    context: usize,
) -> Result<(ModelConfig, tokenizers::Tokenizer, model::CausalLm), EvalError> {
    let config = ModelConfig::parse(&files.config, context)?;
    let tokenizer = tokenizers::Tokenizer::from_bytes(&files.tokenizer)
        .map_err(|e| EvalError::Tokenizer(format!("does not load: {e}")))?;
    // Only the tensors the architecture reads are converted; the rest are left alone.
    let mut tensors = std::collections::HashMap::new();
    for (name, t) in &files.tensors {
        if name.starts_with("model.") || name == "lm_head.weight" {
            tensors.insert(name.clone(), to_candle(t)?);
        }
    }
    let lm = model::CausalLm::load(&config, tensors)?;
    Ok((config, tokenizer, lm))
}

/// `doc`'s token ids, no special tokens added, each checked to be below `vocab_size`.
#[cfg(feature = "evaluate")]
fn encode(
    tokenizer: &tokenizers::Tokenizer,
    doc: &Document,
    vocab_size: usize,
) -> Result<Vec<u32>, EvalError> {
    let encoding = tokenizer
        .encode(doc.text.as_str(), false)
        .map_err(|e| EvalError::Tokenizer(format!("{}: {e}", doc.name)))?;
    let tokens = encoding.get_ids();
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab_size) {
        return Err(EvalError::Tokenizer(format!(
            "token id {bad} is outside the model's vocabulary of {vocab_size}"
        )));
    }
    Ok(tokens.to_vec())
}

/// `doc`'s token ids as scored: the prefix token first when the configuration has one. Without
/// one, the first token cannot be predicted: `true` says it is to be charged `log2 V` bits.
#[cfg(feature = "evaluate")]
fn token_ids(
    config: &ModelConfig,
    tokenizer: &tokenizers::Tokenizer,
    doc: &Document,
) -> Result<(Vec<u32>, bool), EvalError> {
    let tokens = encode(tokenizer, doc, config.vocab_size)?;
    Ok(match config.prefix_token {
        Some(prefix) => (
            std::iter::once(prefix)
                .chain(tokens.iter().copied())
                .collect(),
            false,
        ),
        None => {
            let charged = !tokens.is_empty();
            (tokens, charged)
        }
    })
}

/// Windows of at most `context` predictions over `ids`: inputs `ids[s..e]`, targets
/// `ids[s+1..=e]`, each a fresh context.
#[cfg(feature = "evaluate")]
fn windows(ids: &[u32], context: usize) -> impl Iterator<Item = (&[u32], &[u32])> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start + 1 >= ids.len() {
            return None;
        }
        let end = (start + context).min(ids.len() - 1);
        let window = (&ids[start..end], &ids[start + 1..=end]);
        start = end;
        Some(window)
    })
}

/// Evaluates `model` on `documents` (feature `evaluate`, on by default).
///
/// # Errors
/// [`EvalError`]: an unsupported or inconsistent model, a tokenizer that does not load or
/// makes ids outside the vocabulary, documents with no text.
#[cfg(feature = "evaluate")]
pub fn evaluate(
    model: &ModelFiles,
    documents: &[Document],
    options: EvalOptions,
) -> Result<Evaluation, EvalError> {
    if model_type(&model.config)? == "bert" {
        return evaluate_masked(model, documents, options);
    }
    let (config, tokenizer, mut lm) = load(model, options.context)?;
    let uniform = (config.vocab_size as f64).log2();
    let mut out = Vec::with_capacity(documents.len());
    for doc in documents {
        let (ids, charged) = token_ids(&config, &tokenizer, doc)?;
        let mut bits = if charged { uniform } else { 0.0 };
        let mut scored = u64::from(charged);
        // Windows of `context` predictions: inputs ids[s..e], targets ids[s+1..=e].
        for (inputs, targets) in windows(&ids, options.context) {
            let log_probs = lm.target_log_probs(inputs, targets)?;
            // Summed in order, in f64: the same on every machine for the same log-probs.
            for lp in log_probs {
                bits -= f64::from(lp) / std::f64::consts::LN_2;
            }
            scored += inputs.len() as u64;
        }
        out.push(DocumentLoss {
            name: doc.name.clone(),
            bytes: doc.text.len() as u64,
            tokens: scored,
            bits,
        });
    }
    summarize(config.model_type, options.context, out)
}

/// The evaluation of `out`'s documents.
#[cfg(feature = "evaluate")]
fn summarize(
    model_type: String,
    context: usize,
    out: Vec<DocumentLoss>,
) -> Result<Evaluation, EvalError> {
    let bytes: u64 = out.iter().map(|d| d.bytes).sum();
    let tokens: u64 = out.iter().map(|d| d.tokens).sum();
    if bytes == 0 {
        return Err(EvalError::NoText);
    }
    let bits: f64 = out.iter().map(|d| d.bits).sum();
    Ok(Evaluation {
        model_type,
        context,
        bits_per_byte: bits / bytes as f64,
        bits_per_token: if tokens == 0 {
            0.0
        } else {
            bits / tokens as f64
        },
        bytes,
        tokens,
        documents: out,
    })
}

/// A masked language model's evaluation: each document in windows of `context` tokens
/// (`[CLS]` and `[SEP]` around each when the tokenizer has them), every token masked once.
#[cfg(feature = "evaluate")]
fn evaluate_masked(
    model: &ModelFiles,
    documents: &[Document],
    options: EvalOptions,
) -> Result<Evaluation, EvalError> {
    let config = BertConfig::parse(&model.config, options.context)?;
    let tokenizer = tokenizers::Tokenizer::from_bytes(&model.tokenizer)
        .map_err(|e| EvalError::Tokenizer(format!("does not load: {e}")))?;
    let special = |name: &str| {
        tokenizer
            .token_to_id(name)
            .filter(|&t| (t as usize) < config.vocab_size)
    };
    let mask = special("[MASK]").ok_or_else(|| {
        EvalError::Tokenizer(
            "no [MASK] token in the model's vocabulary: a masked language model is scored by masking"
                .into(),
        )
    })?;
    let (cls, sep) = (special("[CLS]"), special("[SEP]"));
    let frame = usize::from(cls.is_some()) + usize::from(sep.is_some());
    let width = options.context.saturating_sub(frame);
    if width == 0 {
        return Err(EvalError::Config(format!(
            "a window of {} tokens leaves no room for text between [CLS] and [SEP]",
            options.context
        )));
    }
    let mut tensors = Vec::new();
    for (name, t) in &model.tensors {
        if name.starts_with("bert.") || name.starts_with("cls.") {
            tensors.push((name.clone(), to_candle(t)?));
        }
    }
    let lm = masked::MaskedLm::load(&config, tensors)?;
    let mut out = Vec::with_capacity(documents.len());
    for doc in documents {
        let ids = encode(&tokenizer, doc, config.vocab_size)?;
        let mut bits = 0.0;
        for chunk in ids.chunks(width) {
            let window: Vec<u32> = cls
                .into_iter()
                .chain(chunk.iter().copied())
                .chain(sep)
                .collect();
            let first = usize::from(cls.is_some());
            // Summed in order, in f64, as the causal families are.
            for lp in lm.masked_log_probs(&window, first, chunk.len(), mask)? {
                bits -= f64::from(lp) / std::f64::consts::LN_2;
            }
        }
        out.push(DocumentLoss {
            name: doc.name.clone(),
            bytes: doc.text.len() as u64,
            tokens: ids.len() as u64,
            bits,
        });
    }
    summarize("bert".to_owned(), options.context, out)
}
