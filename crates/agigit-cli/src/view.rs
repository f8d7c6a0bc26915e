//! Model-aware views: `show` and `diff`, per part, per file and per tensor.

use agigit::dag::fidelity::Fidelity;
use agigit::{Change, FileDiff, ModelDiff, PathFilter, TensorDiff, TensorInfo};

use crate::context::{Ctx, open, print};
use crate::failure::Result;
use crate::history::{author_name, change_name, utc_date};

/// `agigit show`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The commit (default: HEAD; any revision, see `agigit --help`).
    #[arg(default_value = "HEAD")]
    pub(crate) rev: String,
    /// One line per file instead of the tensor tables.
    #[arg(long)]
    pub(crate) stat: bool,
    /// Only these parts or paths (after `--`).
    #[arg(last = true, value_name = "PART|PATH")]
    pub(crate) paths: Vec<String>,
}

/// `agigit diff`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {
    /// From this revision (default: HEAD).
    pub(crate) from: Option<String>,
    /// To this revision (default: the working directory).
    pub(crate) to: Option<String>,
    /// One line per file instead of the tensor tables.
    #[arg(long)]
    pub(crate) stat: bool,
    /// Only these parts or paths (after `--`).
    #[arg(last = true, value_name = "PART|PATH")]
    pub(crate) paths: Vec<String>,
}

/// A commit's fidelity statement, if it has one.
pub(crate) fn statement(commit: &agigit::dag::Commit) -> Result<Option<Fidelity>> {
    Ok(agigit::Repository::fidelity(commit)?)
}

/// The statement's summary as JSON (`null` without one).
pub(crate) fn fidelity_json(statement: Option<&Fidelity>) -> serde_json::Value {
    statement.map_or(serde_json::Value::Null, |f| {
        serde_json::json!({"exact": f.is_exact(), "worst": f.worst(), "weighted_mean": f.weighted_mean()})
    })
}

/// `lossy: worst relative error 0.0312, weighted mean 0.0104` or `bit-exact`.
pub(crate) fn fidelity_summary(f: &Fidelity) -> String {
    if f.is_exact() {
        "bit-exact".to_owned()
    } else {
        format!(
            "lossy: worst relative error {:.4}, weighted mean {:.4}",
            f.worst(),
            f.weighted_mean()
        )
    }
}

pub(crate) fn show(ctx: &Ctx, args: &ShowArgs) -> Result<()> {
    let repo = open(ctx)?;
    let filter = PathFilter::parse(&args.paths)?;
    let (id, commit, diff) = repo.show(&args.rev, &filter)?;
    let fidelity = statement(&commit)?;
    let strategy = commit
        .extra
        .iter()
        .find(|(k, _)| k == agigit::MERGE_STRATEGY_HEADER)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    let record = agigit::record::TrainingRecord::of(&commit)?;
    let parts = repo.parts_of(&id)?;
    let value = serde_json::json!({
        "merge_strategy": strategy,
        "training": record.as_ref().map(|r| serde_json::json!({
            "record": serde_json::from_slice::<serde_json::Value>(&r.encode()).unwrap_or_default(),
            "base": commit.parents.first().map(ToString::to_string),
            "foundation": commit.base.as_ref().map(|b| serde_json::json!({"repository": b.repo, "commit": b.commit.to_string()})),
            "trained_from": parts.iter().map(|(p, id)| (p.name().to_owned(), serde_json::json!(id.to_string()))).collect::<serde_json::Map<_, _>>(),
        })),
        "fidelity": fidelity.as_ref().map(|f| {
            let mut v = fidelity_json(Some(f));
            v["tensors"] = f.records().iter().map(|r| serde_json::json!({
                "path": r.path, "tensor": r.tensor, "codec": r.codec, "rank": r.rank,
                "rel_error": r.rel_error, "elements": r.elements,
            })).collect();
            v
        }),
        "commit": id.to_string(),
        "parents": commit.parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "author": author_name(&commit.author),
        "time": commit.time,
        "message": commit.message,
        "fork_of": commit.base.as_ref().map(|b| serde_json::json!({"repository": b.repo, "commit": b.commit.to_string()})),
        "files": diff_json(&diff),
    });
    print(ctx.json, value, || {
        let mut out = format!("commit {id}\n");
        if commit.parents.len() > 1 {
            let short: Vec<String> = commit
                .parents
                .iter()
                .map(|p| p.short().to_string())
                .collect();
            out.push_str(&format!("Merge:  {}\n", short.join(" ")));
        }
        if let Some(s) = &strategy {
            out.push_str(&format!("Merged: tensors by {s}\n"));
        }
        out.push_str(&format!(
            "Author: {}\nDate:   {}\n",
            author_name(&commit.author),
            utc_date(commit.time)
        ));
        if let Some(base) = &commit.base {
            out.push_str(&format!(
                "Fork:   {} at {}\n",
                base.repo,
                base.commit.short()
            ));
        }
        for line in commit.message.lines() {
            out.push_str(&format!("\n    {line}"));
        }
        out.push_str("\n\n");
        if let Some(f) = &fidelity {
            out.push_str(&format!(
                "Fidelity: {} (signed with the commit)\n",
                fidelity_summary(f)
            ));
            let rows: Vec<[String; 3]> = f
                .records()
                .iter()
                .filter(|r| r.rel_error > 0.0)
                .map(|r| {
                    let codec = match r.rank {
                        Some(k) => format!("{} r={k}", r.codec),
                        None => r.codec.clone(),
                    };
                    [
                        format!("{}:{}", r.path, r.tensor),
                        codec,
                        format!("{:.4}", r.rel_error),
                    ]
                })
                .collect();
            let w0 = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
            let w1 = rows.iter().map(|r| r[1].chars().count()).max().unwrap_or(0);
            for [t, c, e] in &rows {
                let (p0, p1) = (w0 - t.chars().count(), w1 - c.chars().count());
                out.push_str(&format!(
                    "   {t}{}  {c}{}  {e}\n",
                    " ".repeat(p0),
                    " ".repeat(p1)
                ));
            }
            out.push('\n');
        }
        out.push_str(&diff_text(&diff, args.stat));
        out.trim_end().to_owned()
    });
    Ok(())
}

pub(crate) fn diff(ctx: &Ctx, args: &DiffArgs) -> Result<()> {
    let repo = open(ctx)?;
    let filter = PathFilter::parse(&args.paths)?;
    let from = args.from.as_deref().unwrap_or("HEAD");
    let diff = repo.diff(from, args.to.as_deref(), &filter)?;
    print(
        ctx.json,
        serde_json::json!({"from": from, "to": args.to, "files": diff_json(&diff)}),
        || {
            let text = diff_text(&diff, args.stat);
            if text.is_empty() {
                "no changes".to_owned()
            } else {
                text.trim_end().to_owned()
            }
        },
    );
    Ok(())
}

fn info_json(info: Option<&TensorInfo>) -> serde_json::Value {
    info.map_or(serde_json::Value::Null, |i| {
        serde_json::json!({
            "dtype": i.dtype,
            "shape": i.shape,
            "stored": i.storage.as_ref().map(|s| serde_json::json!({
                "encoding": s.encoding,
                "params": s.params.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
                "delta": s.delta,
                "bytes": s.stored_bytes,
                "dense_bytes": s.dense_bytes,
                "rel_error": s.rel_error,
            })),
        })
    })
}

fn diff_json(diff: &ModelDiff) -> serde_json::Value {
    diff.files
        .iter()
        .map(|f| {
            serde_json::json!({
                "path": f.path,
                "part": f.part.name(),
                "change": change_name(f.change),
                "bytes": {"old": f.bytes.0, "new": f.bytes.1},
                "tensors": f.tensors.iter().map(|t| serde_json::json!({
                    "name": t.name,
                    "change": change_name(t.change),
                    "old": info_json(t.old.as_ref()),
                    "new": info_json(t.new.as_ref()),
                    "elements": t.comparison.map(|c| c.elements),
                    "changed_elements": t.comparison.map(|c| c.changed),
                    "changed_share": t.comparison.map(|c| c.changed_share()),
                    "relative_change": t.comparison.and_then(|c| c.relative_change()).filter(|r| r.is_finite()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

pub(crate) use agigit::display::bytes as human_bytes;

fn shape_text(shape: &[u64]) -> String {
    if shape.is_empty() {
        return "scalar".to_owned();
    }
    shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

/// `a → b`, or `a` when both sides say the same.
fn either(old: Option<String>, new: Option<String>) -> String {
    match (old, new) {
        (Some(a), Some(b)) if a == b => a,
        (Some(a), Some(b)) => format!("{a} → {b}"),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => String::new(),
    }
}

fn stored_text(info: Option<&TensorInfo>) -> Option<String> {
    let info = info?;
    Some(match &info.storage {
        Some(s) => format!("{} {}", human_bytes(s.stored_bytes), s.describe()),
        None => "(working dir)".to_owned(),
    })
}

/// One row of a tensor table.
fn tensor_row(t: &TensorDiff) -> [String; 6] {
    let (old, new) = (t.old.as_ref(), t.new.as_ref());
    let changed = match (t.change, t.comparison) {
        (Change::Added, _) => "added".to_owned(),
        (Change::Deleted, _) => "deleted".to_owned(),
        (_, Some(c)) => format!("{:.1}%", c.changed_share() * 100.0),
        (_, None) => "reshaped".to_owned(),
    };
    let relative = t.comparison.and_then(|c| c.relative_change()).map_or_else(
        || "-".to_owned(),
        |r| {
            if r.is_finite() {
                format!("{r:.4}")
            } else {
                "∞".to_owned()
            }
        },
    );
    [
        t.name.clone(),
        either(old.map(|i| i.dtype.clone()), new.map(|i| i.dtype.clone())),
        either(
            old.map(|i| shape_text(&i.shape)),
            new.map(|i| shape_text(&i.shape)),
        ),
        changed,
        relative,
        either(stored_text(old), stored_text(new)),
    ]
}

/// A table with columns padded to their widest cell (by characters), the first left-aligned.
fn table(header: [&str; 6], rows: &[[String; 6]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::from("   ");
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            // Numbers right-aligned, words left-aligned; the last column is not padded.
            if i == 3 || i == 4 {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else if i == 5 {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
            out.push_str("  ");
        }
        out.trim_end().to_owned()
    };
    let mut out = vec![line(header)];
    out.extend(
        rows.iter()
            .map(|r| line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]])),
    );
    out.join("\n")
}

fn file_heading(f: &FileDiff) -> String {
    let mut out = format!("{}  {}  [{}]", f.path, change_name(f.change), f.part.name());
    match f.bytes {
        (Some(a), Some(b)) => out.push_str(&format!("  {} → {}", human_bytes(a), human_bytes(b))),
        (Some(a), None) | (None, Some(a)) => out.push_str(&format!("  {}", human_bytes(a))),
        (None, None) => {}
    }
    out
}

fn diff_text(diff: &ModelDiff, stat: bool) -> String {
    let mut out = String::new();
    if stat {
        let width = diff
            .files
            .iter()
            .map(|f| f.path.chars().count())
            .max()
            .unwrap_or(0);
        for f in &diff.files {
            let pad = width - f.path.chars().count();
            let what = if f.tensors.is_empty() {
                either(f.bytes.0.map(human_bytes), f.bytes.1.map(human_bytes))
            } else {
                format!("{} tensors", f.tensors.len())
            };
            out.push_str(&format!(
                " {}{} | {:<8} {what}\n",
                f.path,
                " ".repeat(pad),
                change_name(f.change)
            ));
        }
        out.push_str(&format!(" {} files changed\n", diff.files.len()));
        return out;
    }
    for f in &diff.files {
        out.push_str(&file_heading(f));
        out.push('\n');
        if !f.tensors.is_empty() {
            let rows: Vec<[String; 6]> = f.tensors.iter().map(tensor_row).collect();
            out.push_str(&table(
                ["tensor", "dtype", "shape", "changed", "‖Δ‖/‖W‖", "stored"],
                &rows,
            ));
            out.push('\n');
        }
    }
    out
}

/// `agigit log --lineage`: the first-parent line from `rev`, across fork bases, each commit
/// with the repository it belongs to and its training record.
pub(crate) fn lineage(ctx: &Ctx, repo: &agigit::Repository, rev: &str, max: usize) -> Result<()> {
    let line = repo.lineage(rev, max)?;
    let list: Vec<_> = line
        .iter()
        .map(|step| {
            serde_json::json!({
                "commit": step.id.to_string(),
                "repository": step.repository,
                "message": step.commit.message,
                "fork_of": step.commit.base.as_ref().map(|b| serde_json::json!({"repository": b.repo, "commit": b.commit.to_string()})),
                "record": step.record.as_ref().map(|r| serde_json::from_slice::<serde_json::Value>(&r.encode()).unwrap_or_default()),
                "trained_from": step.parts.iter().map(|(p, id)| (p.name().to_owned(), serde_json::json!(id.to_string()))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    print(ctx.json, serde_json::Value::Array(list), || {
        let mut out = Vec::new();
        let mut last_repo: Option<&str> = None;
        for step in &line {
            let here = step.repository.as_deref().unwrap_or("this repository");
            if last_repo != Some(here) {
                out.push(format!("── {here}"));
                last_repo = Some(here);
            }
            let mut l = format!(
                "{} {}",
                step.id.short(),
                step.commit.message.lines().next().unwrap_or_default()
            );
            if let Some(r) = &step.record {
                l.push_str(&format!("\n      trained: {}", r.summary()));
                let from: Vec<String> = step
                    .parts
                    .iter()
                    .filter(|(p, _)| *p != agigit::Part::Params)
                    .map(|(p, id)| format!("{} {}", p.name(), id.short()))
                    .collect();
                if !from.is_empty() {
                    l.push_str(&format!(" (from {})", from.join(", ")));
                }
            }
            if let Some(b) = &step.commit.base
                && step.commit.parents.first() == Some(&b.commit)
            {
                l.push_str(&format!(
                    "\n      forked from {} at {}",
                    b.repo,
                    b.commit.short()
                ));
            }
            out.push(l);
        }
        out.join("\n")
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up() {
        let rows = [
            [
                "a.weight".to_owned(),
                "F32".to_owned(),
                "64×64".to_owned(),
                "100.0%".to_owned(),
                "0.2500".to_owned(),
                "16.0 KiB dense".to_owned(),
            ],
            [
                "model.embed_tokens.weight".to_owned(),
                "BF16".to_owned(),
                "32000×4096".to_owned(),
                "3.1%".to_owned(),
                "0.0010".to_owned(),
                "1.2 MiB lossless delta".to_owned(),
            ],
        ];
        let text = table(
            ["tensor", "dtype", "shape", "changed", "‖Δ‖/‖W‖", "stored"],
            &rows,
        );
        let lines: Vec<&str> = text.lines().collect();
        // Every row's "stored" column starts at the same character.
        let at = |l: &str, s: &str| l.find(s).map(|b| l[..b].chars().count());
        assert_eq!(at(lines[1], "16.0"), at(lines[2], "1.2 MiB"));
        assert_eq!(at(lines[0], "stored"), at(lines[1], "16.0"));
        // Numbers right-aligned: the relative changes end in the same column.
        let end = |l: &str, s: &str| at(l, s).map(|c| c + s.chars().count());
        assert_eq!(end(lines[1], "0.2500"), end(lines[2], "0.0010"));
    }
}
