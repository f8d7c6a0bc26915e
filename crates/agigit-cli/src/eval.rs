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
    /// Publish the result as a signed receipt (kind 1724) to the repository's relays: it names
    /// the commit and the data part's tree, so anyone can evaluate again and compare.
    #[arg(long)]
    pub(crate) publish: bool,
    /// A note published with the receipt.
    #[arg(long, requires = "publish", default_value = "")]
    pub(crate) note: String,
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
    let published = if args.publish {
        Some(publish(&repo, &report, &args.note)?)
    } else {
        None
    };
    let e = &report.evaluation;
    let value = serde_json::json!({
        "receipt": published.as_ref().map(|(id, accepted)| serde_json::json!({"event": id, "accepted": accepted})),
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
        "loss_root": agigit::hash::BlobHash::from(e.loss_root()).to_string(),
        "skipped": report.skipped,
        "seconds": report.seconds,
    });
    print(ctx.json, value, || {
        let mut out = format!(
            "{} on {}: {:.4} bits per byte, {:.4} bits per token\n  {} documents, {} bytes, {} tokens, {} ({} tokens per window), {:.1} s",
            report.commit.short(),
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
        if let Some((id, accepted)) = &published {
            out.push_str(&format!(
                "\n  receipt {} published on {accepted} relays",
                id.get(..16).unwrap_or_default()
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

/// Signs the receipt with the user's key and publishes it to the repository's push relays; the
/// event id and how many relays took it.
fn publish(
    repo: &agigit::Repository,
    report: &agigit::EvalReport,
    note: &str,
) -> Result<(String, usize)> {
    use crate::context::{effective, keys, load_config, network, runtime};
    let config = load_config(repo)?;
    let coordinate = crate::receipts::this_coordinate(&config)?;
    let receipt = report.receipt(coordinate, note)?;
    let keys = keys()?;
    let (relays, push) = effective(&config)?;
    let rt = runtime()?;
    let _entered = rt.enter();
    let net = network(&keys, &relays)?;
    let (signed, published) = rt.block_on(
        repo.remote(&net, &keys)
            .publish_receipt(&receipt, push.min_accepted),
    )?;
    Ok((signed.id().to_hex(), published.accepted()))
}
