//! The working directory and history: `status`/`add`, `commit`, `log`, `branch`, `checkout`,
//! `merge`, `rebase`.

use agigit::Change;
use agigit::dag::FindExt as _;
use agigit::event::nostr::prelude::ToBech32;

use crate::context::{Ctx, current_branch, keys, load_config, open, print};
use crate::failure::Result;

mod branches;

pub(crate) use self::branches::*;

/// `agigit commit`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct CommitArgs {
    /// The message.
    #[arg(short, long)]
    pub(crate) message: String,
    /// How a fork stores its tensors' change against the foundation: lossless (bit-exact),
    /// lowrank or signscale (lossy; the commit records the error it measured). Default:
    /// `[commit] codec` in .agigit/config.toml, else lossless.
    #[arg(long, value_name = "CODEC")]
    pub(crate) codec: Option<String>,
    /// lowrank: keep exactly this rank (the default when no other choice is given: 32).
    #[arg(long, value_name = "R")]
    pub(crate) rank: Option<usize>,
    /// lowrank: the smallest rank within this relative error, ‖decoded − target‖ / ‖Δ‖.
    #[arg(long, value_name = "E")]
    pub(crate) max_error: Option<f64>,
    /// lowrank: the smallest rank keeping this share (0–1) of ‖Δ‖².
    #[arg(long, value_name = "S")]
    pub(crate) energy: Option<f64>,
    /// lowrank: how singular vectors are stored: f16, bf16, f32 or banded (8/3/2 bits, the
    /// default).
    #[arg(long, value_name = "STORAGE")]
    pub(crate) factor_storage: Option<String>,
    /// Where lowrank's products run: cpu, or cuda (in a build with the `cuda` feature).
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub(crate) device: String,
    /// A training record to sign with the commit: a JSON file of hyperparameters, seed,
    /// metrics and notes (schema in docs/format.md); what the weights were trained from is the
    /// commit's own parent, foundation and parts.
    #[arg(long, value_name = "FILE")]
    pub(crate) record: Option<std::path::PathBuf>,
}

/// `agigit log`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// The revision to start from (a branch, tag, commit id or its first 4+ digits, HEAD~n;
    /// see `agigit --help`).
    #[arg(default_value = "HEAD")]
    pub(crate) rev: String,
    /// At most this many commits.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub(crate) max: usize,
    /// One line per commit: its short id and the first line of its message.
    #[arg(long)]
    pub(crate) oneline: bool,
    /// Where the weights came from: the first-parent line across the fork bases, each commit
    /// with its repository and training record.
    #[arg(long, conflicts_with = "paths")]
    pub(crate) lineage: bool,
    /// With each commit, the evaluation receipts the repository's relays hold for it (signed
    /// scores on held-out data: `eval --publish`), each signature checked.
    #[arg(long, conflicts_with = "lineage")]
    pub(crate) receipts: bool,
    /// Only the commits that changed these parts or paths (after `--`): one part's own
    /// history (`-- params`, `-- data/train`, `-- train.py`).
    #[arg(last = true, value_name = "PART|PATH")]
    pub(crate) paths: Vec<String>,
}

/// `agigit tag`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct TagArgs {
    /// The tag to create (or, with -d, delete); none lists the tags.
    pub(crate) name: Option<String>,
    /// The commit it names (default: HEAD; any revision).
    #[arg(conflicts_with = "delete")]
    pub(crate) rev: Option<String>,
    /// An annotated tag's message (published, signed, with the state).
    #[arg(short, long, requires = "name")]
    pub(crate) message: Option<String>,
    /// Move an existing tag.
    #[arg(short, long, requires = "name")]
    pub(crate) force: bool,
    /// Delete the tag (here; a published tag stays on the relays).
    #[arg(short, long, requires = "name", conflicts_with_all = ["message", "force"])]
    pub(crate) delete: bool,
}

/// `agigit status` and `agigit add` (agigit has no staging area: both show what the next
/// commit records).
pub(crate) fn status(ctx: &Ctx) -> Result<()> {
    let json = ctx.json;
    let repo = open(ctx)?;
    let status = repo.status()?;
    let branch = current_branch(&repo).unwrap_or_else(|_| "(detached)".into());
    let list: Vec<_> = status
            .iter()
            .map(|(p, c)| serde_json::json!({"path": p, "change": change_name(*c), "part": agigit::worktree::classify(p).0.name()}))
            .collect();
    print(
        json,
        serde_json::json!({"branch": branch, "changes": list}),
        || {
            let mut out = format!("on branch {branch}");
            if status.is_empty() {
                out.push_str("\nnothing to commit, working directory matches HEAD");
            }
            for (p, c) in &status {
                let part = agigit::worktree::classify(p).0.name();
                out.push_str(&format!("\n  {:<9} {p}  [{part}]", change_name(*c)));
            }
            out
        },
    );
    Ok(())
}

pub(crate) fn commit(ctx: &Ctx, args: &CommitArgs) -> Result<()> {
    let json = ctx.json;
    let CommitArgs {
        message,
        codec,
        rank,
        max_error,
        energy,
        factor_storage,
        device,
        record,
    } = args;
    let repo = open(ctx)?;
    let keys = keys()?;
    let record = match record {
        Some(path) => {
            let bytes = read_small_file(path, agigit::record::MAX_RECORD_BYTES)?;
            Some(
                agigit::record::TrainingRecord::from_json(&bytes).map_err(|e| {
                    crate::failure::Failure::invalid(format!("{}: {e}", path.display()))
                })?,
            )
        }
        None => None,
    };
    let flags = agigit::config::CodecConfig {
        codec: codec.clone(),
        rank: *rank,
        max_error: *max_error,
        energy: *energy,
        factor_storage: factor_storage.clone(),
    };
    let settings = load_config(&repo)?
        .commit
        .unwrap_or_default()
        .overlay(&flags);
    let cuda = match device.as_str() {
        "cpu" => false,
        "cuda" => true,
        other => {
            return Err(crate::failure::Failure::invalid(format!(
                "unknown device {other:?}: use cpu or cuda"
            )));
        }
    };
    let codec = settings.build(cuda)?;
    let (id, stats) = repo.commit_with_record(
        message,
        keys.public_key().to_bytes(),
        codec.as_ref(),
        record.as_ref(),
    )?;
    let statement = agigit::dag::fidelity::Fidelity::new(stats.fidelity.clone()).ok();
    let (worst, mean) = statement
        .as_ref()
        .map_or((0.0, 0.0), |f| (f.worst(), f.weighted_mean()));
    print(
        json,
        serde_json::json!({"commit": id.to_string(), "codec": settings.name(), "record": record.as_ref().map(|r| r.summary()), "delta_tensors": stats.delta_tensors, "dense_tensors": stats.dense_tensors, "unchanged_tensors": stats.unchanged_tensors, "stored_bytes": stats.stored_bytes, "dense_bytes": stats.dense_bytes, "fidelity": statement.as_ref().map(|_| serde_json::json!({"exact": worst == 0.0, "worst": worst, "weighted_mean": mean}))}),
        || {
            let mut out = format!("[{}] {message}", id.short());
            if stats.delta_tensors + stats.dense_tensors + stats.unchanged_tensors > 0 {
                #[allow(clippy::cast_precision_loss, reason = "a ratio for people")]
                let ratio = stats.dense_bytes as f64 / stats.stored_bytes.max(1) as f64;
                out.push_str(&format!(
                    "\n  fork ({}): {} tensors as deltas, {} dense, {} unchanged; {} stored for {} dense ({ratio:.1}× smaller)",
                    settings.name(),
                    stats.delta_tensors,
                    stats.dense_tensors,
                    stats.unchanged_tensors,
                    crate::view::human_bytes(stats.stored_bytes),
                    crate::view::human_bytes(stats.dense_bytes),
                ));
                if worst > 0.0 {
                    out.push_str(&format!(
                        "\n  lossy: relative error worst {worst:.4}, weighted mean {mean:.4} (recorded in the commit)\n  the exact weights stay in the working directory, shown as changed: `checkout --force` replaces them with what was stored"
                    ));
                } else if statement.is_some() {
                    out.push_str("\n  bit-exact");
                }
            }
            out
        },
    );
    Ok(())
}

pub(crate) fn log(ctx: &Ctx, args: &LogArgs) -> Result<()> {
    let json = ctx.json;
    let LogArgs {
        rev,
        max,
        oneline,
        lineage,
        receipts,
        paths,
    } = args;
    let repo = open(ctx)?;
    if *lineage {
        return crate::view::lineage(ctx, &repo, rev, *max);
    }
    let log = repo.log_filtered(rev, *max, &agigit::PathFilter::parse(paths)?)?;
    // Each commit's receipts, newest first (one query for the repository).
    let found = if *receipts {
        let config = load_config(&repo)?;
        let coordinate = crate::receipts::this_coordinate(&config)?;
        Some(crate::receipts::fetch(&repo, &config, &coordinate, None)?)
    } else {
        None
    };
    let receipts_of = |id: &agigit::hash::ObjectId| -> Vec<_> {
        found
            .iter()
            .flat_map(|f| &f.receipts)
            .filter(|r| r.body().commit == *id)
            .collect()
    };
    let statements = log
        .iter()
        .map(|(_, c)| crate::view::statement(c))
        .collect::<Result<Vec<_>>>()?;

    let list: Vec<_> = log
            .iter()
            .zip(&statements)
            .map(|((id, c), f)| serde_json::json!({"commit": id.to_string(), "parents": c.parents.iter().map(ToString::to_string).collect::<Vec<_>>(), "author": author_name(&c.author), "time": c.time, "message": c.message, "fork_of": c.base.as_ref().map(|b| serde_json::json!({"repository": b.repo, "commit": b.commit.to_string()})), "fidelity": crate::view::fidelity_json(f.as_ref()), "receipts": found.as_ref().map(|_| receipts_of(id).into_iter().map(crate::receipts::receipt_json).collect::<Vec<_>>())}))
            .collect();
    print(json, serde_json::Value::Array(list), || {
        if *oneline {
            return log
                .iter()
                .zip(&statements)
                .map(|((id, c), f)| {
                    let mut mark = match f {
                        Some(f) if !f.is_exact() => format!(" [lossy ≤{:.3}]", f.worst()),
                        _ => String::new(),
                    };
                    // The best (lowest) value received, and how many receipts.
                    let got = receipts_of(id);
                    if let Some(best) = got
                        .iter()
                        .min_by(|a, b| a.body().value.total_cmp(&b.body().value))
                    {
                        mark.push_str(&format!(
                            " [{:.4} {}, {} receipt{}]",
                            best.body().value,
                            best.body().metric,
                            got.len(),
                            if got.len() == 1 { "" } else { "s" }
                        ));
                    }
                    format!(
                        "{}{mark} {}",
                        id.short(),
                        c.message.lines().next().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
        log.iter()
            .zip(&statements)
            .map(|((id, c), f)| {
                let mut out = format!("commit {id}\n");
                if c.parents.len() > 1 {
                    let short: Vec<String> =
                        c.parents.iter().map(|p| p.short().to_string()).collect();
                    out.push_str(&format!("Merge:  {}\n", short.join(" ")));
                }
                out.push_str(&format!(
                    "Author: {}\nDate:   {}\n",
                    author_name(&c.author),
                    utc_date(c.time)
                ));
                if let Some(base) = &c.base {
                    out.push_str(&format!(
                        "Fork:   {} at {}\n",
                        base.repo,
                        base.commit.short()
                    ));
                }
                if let Some(f) = f.as_ref().filter(|f| !f.is_exact()) {
                    out.push_str(&format!("Lossy:  {}\n", crate::view::fidelity_summary(f)));
                }
                for r in receipts_of(id) {
                    out.push_str(&format!("Eval:   {}\n", crate::receipts::receipt_line(r)));
                }
                for line in c.message.lines() {
                    out.push_str(&format!("\n    {line}"));
                }
                out.push('\n');
                out
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// A commit author's key as `npub…` (hex when it is not a valid key).
pub(crate) fn author_name(author: &[u8; 32]) -> String {
    agigit::event::nostr::prelude::PublicKey::from_slice(author)
        .ok()
        .and_then(|pk| pk.to_bech32().ok())
        .unwrap_or_else(|| author.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) use agigit::display::utc_date;

pub(crate) fn change_name(c: Change) -> &'static str {
    c.as_str()
}

/// A small file a user names (a record), read whole up to `limit` bytes.
fn read_small_file(path: &std::path::Path, limit: usize) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)
        .map_err(|e| crate::failure::Failure::invalid(format!("{}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(crate::failure::Failure::invalid(format!(
            "{}: larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

pub(crate) fn tag(ctx: &Ctx, args: &TagArgs) -> Result<()> {
    let json = ctx.json;
    let TagArgs {
        name,
        rev,
        message,
        force,
        delete,
    } = args;
    let repo = open(ctx)?;
    match name {
        Some(name) if *delete => {
            let was = repo.delete_tag(name)?;
            print(
                json,
                serde_json::json!({"deleted": name, "commit": was.to_string()}),
                || format!("deleted tag {name} (was {})", was.short()),
            );
        }
        Some(name) => {
            let at = repo.create_tag(
                name,
                rev.as_deref().unwrap_or("HEAD"),
                message.as_deref(),
                *force,
            )?;
            print(
                json,
                serde_json::json!({"tag": name, "commit": at.to_string(), "message": message}),
                || format!("tagged {} as {name}", at.short()),
            );
        }
        None => {
            let tags = repo.tags()?;
            let list: Vec<_> = tags
                .iter()
                .map(|(n, t)| serde_json::json!({"tag": n, "commit": t.commit.to_string(), "message": t.message}))
                .collect();
            print(json, serde_json::Value::Array(list), || {
                tags.iter()
                    .map(|(n, t)| match &t.message {
                        Some(m) => format!(
                            "{n}  {}  {}",
                            t.commit.short(),
                            m.lines().next().unwrap_or_default()
                        ),
                        None => format!("{n}  {}", t.commit.short()),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}
