//! Relays and transfers: `relay`, `push`, `pull`, `fetch`.

use agigit::PushOptions;
use agigit::config::RelayEntry;
use agigit::event::{RepoCoordinate, RepoId};
use clap::Subcommand;

use crate::context::{
    Bar, Ctx, current_branch, effective, fetch_identity, keys, load_config, network, open, print,
    reader_secret, runtime, save_config,
};
use crate::failure::{Failure, Result};

/// Which parts to fetch.
#[derive(Debug, clap::Args)]
pub(crate) struct PartsArg {
    /// Fetch only these parts (comma-separated: code, params, data/train, data/validation, or
    /// all); a partial clone keeps its parts on later pulls unless given more.
    #[arg(long, value_delimiter = ',', value_name = "PARTS")]
    pub(crate) parts: Vec<String>,
}

impl PartsArg {
    pub(crate) fn parse(&self) -> Result<Option<Vec<agigit::Part>>> {
        if self.parts.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for name in &self.parts {
            match name.as_str() {
                "all" => out.extend(agigit::Part::ALL),
                "train" => out.push(agigit::Part::Train),
                "validation" => out.push(agigit::Part::Validation),
                other => out.push(agigit::Part::from_name(other).ok_or_else(|| {
                    Failure::invalid(format!(
                        "unknown part {other:?}: use code, params, data/train, data/validation or all"
                    ))
                })?),
            }
        }
        Ok(Some(out))
    }
}

/// `agigit relay`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct RelayArgs {
    #[command(subcommand)]
    pub(crate) action: RelayAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RelayAction {
    /// Add a relay (both roles unless one is given).
    Add {
        /// ws://host:port
        url: String,
        /// Fetch from it only.
        #[arg(long)]
        fetch: bool,
        /// Push to it only.
        #[arg(long)]
        push: bool,
    },
    /// Remove a relay (or one of its roles).
    Remove {
        /// ws://host:port
        url: String,
        /// Remove only the fetch role.
        #[arg(long)]
        fetch: bool,
        /// Remove only the push role.
        #[arg(long)]
        push: bool,
    },
    /// List relays and their roles.
    List,
}

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
}

/// `agigit fetch`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct FetchArgs {
    #[command(flatten)]
    pub(crate) parts: PartsArg,
}

pub(crate) fn relay(ctx: &Ctx, args: &RelayArgs) -> Result<()> {
    let json = ctx.json;
    let RelayArgs { action } = args;
    let repo = open(ctx)?;
    let mut config = load_config(&repo)?;
    match action {
        RelayAction::Add { url, fetch, push } => {
            agigit::net::pool::check_relay_url(url)?;
            let (fetch, push) = if !fetch && !push {
                (true, true)
            } else {
                (*fetch, *push)
            };
            match config.relays.iter_mut().find(|r| r.url == *url) {
                Some(r) => {
                    r.fetch |= fetch;
                    r.push |= push;
                }
                None => config.relays.push(RelayEntry {
                    url: url.clone(),
                    fetch,
                    push,
                }),
            }
            save_config(&repo, &config)?;
        }
        RelayAction::Remove { url, fetch, push } => {
            let (fetch, push) = if !fetch && !push {
                (true, true)
            } else {
                (*fetch, *push)
            };
            let Some(r) = config.relays.iter_mut().find(|r| r.url == *url) else {
                return Err(Failure::invalid(format!(
                    "no relay {url}: see `agigit relay list`"
                )));
            };
            r.fetch &= !fetch;
            r.push &= !push;
            config.relays.retain(|r| r.fetch || r.push);
            save_config(&repo, &config)?;
        }
        RelayAction::List => {
            let list: Vec<_> = config
                .relays
                .iter()
                .map(|r| serde_json::json!({"url": r.url, "fetch": r.fetch, "push": r.push}))
                .collect();
            print(json, serde_json::Value::Array(list), || {
                config
                    .relays
                    .iter()
                    .map(|r| {
                        let roles = match (r.fetch, r.push) {
                            (true, true) => "fetch, push",
                            (true, false) => "fetch",
                            _ => "push",
                        };
                        format!("{}  ({roles})", r.url)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

pub(crate) fn push(ctx: &Ctx) -> Result<()> {
    let json = ctx.json;
    let repo = open(ctx)?;
    let config = load_config(&repo)?;
    let keys = keys()?;
    let id = config
        .id
        .clone()
        .ok_or_else(|| Failure::invalid("no repository id: set `id` in .agigit/config.toml"))?;
    let id = RepoId::new(id)?;
    let branch = current_branch(&repo)?;
    let (relays, push) = effective(&config)?;
    let code = push.code()?;
    let private = repo.private_keys(&reader_secret(&keys)?)?;
    let bar = Bar::new(json);
    let options = PushOptions {
        segment_size: push.segment_size,
        min_accepted: push.min_accepted,
        keys: private.as_ref(),
        progress: Some(&bar),
        ..PushOptions::new(&code)
    };
    let rt = runtime()?;
    let _entered = rt.enter();
    let net = network(&keys, &relays)?;
    let report = rt.block_on(repo.remote(&net, &keys).push(&id, &branch, options))?;
    let coordinate = RepoCoordinate::new(keys.public_key(), id).to_string();
    print(
        json,
        serde_json::json!({"pushed": branch, "repository": coordinate, "objects": report.objects, "shards": report.shards, "rerouted": report.rerouted, "pack_bytes": report.pack_bytes, "private": report.private, "up_to_date": report.up_to_date, "bytes_per_server": report.bytes_per_server}),
        || {
            if report.up_to_date {
                format!("everything up to date ({coordinate})")
            } else {
                let mut out = format!(
                    "pushed {branch} to {coordinate}: {} objects, {} bytes in {} shards{}",
                    report.objects,
                    report.pack_bytes,
                    report.shards,
                    if report.private { ", encrypted" } else { "" }
                );
                if report.rerouted > 0 {
                    out.push_str(&format!(
                        "\n  {} shards went to another server because theirs failed",
                        report.rerouted
                    ));
                }
                for (s, b) in &report.bytes_per_server {
                    out.push_str(&format!("\n  {s}: {b} bytes"));
                }
                out
            }
        },
    );
    Ok(())
}

/// Whether `text` reads as a commit id or the start of one.
fn looks_like_commit(text: &str) -> bool {
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

/// `agigit fetch`: every branch of the remote, as git fetches them.
pub(crate) fn fetch(ctx: &Ctx, args: &FetchArgs) -> Result<()> {
    let session = Session::open(ctx, &args.parts, false)?;
    let Session {
        repo,
        coordinate,
        rt,
        net,
        signer,
        ..
    } = &session;
    let remote = repo.remote(net, signer);
    let fetched = rt.block_on(remote.fetch_all(coordinate, session.options()))?;
    let list: serde_json::Map<String, serde_json::Value> = fetched
        .iter()
        .map(|(b, r)| (b.clone(), fetch_json(r)))
        .collect();
    print(ctx.json, serde_json::json!({"branches": list}), || {
        if fetched.is_empty() {
            return "the remote has no branches this clone can read".to_owned();
        }
        fetched
            .iter()
            .map(|(b, r)| fetch_text(b, r))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// What a pull or fetch needs: the repository, the remote's coordinate, the network and who
/// fetches.
struct Session {
    repo: agigit::Repository,
    coordinate: RepoCoordinate,
    /// Before the runtime, so the relays' tasks stop while it still runs.
    net: agigit::net::Network,
    rt: tokio::runtime::Runtime,
    signer: agigit::event::nostr::prelude::Keys,
    secret: Option<agigit::crypt::ReaderSecret>,
    parts: Option<Vec<agigit::Part>>,
    force: bool,
    bar: Bar,
}

impl Session {
    fn open(ctx: &Ctx, parts: &PartsArg, force: bool) -> Result<Self> {
        let parts = parts.parse()?;
        let repo = open(ctx)?;
        let config = load_config(&repo)?;
        let coordinate = match &config.remote {
            Some(c) => c.parse::<RepoCoordinate>()?,
            None => {
                let keys = keys()?;
                let id = config.id.clone().ok_or_else(|| {
                    Failure::invalid("no remote and no repository id in .agigit/config.toml")
                })?;
                RepoCoordinate::new(keys.public_key(), RepoId::new(id)?)
            }
        };
        let (signer, secret) = fetch_identity()?;
        let (relays, _) = effective(&config)?;
        let rt = runtime()?;
        let net = {
            let _entered = rt.enter();
            network(&signer, &relays)?
        };
        Ok(Session {
            repo,
            coordinate,
            rt,
            net,
            signer,
            secret,
            parts,
            force,
            bar: Bar::new(ctx.json),
        })
    }

    fn options(&self) -> agigit::FetchOptions<'_> {
        agigit::FetchOptions {
            secret: self.secret.as_ref(),
            progress: Some(&self.bar),
            parts: self.parts.as_deref(),
            force: self.force,
            ..agigit::FetchOptions::default()
        }
    }
}

fn fetch_json(report: &agigit::PullReport) -> serde_json::Value {
    serde_json::json!({"tip": report.tip.map(|t| t.to_string()), "packs": report.packs, "objects": report.objects, "forced_from": report.forced_from.map(|t| t.to_string()), "state_forked": report.state_forked})
}

fn fetch_text(branch: &str, report: &agigit::PullReport) -> String {
    let mut out = format!(
        "{} packs, {} objects; origin/{branch} at {}",
        report.packs,
        report.objects,
        report
            .tip
            .map(|t| t.short().to_string())
            .unwrap_or_default()
    );
    if let Some(old) = report.forced_from {
        out.push_str(&format!(
            "\nwarning: origin/{branch} was rewritten: it was at {}, which the new tip does not descend from",
            old.short()
        ));
    }
    if report.state_forked {
        out.push_str("\nwarning: the repository's state history forked: its newest state does not build on the one this clone saw last (two writers?)");
    }
    out
}

fn print_fetch(json: bool, branch: &str, report: &agigit::PullReport) {
    print(json, fetch_json(report), || fetch_text(branch, report));
}
