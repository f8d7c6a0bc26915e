//! `agigit branch`, `checkout`, `merge` and `rebase`: moving between and joining lines of work.

use super::*;

/// `agigit branch`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct BranchArgs {
    /// A branch to create (or, with -d/-D, to delete).
    pub(crate) name: Option<String>,
    /// Where the new branch starts (default: HEAD; any revision, see `agigit --help`).
    #[arg(conflicts_with_all = ["delete", "force_delete"])]
    pub(crate) start: Option<String>,
    /// Delete the branch, if HEAD contains its commits.
    #[arg(short = 'd', long, requires = "name")]
    pub(crate) delete: bool,
    /// Delete the branch whatever it holds (its commit id is printed, to bring it back).
    #[arg(short = 'D', requires = "name", conflicts_with = "delete")]
    pub(crate) force_delete: bool,
}

/// `agigit checkout`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckoutArgs {
    /// A branch to switch to, or any other revision to detach at (a commit id or its first
    /// 4+ digits, a tag, origin/master, HEAD~n; see `agigit --help`).
    pub(crate) rev: String,
    /// Overwrite or delete uncommitted and untracked files in the checkout's way.
    #[arg(long)]
    pub(crate) force: bool,
    /// Take only these parts or paths from the revision into the working directory (after
    /// `--`), without moving HEAD: e.g. `checkout v1 -- params` keeps today's data with v1's
    /// weights, ready to commit.
    #[arg(last = true, value_name = "PART|PATH")]
    pub(crate) paths: Vec<String>,
}

/// `agigit merge`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct MergeArgs {
    /// What to merge into the current branch: branches, tags or commits (several make one
    /// merge commit; those the branch already holds drop out, as in git).
    #[arg(required = true, value_name = "REV")]
    pub(crate) revs: Vec<String>,
    /// How to merge tensors both sides changed: ours, theirs, average[:w] (our weight, 0.5),
    /// task-arithmetic[:λ] (1), ties[:density] (0.2); ours and theirs also settle conflicting
    /// files. The merge commit records it.
    #[arg(long)]
    pub(crate) strategy: Option<String>,
    /// Overwrite or delete uncommitted and untracked files in the merge's way.
    #[arg(long)]
    pub(crate) force: bool,
    /// A merge commit even where a fast-forward would do (one revision), as `git merge
    /// --no-ff`.
    #[arg(long = "no-ff")]
    pub(crate) no_ff: bool,
    /// The merge commit's message (with --no-ff).
    #[arg(short, long, requires = "no_ff")]
    pub(crate) message: Option<String>,
}

/// `agigit rebase`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct RebaseArgs {
    /// The commit or branch to rebase onto.
    pub(crate) rev: Option<String>,
    /// How to merge tensors both sides changed while replaying.
    #[arg(long)]
    pub(crate) strategy: Option<String>,
    /// Re-base the fork onto this commit of its foundation (fetch the foundation first):
    /// the fine-tune's change is replayed on it and stored as deltas against it.
    #[arg(long, value_name = "COMMIT", conflicts_with_all = ["rev", "strategy"])]
    pub(crate) fork: Option<String>,
    /// Overwrite or delete uncommitted and untracked files in the rebase's way.
    #[arg(long)]
    pub(crate) force: bool,
}

pub(crate) fn branch(ctx: &Ctx, args: &BranchArgs) -> Result<()> {
    let json = ctx.json;
    let BranchArgs {
        name,
        start,
        delete,
        force_delete,
    } = args;
    let repo = open(ctx)?;
    if let (Some(name), true) = (name, *delete || *force_delete) {
        let was = repo.delete_branch(name, *force_delete)?;
        print(
            json,
            serde_json::json!({"deleted": name, "commit": was.to_string()}),
            || format!("deleted branch {name} (was {})", was.short()),
        );
    } else if let Some(name) = name {
        let at = repo.create_branch(name, start.as_deref().unwrap_or("HEAD"))?;
        print(
            json,
            serde_json::json!({"branch": name, "commit": at.to_string()}),
            || format!("created branch {name} at {}", at.short()),
        );
    } else {
        let current = current_branch(&repo).ok();
        let branches = repo.branches()?;
        let list: Vec<_> = branches
                .iter()
                .map(|(b, id)| serde_json::json!({"branch": b, "commit": id.to_string(), "current": Some(b) == current.as_ref()}))
                .collect();
        print(json, serde_json::Value::Array(list), || {
            branches
                .iter()
                .map(|(b, id)| {
                    let mark = if Some(b) == current.as_ref() {
                        "*"
                    } else {
                        " "
                    };
                    format!("{mark} {b}  {}", id.short())
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
    }
    Ok(())
}

pub(crate) fn checkout(ctx: &Ctx, args: &CheckoutArgs) -> Result<()> {
    let json = ctx.json;
    let CheckoutArgs { rev, force, paths } = args;
    let repo = open(ctx)?;
    // Read before the checkout moves HEAD (a relative revision would move with it).
    let commit = repo
        .store()
        .find_commit(&repo.resolve(rev)?)
        .map_err(agigit::Error::from)?;
    let lossy = crate::view::statement(&commit)?.filter(|f| !f.is_exact());
    let report = if paths.is_empty() {
        repo.checkout(rev, *force)?
    } else {
        repo.checkout_paths(rev, &agigit::PathFilter::parse(paths)?, *force)?
    };
    let what = if paths.is_empty() {
        rev.clone()
    } else {
        format!("{} from {rev}", paths.join(", "))
    };
    print(
        json,
        serde_json::json!({"checkout": rev, "paths": paths, "written": report.written, "removed": report.removed, "unchanged": report.unchanged, "fidelity": crate::view::fidelity_json(lossy.as_ref())}),
        || {
            let mut out = format!(
                "checked out {what}: {} files written, {} removed, {} unchanged",
                report.written, report.removed, report.unchanged
            );
            if let Some(f) = &lossy {
                out.push_str(&format!(
                    "\nnote: this commit is lossy ({}): its weights approximate the fine-tune; every file was checked against what decoding gives (the digests the commit records), not against the original",
                    crate::view::fidelity_summary(f)
                ));
            }
            out
        },
    );
    Ok(())
}

pub(crate) fn merge(ctx: &Ctx, args: &MergeArgs) -> Result<()> {
    let json = ctx.json;
    let MergeArgs {
        revs,
        strategy: s,
        force,
        no_ff,
        message,
    } = args;
    let repo = open(ctx)?;
    let keys = keys()?;
    let revs: Vec<&str> = revs.iter().map(String::as_str).collect();
    let report = match (no_ff, revs.as_slice()) {
        (true, [rev]) => repo.merge_no_ff(
            rev,
            message.as_deref().unwrap_or(&format!("Merge {rev}")),
            strategy(s.as_ref())?,
            keys.public_key().to_bytes(),
            *force,
        )?,
        (true, _) => {
            return Err(crate::failure::Failure::invalid(
                "--no-ff merges one revision",
            ));
        }
        (false, _) => repo.merge_all(
            &revs,
            strategy(s.as_ref())?,
            keys.public_key().to_bytes(),
            *force,
        )?,
    };
    print_merge(json, &format!("merged {}", revs.join(", ")), &report);
    Ok(())
}

pub(crate) fn rebase(ctx: &Ctx, args: &RebaseArgs) -> Result<()> {
    let json = ctx.json;
    let RebaseArgs {
        rev,
        strategy: s,
        fork,
        force,
    } = args;
    let repo = open(ctx)?;
    let report = if let Some(base) = fork {
        let keys = keys()?;
        repo.rebase_fork(base, keys.public_key().to_bytes(), *force)?
    } else {
        let onto = match rev {
            Some(r) => r.clone(),
            None => format!("refs/remotes/origin/{}", current_branch(&repo)?),
        };
        repo.rebase(&onto, strategy(s.as_ref())?, *force)?
    };
    print_merge(json, "rebased", &report);
    Ok(())
}

pub(super) fn strategy(name: Option<&String>) -> Result<Option<agigit::MergeStrategy>> {
    Ok(name.map(|n| n.parse()).transpose()?)
}

pub(super) fn print_merge(json: bool, what: &str, report: &agigit::MergeReport) {
    print(
        json,
        serde_json::json!({
            "commit": report.commit.map(|c| c.to_string()),
            "up_to_date": report.up_to_date,
            "fast_forward": report.fast_forward,
            "commits": report.commits,
            "merged_tensors": report.merged_tensors,
            "resolved_by_side": report.resolved_by_side,
        }),
        || {
            let at = report
                .commit
                .map(|c| c.short().to_string())
                .unwrap_or_default();
            if report.up_to_date {
                return "already up to date".to_owned();
            }
            let mut out = if report.fast_forward {
                format!("fast-forward to {at}")
            } else {
                format!("{what}: {} commits written, now at {at}", report.commits)
            };
            for t in &report.merged_tensors {
                out.push_str(&format!("\n  merged tensor {t}"));
            }
            for f in &report.resolved_by_side {
                out.push_str(&format!("\n  took one side of {f}"));
            }
            out
        },
    );
}
