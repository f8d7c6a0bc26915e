//! `agigit eval`: a commit's model on held-out data, in bits per byte.

use agigit::eval::EvalOptions;
use agigit::{EvalData, Part};

use crate::context::{Ctx, open, print};
use crate::failure::{Failure, Result};

/// `agigit eval`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct EvalArgs {
    /// The commit (default: HEAD; any revision, see `agigit --help`).
    #[arg(default_value = "HEAD")]
    pub(crate) rev: String,
    /// The held-out data: a part of the commit (`validation`, `train`) or a file or directory
    /// on this machine. Default: the commit's data/validation.
    #[arg(long, value_name = "PART|PATH")]
    pub(crate) data: Option<String>,
    /// Tokens per window: each window starts a fresh context.
    #[arg(long, default_value_t = EvalOptions::DEFAULT_CONTEXT)]
    pub(crate) context: usize,
    /// List every document's loss.
    #[arg(long)]
    pub(crate) documents: bool,
}

fn data(arg: Option<&str>) -> EvalData {
    match arg {
        None => EvalData::default(),
        Some("validation") => EvalData::Part(Part::Validation),
        Some("train") => EvalData::Part(Part::Train),
        Some(other) => match Part::from_name(other) {
            Some(part) => EvalData::Part(part),
            None => EvalData::Path(other.into()),
        },
    }
}

pub(crate) fn eval(ctx: &Ctx, args: &EvalArgs) -> Result<()> {
    let repo = open(ctx)?;
    let data = data(args.data.as_deref());
    if matches!(data, EvalData::Part(Part::Code | Part::Params)) {
        return Err(Failure::invalid(
            "held-out data is a data part (validation, train) or a path, not code or params",
        ));
    }
    if args.context < 2 || args.context > EvalOptions::MAX_CONTEXT {
        return Err(Failure::invalid(format!(
            "--context is from 2 to {} tokens",
            EvalOptions::MAX_CONTEXT
        )));
    }
    let report = repo.evaluate(&args.rev, &data, EvalOptions::with_context(args.context))?;
    let e = &report.evaluation;
    let value = serde_json::json!({
        "commit": report.commit.to_string(),
        "data": report.data,
        "data_tree": report.data_tree.map(|t| t.to_string()),
        "model_type": e.model_type,
        "context": e.context,
        "bits_per_byte": e.bits_per_byte,
        "bits_per_token": e.bits_per_token,
        "bytes": e.bytes,
        "tokens": e.tokens,
        "documents": e.documents,
        "loss_root": e.loss_root().iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "skipped": report.skipped,
        "seconds": report.seconds,
    });
    print(ctx.json, value, || {
        let mut out = format!(
            "{} on {}: {:.4} bits per byte, {:.4} bits per token\n  {} documents, {} bytes, {} tokens, {} ({} tokens per window), {:.1} s",
            short(&report.commit.to_string()),
            report.data,
            e.bits_per_byte,
            e.bits_per_token,
            e.documents.len(),
            e.bytes,
            e.tokens,
            e.model_type,
            e.context,
            report.seconds,
        );
        if !report.skipped.is_empty() {
            out.push_str(&format!(
                "\n  skipped (not .txt, .md or .jsonl): {}",
                report.skipped.join(", ")
            ));
        }
        if args.documents {
            for d in &e.documents {
                let bpb = if d.bytes == 0 {
                    0.0
                } else {
                    d.bits / d.bytes as f64
                };
                out.push_str(&format!(
                    "\n  {bpb:8.4}  {:>10} bytes  {}",
                    d.bytes,
                    agigit::display::escape(&d.name)
                ));
            }
        }
        out
    });
    Ok(())
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
