//! `agigit pull` and `agigit fetch`, and how their reports read.

use super::*;

/// `agigit pull`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct PullArgs {
    /// A remote branch (default: the current branch's), or a commit: its id or 4+ of its
    /// first digits (every branch is fetched, then the current branch moves forward to that
    /// commit if it descends from HEAD). Hex digits only are read as a commit unless the
    /// remote has a branch of that name.
    #[arg(value_name = "BRANCH|COMMIT")]
    pub(crate) target: Option<String>,
    #[command(flatten)]
    pub(crate) parts: PartsArg,
    /// Overwrite or delete uncommitted and untracked files in the pull's way.
    #[arg(long)]
    pub(crate) force: bool,
    /// Only this file of the remote branch: fetch the segments that hold it (and the trees
    /// above it) and write it; no branch moves.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["tensor", "parts"])]
    pub(crate) path: Option<String>,
    /// Only this tensor (FILE:NAME) of a safetensors file of the remote branch: written into
    /// the file when it is here with the same layout, else as a file of that tensor alone.
    #[arg(long, value_name = "FILE:NAME", conflicts_with = "parts")]
    pub(crate) tensor: Option<String>,
}

/// `agigit fetch`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct FetchArgs {
    #[command(flatten)]
    pub(crate) parts: PartsArg,
    /// In a fork: fetch the foundation's branches instead, as foundation/<branch> (then
    /// `agigit rebase --fork foundation/master` moves the fine-tune onto its newest commit).
    #[arg(long)]
    pub(crate) foundation: bool,
    /// Also list the state events the relays hold for the repository that did not count: a
    /// stranger's (neither the owner nor a maintainer), another repository's, a forged one.
    #[arg(short, long)]
    pub(crate) verbose: bool,
}

/// Whether `text` reads as a commit id or the start of one.
pub(super) fn looks_like_commit(text: &str) -> bool {
    (4..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn pull(ctx: &Ctx, args: &PullArgs) -> Result<()> {
    let session = Session::open(ctx, &args.parts, args.force)?;
    let Session {
        repo,
        coordinate,
        rt,
        net,
        signer,
        ..
    } = &session;
    let remote = repo.remote(net, signer);
    let options = session.options();
    if let Some(want) = partial_want(args.path.as_deref(), args.tensor.as_deref())? {
        let branch = match args.target.as_deref() {
            Some(b) => b.to_owned(),
            None => current_branch(repo)?,
        };
        let report = rt.block_on(remote.pull_path(coordinate, &branch, &want, options))?;
        print_partial(ctx.json, &branch, &report);
        return Ok(());
    }
    match args.target.as_deref() {
        Some(commit) if looks_like_commit(commit) => {
            let fetched = rt.block_on(remote.fetch_all(coordinate, options))?;
            if fetched.contains_key(commit) {
                let report = rt.block_on(remote.pull(coordinate, commit, options))?;
                print_fetch(ctx.json, commit, &report);
                return Ok(());
            }
            let moved = repo.fast_forward_to(commit, args.force)?;
            let at = moved.commit.map(|c| c.to_string()).unwrap_or_default();
            print(
                ctx.json,
                serde_json::json!({"pulled": commit, "commit": at, "up_to_date": moved.up_to_date, "fast_forward": moved.fast_forward, "branches_fetched": fetched.len()}),
                || {
                    let short = &at[..at.len().min(12)];
                    if moved.up_to_date {
                        format!("already up to date: HEAD ({short}) contains {commit}")
                    } else {
                        format!("fast-forward to {short}")
                    }
                },
            );
        }
        target => {
            let branch = match target {
                Some(b) => b.to_owned(),
                None => current_branch(repo)?,
            };
            let report = rt.block_on(remote.pull(coordinate, &branch, options))?;
            print_fetch(ctx.json, &branch, &report);
        }
    }
    Ok(())
}

/// Widens the partial clone in `dir` by `parts`: its current branch pulled with the parts it
/// holds and these, as `agigit pull --parts` does (local changes in the way refuse it).
pub(crate) fn widen(dir: &std::path::Path, parts: &[agigit::Part]) -> Result<()> {
    let ctx = Ctx {
        dir: Some(dir.to_owned()),
        json: true,
    };
    let mut all: std::collections::BTreeSet<agigit::Part> = open(&ctx)?
        .parts()?
        .unwrap_or_else(|| agigit::Part::ALL.into_iter().collect());
    all.extend(parts.iter().copied());
    let names = all.iter().map(|p| p.name().to_owned()).collect();
    let session = Session::open(&ctx, &PartsArg { parts: names }, false)?;
    let remote = session.repo.remote(&session.net, &session.signer);
    let branch = current_branch(&session.repo)?;
    session
        .rt
        .block_on(remote.pull(&session.coordinate, &branch, session.options()))?;
    Ok(())
}

/// What `--path FILE` or `--tensor FILE:NAME` (of `pull`, `clone`) asks for.
pub(crate) fn partial_want(
    path: Option<&str>,
    tensor: Option<&str>,
) -> Result<Option<PartialWant>> {
    Ok(match (path, tensor) {
        (Some(path), _) => Some(PartialWant::File(path.trim_start_matches("./").to_owned())),
        (None, Some(spec)) => {
            let (file, name) = spec.rsplit_once(':').ok_or_else(|| {
                Failure::invalid(format!(
                    "--tensor {spec:?}: give the safetensors file and the tensor as FILE:NAME"
                ))
            })?;
            Some(PartialWant::Tensor {
                file: file.trim_start_matches("./").to_owned(),
                name: name.to_owned(),
            })
        }
        (None, None) => None,
    })
}

/// Prints what a partial pull did.
pub(crate) fn print_partial(json: bool, branch: &str, report: &PartialReport) {
    let tip = report.tip.map(|t| t.to_string()).unwrap_or_default();
    print(
        json,
        serde_json::json!({
            "branch": branch,
            "commit": tip,
            "written": report.written,
            "file_bytes": report.file_bytes,
            "objects": report.objects,
            "segments": report.segments,
            "bytes_downloaded": report.bytes,
            "packs_bytes": report.packs_bytes,
        }),
        || {
            format!(
                "{} from origin/{branch} ({}): {} bytes written; downloaded {} bytes ({} segments, {} objects) of packs of {} bytes",
                report.written,
                &tip[..tip.len().min(12)],
                report.file_bytes,
                report.bytes,
                report.segments,
                report.objects,
                report.packs_bytes
            )
        },
    );
}

/// `agigit fetch`: every branch of the remote, as git fetches them (or of a fork's foundation).
pub(crate) fn fetch(ctx: &Ctx, args: &FetchArgs) -> Result<()> {
    let mut session = Session::open(ctx, &args.parts, false)?;
    if args.foundation {
        let base = session.repo.fork_base()?.ok_or_else(|| {
            Failure::invalid("this repository is not a fork: it has no foundation to fetch")
        })?;
        session.coordinate = base.repo.parse::<RepoCoordinate>()?;
        session.remote_name = "foundation";
    }
    let Session {
        repo,
        coordinate,
        rt,
        net,
        signer,
        remote_name,
        ..
    } = &session;
    let remote = repo.remote(net, signer);
    let fetched = rt.block_on(remote.fetch_all(coordinate, session.options()))?;
    let list: serde_json::Map<String, serde_json::Value> = fetched
        .iter()
        .map(|(b, r)| (b.clone(), fetch_json(r)))
        .collect();
    // Every branch's fetch resolves the same state: its left-out events are the same too.
    let ignored = fetched
        .values()
        .next()
        .map_or(&[][..], |r| &r.ignored_states[..]);
    print(
        ctx.json,
        serde_json::json!({"branches": list, "ignored_states": ignored_json(ignored)}),
        || {
            let mut out = if fetched.is_empty() {
                "the remote has no branches this clone can read".to_owned()
            } else {
                fetched
                    .iter()
                    .map(|(b, r)| fetch_text(&format!("{remote_name}/{b}"), r))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            if args.verbose {
                out.push_str(&ignored_text(ignored));
            }
            out
        },
    );
    Ok(())
}

pub(super) fn fetch_json(report: &agigit::PullReport) -> serde_json::Value {
    serde_json::json!({"tip": report.tip.map(|t| t.to_string()), "packs": report.packs, "objects": report.objects, "forced_from": report.forced_from.map(|t| t.to_string()), "state_forked": report.state_forked, "tags": report.tags, "bytes": report.bytes, "resumed_segments": report.resumed_segments})
}

/// The state events a fetch left out, for `--json`.
pub(super) fn ignored_json(ignored: &[agigit::event::Ignored]) -> serde_json::Value {
    ignored
        .iter()
        .map(|i| {
            let author = match &i.reason {
                agigit::event::IgnoreReason::NotAuthorized { author } => Some(author.to_hex()),
                _ => None,
            };
            serde_json::json!({"event": i.event.to_hex(), "author": author, "reason": i.reason.to_string()})
        })
        .collect()
}

/// The state events a fetch left out, one line each, for `fetch -v`.
pub(super) fn ignored_text(ignored: &[agigit::event::Ignored]) -> String {
    if ignored.is_empty() {
        return "\n  no state event was ignored".to_owned();
    }
    let mut out = String::new();
    for i in ignored {
        let why = match &i.reason {
            agigit::event::IgnoreReason::NotAuthorized { author } => format!(
                "signed by {}, neither the owner nor a maintainer (that key's own repository of this id, or a forgery)",
                npub(author).unwrap_or_else(|_| author.to_hex())
            ),
            other => other.to_string(),
        };
        out.push_str(&format!(
            "\n  ignored state {}: {}",
            i.event.to_hex(),
            agigit::display::escape(&why)
        ));
    }
    out
}

/// `tracking` is the remote branch's short name (`origin/master`).
pub(super) fn fetch_text(tracking: &str, report: &agigit::PullReport) -> String {
    let mut out = format!(
        "{} packs, {} objects; {tracking} at {}",
        report.packs,
        report.objects,
        report
            .tip
            .map(|t| t.short().to_string())
            .unwrap_or_default()
    );
    if let Some(old) = report.forced_from {
        out.push_str(&format!(
            "\nwarning: {tracking} was rewritten: it was at {}, which the new tip does not descend from",
            old.short()
        ));
    }
    if report.state_forked {
        out.push_str("\nwarning: the repository's state history forked: its newest state does not build on the one this clone saw last (two writers?)");
    }
    if !report.tags.is_empty() {
        out.push_str(&format!("\n  new tags: {}", report.tags.join(", ")));
    }
    if report.resumed_segments > 0 {
        out.push_str(&format!(
            "\n  resumed: {} segments an interrupted fetch had kept were not downloaded again",
            report.resumed_segments
        ));
    }
    out
}

pub(super) fn print_fetch(json: bool, branch: &str, report: &agigit::PullReport) {
    let mut value = fetch_json(report);
    value["ignored_states"] = ignored_json(&report.ignored_states);
    print(json, value, || {
        fetch_text(&format!("origin/{branch}"), report)
    });
}
