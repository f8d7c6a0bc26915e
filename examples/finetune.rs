//! A short, real fine-tune of a small BERT (such as all-MiniLM-L6-v2), for deltas that come from
//! training rather than a generator: the benches measure agigit's codecs on them
//! (`scripts/real-weights.sh` downloads the model and runs this, then the delta bench).
//!
//! ```text
//! cargo run --release -p agigit-examples --features finetune --example finetune -- \
//!     <model dir: model.safetensors, config.json, tokenizer.json> <out dir> <text files…>
//! ```
//!
//! Two fine-tunes of the same model on the same task — sentence embeddings pulled towards the
//! sentence that follows them in the given text, in-batch negatives (as the model was trained) —
//! written as the whole checkpoint in f32 and in bf16, beside the base in bf16:
//! - `full`: every weight trained (AdamW, lr 2e-5, weight decay 0.01), as a full fine-tune;
//! - `lora`: rank-8 adapters (α = 16) on every attention and feed-forward matrix, trained with
//!   the base frozen (AdamW, lr 1e-3), then merged (`W + α/r · B·A`), as a LoRA-merged release.
//!
//! `finetune compare <model dir> <reference> <candidates…> -- <texts…>` prints how close each
//! candidate checkpoint's sentence embeddings are to the reference's (cosine): what a reader of a
//! lossy commit computes, against the fine-tune it stands for.
//!
//! `AGIGIT_FINETUNE_STEPS` (default 60), `AGIGIT_FINETUNE_BATCH` (16) and `AGIGIT_FINETUNE_SEQ`
//! (32 tokens) size the run; the seed is fixed, so a run gives the same batches every time.

#![allow(
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    reason = "an example program: a failure stops it loudly, progress is printed for people; \
              sizes are a batch's and a sentence's (far below u32), the generator's draws are \
              reduced below n first"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The matrices a LoRA adapts: every attention and feed-forward projection.
const LORA_TARGETS: [&str; 6] = [
    "attention.self.query.weight",
    "attention.self.key.weight",
    "attention.self.value.weight",
    "attention.output.dense.weight",
    "intermediate.dense.weight",
    "output.dense.weight",
];
const LORA_RANK: usize = 8;
const LORA_ALPHA: f64 = 16.0;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sentences of the text files, in order: split at sentence ends and blank lines, markup
/// dropped, 30 to 300 characters.
fn sentences(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)?;
        for paragraph in text.split("\n\n") {
            let flat: String = paragraph
                .chars()
                .map(|c| if c.is_whitespace() { ' ' } else { c })
                .filter(|c| !matches!(c, '`' | '*' | '#' | '|' | '[' | ']'))
                .collect();
            for s in flat.split_inclusive(['.', '?', '!']) {
                let s = s.trim();
                if (30..=300).contains(&s.len()) {
                    out.push(s.to_owned());
                }
            }
        }
    }
    Ok(out)
}

/// A small deterministic generator (xorshift64*), for batches and adapter initialization.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Token ids, type ids and attention mask of a batch of texts.
fn encode(tokenizer: &Tokenizer, texts: &[&str], dev: &Device) -> Result<[Tensor; 3]> {
    let encodings = tokenizer
        .encode_batch(texts.to_vec(), true)
        .map_err(|e| e.to_string())?;
    let rows = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| -> Result<Tensor> {
        let rows: Vec<Tensor> = encodings
            .iter()
            .map(|e| Tensor::new(f(e).as_slice(), dev))
            .collect::<candle_core::Result<_>>()?;
        Ok(Tensor::stack(&rows, 0)?)
    };
    Ok([
        rows(&|e| e.get_ids().to_vec())?,
        rows(&|e| e.get_type_ids().to_vec())?,
        rows(&|e| e.get_attention_mask().to_vec())?,
    ])
}

/// What the forward pass needs of `config.json`.
#[derive(serde::Deserialize)]
struct Config {
    num_hidden_layers: usize,
    num_attention_heads: usize,
    hidden_size: usize,
    layer_norm_eps: f64,
    hidden_act: String,
}

/// A BERT encoder's forward pass over named weights, written with differentiable operations
/// only (candle-nn's fused layer norm and softmax have no backward pass).
struct Bert<'a> {
    config: &'a Config,
    w: &'a HashMap<String, Tensor>,
}

impl Bert<'_> {
    fn get(&self, name: &str) -> Result<&Tensor> {
        self.w
            .get(name)
            .ok_or_else(|| format!("the checkpoint has no tensor {name}").into())
    }

    fn linear(&self, x: &Tensor, prefix: &str) -> Result<Tensor> {
        let w = self.get(&format!("{prefix}.weight"))?;
        let b = self.get(&format!("{prefix}.bias"))?;
        Ok(x.broadcast_matmul(&w.t()?)?.broadcast_add(b)?)
    }

    fn layer_norm(&self, x: &Tensor, prefix: &str) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm_slow(
            x,
            self.get(&format!("{prefix}.weight"))?,
            self.get(&format!("{prefix}.bias"))?,
            self.config.layer_norm_eps as f32,
        )?)
    }

    /// The last hidden states, `(batch, seq, hidden)`.
    fn forward(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let (heads, hidden) = (self.config.num_attention_heads, self.config.hidden_size);
        let head_dim = hidden / heads;
        let lookup = |name: &str, idx: &Tensor| -> Result<Tensor> {
            let table = self.get(name)?;
            Ok(table
                .index_select(&idx.flatten_all()?, 0)?
                .reshape((idx.dims().iter().product::<usize>(), hidden))?)
        };
        let positions = Tensor::arange(0u32, seq as u32, ids.device())?;
        let x = lookup("embeddings.word_embeddings.weight", ids)?
            .add(&lookup("embeddings.token_type_embeddings.weight", types)?)?
            .reshape((batch, seq, hidden))?
            .broadcast_add(&lookup(
                "embeddings.position_embeddings.weight",
                &positions,
            )?)?;
        let mut x = self.layer_norm(&x, "embeddings.LayerNorm")?;
        // 0 where attended, a large negative number at padding: (batch, 1, 1, seq).
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e4)?.reshape((batch, 1, 1, seq))?;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((batch, seq, heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        for i in 0..self.config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let q = split(self.linear(&x, &format!("{p}.attention.self.query"))?)?;
            let k = split(self.linear(&x, &format!("{p}.attention.self.key"))?)?;
            let v = split(self.linear(&x, &format!("{p}.attention.self.value"))?)?;
            let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?.broadcast_add(&bias)?;
            let attended = candle_nn::ops::softmax(&scores, D::Minus1)?
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((batch, seq, hidden))?;
            let out = self.linear(&attended, &format!("{p}.attention.output.dense"))?;
            x = self.layer_norm(&(out + &x)?, &format!("{p}.attention.output.LayerNorm"))?;
            let up = self.linear(&x, &format!("{p}.intermediate.dense"))?;
            let up = match self.config.hidden_act.as_str() {
                "gelu" => up.gelu_erf()?,
                "gelu_new" | "gelu_pytorch_tanh" => up.gelu()?,
                "relu" => up.relu()?,
                other => return Err(format!("hidden_act {other:?} is not supported").into()),
            };
            let down = self.linear(&up, &format!("{p}.output.dense"))?;
            x = self.layer_norm(&(down + &x)?, &format!("{p}.output.LayerNorm"))?;
        }
        Ok(x)
    }
}

/// Mean-pooled, unit-length sentence embeddings.
fn embed(model: &Bert<'_>, batch: &[Tensor; 3]) -> Result<Tensor> {
    let [ids, types, mask] = batch;
    let hidden = model.forward(ids, types, mask)?;
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let pooled = summed.broadcast_div(&mask.sum(1)?)?;
    let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?;
    Ok(pooled.broadcast_div(&norm)?)
}

/// In-batch contrastive loss: each sentence must pick the one that follows it among the batch's.
fn loss(model: &Bert<'_>, anchors: &[Tensor; 3], positives: &[Tensor; 3]) -> Result<Tensor> {
    let a = embed(model, anchors)?;
    let p = embed(model, positives)?;
    let scores = (a.matmul(&p.t()?)? * 20.0)?;
    let n = scores.dim(0)?;
    let targets = Tensor::arange(0u32, n as u32, scores.device())?;
    Ok(candle_nn::loss::cross_entropy(&scores, &targets)?)
}

/// The weights of a fine-tune, built fresh for each step from what is trained.
trait Weights {
    fn tensors(&self) -> Result<HashMap<String, Tensor>>;
    fn vars(&self) -> Vec<Var>;
}

/// Every float tensor trained.
struct Full {
    vars: HashMap<String, Var>,
    fixed: HashMap<String, Tensor>,
}

impl Weights for Full {
    fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = self.fixed.clone();
        out.extend(
            self.vars
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().clone())),
        );
        Ok(out)
    }

    fn vars(&self) -> Vec<Var> {
        self.vars.values().cloned().collect()
    }
}

/// The base frozen; rank-r adapters `(B, A)` on the target matrices.
struct Lora {
    base: HashMap<String, Tensor>,
    adapters: HashMap<String, (Var, Var)>,
}

impl Lora {
    fn new(base: HashMap<String, Tensor>, rng: &mut Rng) -> Result<Self> {
        let mut adapters = HashMap::new();
        for (name, w) in &base {
            if !LORA_TARGETS.iter().any(|t| name.ends_with(t)) {
                continue;
            }
            let (out_dim, in_dim) = w.dims2()?;
            // A: Kaiming-like uniform; B: zeros (the adapted model starts as the base).
            let bound = (1.0 / in_dim as f32).sqrt();
            let a: Vec<f32> = (0..LORA_RANK * in_dim)
                .map(|_| rng.unit() * bound)
                .collect();
            let a = Var::from_tensor(&Tensor::from_vec(a, (LORA_RANK, in_dim), w.device())?)?;
            let b = Var::zeros((out_dim, LORA_RANK), DType::F32, w.device())?;
            adapters.insert(name.clone(), (b, a));
        }
        Ok(Self { base, adapters })
    }
}

impl Weights for Lora {
    fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        let scale = LORA_ALPHA / LORA_RANK as f64;
        let mut out = self.base.clone();
        for (name, (b, a)) in &self.adapters {
            let merged = (&self.base[name] + (b.as_tensor().matmul(a.as_tensor())? * scale)?)?;
            out.insert(name.clone(), merged);
        }
        Ok(out)
    }

    fn vars(&self) -> Vec<Var> {
        self.adapters
            .values()
            .flat_map(|(b, a)| [b.clone(), a.clone()])
            .collect()
    }
}

struct Task<'a> {
    config: &'a Config,
    tokenizer: &'a Tokenizer,
    sentences: &'a [String],
    steps: usize,
    batch: usize,
    dev: &'a Device,
}

/// Trains `weights` for the task's steps, printing the loss; returns the final weights.
fn train(
    task: &Task<'_>,
    weights: &dyn Weights,
    params: ParamsAdamW,
) -> Result<HashMap<String, Tensor>> {
    let mut optimizer = AdamW::new(weights.vars(), params)?;
    // The same batches for both fine-tunes.
    let mut rng = Rng(0x5EED_A919);
    for step in 0..task.steps {
        let picks: Vec<usize> = (0..task.batch)
            .map(|_| rng.below(task.sentences.len() - 1))
            .collect();
        let anchors: Vec<&str> = picks.iter().map(|&i| task.sentences[i].as_str()).collect();
        let positives: Vec<&str> = picks
            .iter()
            .map(|&i| task.sentences[i + 1].as_str())
            .collect();
        let tensors = weights.tensors()?;
        let model = Bert {
            config: task.config,
            w: &tensors,
        };
        let l = loss(
            &model,
            &encode(task.tokenizer, &anchors, task.dev)?,
            &encode(task.tokenizer, &positives, task.dev)?,
        )?;
        optimizer.backward_step(&l)?;
        if step % 10 == 0 || step + 1 == task.steps {
            println!("  step {step:>4}: loss {:.4}", l.to_scalar::<f32>()?);
        }
    }
    weights.tensors()
}

/// Writes `tensors` as `<out>/<name>-f32.safetensors` and `-bf16` (what is not f32 as it is).
fn save(tensors: &HashMap<String, Tensor>, out: &Path, name: &str) -> Result<()> {
    let detached: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.detach()))
        .collect();
    candle_core::safetensors::save(&detached, out.join(format!("{name}-f32.safetensors")))?;
    let bf16: HashMap<String, Tensor> = detached
        .iter()
        .map(|(k, t)| {
            let t = if t.dtype() == DType::F32 {
                t.to_dtype(DType::BF16)?
            } else {
                t.clone()
            };
            Ok((k.clone(), t))
        })
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&bf16, out.join(format!("{name}-bf16.safetensors")))?;
    Ok(())
}

/// `finetune compare <model dir> <reference> <candidates…> -- <text files…>`: how close each
/// candidate checkpoint's sentence embeddings are to the reference's (cosine, mean and worst,
/// over every sentence of the texts): what a reader of a lossy commit computes, against the
/// fine-tune it stands for.
fn compare(args: &[PathBuf]) -> Result<()> {
    let split = args.iter().position(|a| a.as_os_str() == "--");
    let (Some(split), [model_dir, reference, ..]) = (split, args) else {
        return Err(
            "usage: finetune compare <model dir> <reference> <candidates…> -- <text files…>".into(),
        );
    };
    let (candidates, texts) = (&args[2..split], &args[split + 1..]);
    let dev = Device::Cpu;
    let config: Config = serde_json::from_slice(&std::fs::read(model_dir.join("config.json"))?)?;
    let tokenizer = tokenizer(model_dir)?;
    let sentences = sentences(texts)?;
    let embeddings = |path: &Path| -> Result<Tensor> {
        let w: HashMap<String, Tensor> = candle_core::safetensors::load(path, &dev)?
            .into_iter()
            .map(|(k, t)| Ok((k, t.to_dtype(DType::F32)?)))
            .collect::<Result<_>>()?;
        let model = Bert {
            config: &config,
            w: &w,
        };
        let mut out = Vec::new();
        for chunk in sentences.chunks(64) {
            let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
            out.push(embed(&model, &encode(&tokenizer, &texts, &dev)?)?);
        }
        Ok(Tensor::cat(&out, 0)?)
    };
    let reference_embeddings = embeddings(reference)?;
    println!(
        "cosine to {} over {} sentences (mean, worst):",
        reference.display(),
        sentences.len()
    );
    for c in candidates {
        let cos: Vec<f32> = (embeddings(c)? * &reference_embeddings)?
            .sum(1)?
            .to_vec1()?;
        let mean = cos.iter().map(|&c| f64::from(c)).sum::<f64>() / cos.len() as f64;
        let worst = cos.iter().copied().fold(f32::INFINITY, f32::min);
        println!("  {mean:.5}  {worst:.5}  {}", c.display());
    }
    Ok(())
}

/// The model's tokenizer, padding to the longest text and cutting at `AGIGIT_FINETUNE_SEQ`.
fn tokenizer(model_dir: &Path) -> Result<Tokenizer> {
    let seq = env_usize("AGIGIT_FINETUNE_SEQ", 32);
    let mut tokenizer =
        Tokenizer::from_file(model_dir.join("tokenizer.json")).map_err(|e| e.to_string())?;
    tokenizer.with_padding(Some(PaddingParams::default()));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: seq,
            ..TruncationParams::default()
        }))
        .map_err(|e| e.to_string())?;
    Ok(tokenizer)
}

fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.first().is_some_and(|a| a.as_os_str() == "compare") {
        return compare(&args[1..]);
    }
    let [model_dir, out, texts @ ..] = args.as_slice() else {
        return Err(
            "usage: finetune <model dir> <out dir> <text files…> | finetune compare …".into(),
        );
    };
    if texts.is_empty() {
        return Err("give at least one text file to fine-tune on".into());
    }
    std::fs::create_dir_all(out)?;
    let dev = Device::Cpu;
    let config: Config = serde_json::from_slice(&std::fs::read(model_dir.join("config.json"))?)?;
    let seq = env_usize("AGIGIT_FINETUNE_SEQ", 32);
    let tokenizer = tokenizer(model_dir)?;
    let sentences = sentences(texts)?;
    if sentences.len() < 2 {
        return Err("the text files hold fewer than two sentences".into());
    }
    println!(
        "{} sentences from {} files; seq {seq}",
        sentences.len(),
        texts.len()
    );
    let base = candle_core::safetensors::load(model_dir.join("model.safetensors"), &dev)?;
    save(&base, out, "base")?;
    let task = Task {
        config: &config,
        tokenizer: &tokenizer,
        sentences: &sentences,
        steps: env_usize("AGIGIT_FINETUNE_STEPS", 60),
        batch: env_usize("AGIGIT_FINETUNE_BATCH", 16),
        dev: &dev,
    };

    println!("full fine-tune:");
    let mut vars = HashMap::new();
    let mut fixed = HashMap::new();
    for (name, t) in &base {
        if t.dtype() == DType::F32 {
            vars.insert(name.clone(), Var::from_tensor(t)?);
        } else {
            fixed.insert(name.clone(), t.clone());
        }
    }
    let full = train(
        &task,
        &Full { vars, fixed },
        ParamsAdamW {
            lr: 2e-5,
            weight_decay: 0.01,
            ..ParamsAdamW::default()
        },
    )?;
    save(&full, out, "full")?;

    println!("LoRA fine-tune (rank {LORA_RANK}, alpha {LORA_ALPHA}):");
    let lora = Lora::new(base, &mut Rng(0xADA9_7E25))?;
    let merged = train(
        &task,
        &lora,
        ParamsAdamW {
            lr: 1e-3,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?;
    save(&merged, out, "lora")?;
    println!(
        "wrote {}/{{base,full,lora}}-{{f32,bf16}}.safetensors",
        out.display()
    );
    Ok(())
}
