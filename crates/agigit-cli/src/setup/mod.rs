//! Setting up: `init`, `clone`, `fork`, `reader`, `key`.

use std::path::{Path, PathBuf};

use agigit::Repository;
use agigit::config::{RelayEntry, RepoConfig};
use agigit::event::nostr::prelude::Keys;
use agigit::event::{RepoCoordinate, RepoId};
use clap::Subcommand;

use crate::context::{
    Bar, Ctx, add_blob_servers, current_branch, fetch_identity, keys, load_config, network, npub,
    open, parse_reader, print, reader_secret, runtime, save_config, write_key,
};
use crate::failure::{Failure, Result};
use crate::remote::PartsArg;

mod keys;

pub(crate) use self::keys::*;

/// Whether a new repository is private, and its readers.
#[derive(Debug, clap::Args)]
pub(crate) struct Privacy {
    /// Make it private: everything pushed is encrypted, readable by you and `--reader`s.
    #[arg(long)]
    pub(crate) private: bool,
    /// A reader of the private repository (npub… or hex; repeat for several).
    #[arg(long = "reader", value_name = "NPUB", requires = "private")]
    pub(crate) readers: Vec<String>,
}

/// `agigit init`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The directory.
    pub(crate) dir: Option<PathBuf>,
    /// The repository id used when pushing (default: the directory's name).
    #[arg(long)]
    pub(crate) id: Option<String>,
    /// The branch to start on (default: `[init] default_branch` in the user-level
    /// config.toml, else master).
    #[arg(short = 'b', long, value_name = "BRANCH")]
    pub(crate) initial_branch: Option<String>,
    #[command(flatten)]
    pub(crate) privacy: Privacy,
}

/// `agigit clone`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct CloneArgs {
    /// The repository's coordinate.
    pub(crate) coordinate: String,
    /// The directory (default: the repository id).
    pub(crate) dir: Option<PathBuf>,
    /// A relay to fetch from (repeat for several; each also serves blobs). Without one, the
    /// repository's relays are looked up on your bootstrap relays (the `[[relay]]` list of
    /// ~/.config/agigit/config.toml): its announcement's, then its owner's NIP-65 list.
    #[arg(long = "relay")]
    pub(crate) relays: Vec<String>,
    /// The remote branch to clone and check out (default: the remote's default branch, the
    /// one its `HEAD` names; master when it names none).
    #[arg(short = 'b', long, value_name = "BRANCH")]
    pub(crate) branch: Option<String>,
    #[command(flatten)]
    pub(crate) parts: PartsArg,
    /// Only this file: fetch the segments that hold it (and the trees above it) and write it
    /// into the new directory, tracking nothing yet (a later `pull` fetches the rest).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["tensor", "parts"])]
    pub(crate) path: Option<String>,
    /// Only this tensor (FILE:NAME) of a safetensors file, written as a file of that tensor.
    #[arg(long, value_name = "FILE:NAME", conflicts_with = "parts")]
    pub(crate) tensor: Option<String>,
}

/// `agigit fork`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ForkArgs {
    /// The foundation's coordinate (`30717:<owner hex>:<id>`).
    pub(crate) coordinate: String,
    /// The directory (default: the new id).
    pub(crate) dir: Option<PathBuf>,
    /// A relay to fetch from and push to (repeat for several).
    #[arg(long = "relay", required = true)]
    pub(crate) relays: Vec<String>,
    /// The fork's repository id (default: `<foundation id>-fork`).
    #[arg(long)]
    pub(crate) id: Option<String>,
    #[command(flatten)]
    pub(crate) privacy: Privacy,
}

pub(crate) fn init(ctx: &Ctx, args: &InitArgs) -> Result<()> {
    let json = ctx.json;
    let InitArgs {
        dir,
        id,
        initial_branch,
        privacy: Privacy { private, readers },
    } = args;
    let dir = dir
        .clone()
        .or_else(|| ctx.dir.clone())
        .unwrap_or_else(|| PathBuf::from("."));
    let branch = match initial_branch {
        Some(b) => b.clone(),
        None => crate::context::load_user_config()?
            .initial_branch()
            .to_owned(),
    };
    agigit::dag::RefName::branch(&branch)
        .map_err(|e| Failure::invalid(format!("initial branch {branch:?}: {e}")))?;
    std::fs::create_dir_all(&dir)?;
    let id = match id {
        Some(id) => id.clone(),
        None => std::fs::canonicalize(&dir)?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into()),
    };
    // Both names are checked before anything is made.
    RepoId::new(id.clone()).map_err(|e| Failure::invalid(format!("repository id {id:?}: {e}")))?;
    let repo = Repository::init_on_branch(&dir, &branch)?;
    save_config(
        &repo,
        &RepoConfig {
            id: Some(id.clone()),
            ..RepoConfig::default()
        },
    )?;
    if *private {
        make_private(&repo, readers)?;
    }
    print(
        json,
        serde_json::json!({"initialized": dir, "id": id, "private": private, "branch": branch}),
        || {
            format!(
                "initialized an empty {}agigit repository {id:?} in {}, on branch {branch}",
                if *private { "private " } else { "" },
                dir.display()
            )
        },
    );
    Ok(())
}

pub(crate) fn clone(ctx: &Ctx, args: &CloneArgs) -> Result<()> {
    let json = ctx.json;
    let CloneArgs {
        coordinate,
        dir,
        relays,
        branch,
        parts,
        path,
        tensor,
    } = args;
    let partial = crate::remote::partial_want(path.as_deref(), tensor.as_deref())?;
    let coord = parse_coordinate(coordinate)?;
    let (relays, blob_servers) = if relays.is_empty() {
        let found = crate::remote::discover_relays(&coord)?;
        if !json {
            eprintln!("relays of {coord}: {}", found.relays.join(", "));
            if !found.blob_servers.is_empty() {
                eprintln!("its blob servers: {}", found.blob_servers.join(", "));
            }
        }
        (found.relays, found.blob_servers)
    } else {
        (relays.clone(), Vec::new())
    };
    let relays = &relays;
    let dir = dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(coord.id.as_str()));
    let parts = parts.parse()?;
    let from = CloneFrom {
        coord: &coord,
        relays,
        blob_servers: &blob_servers,
        branch: branch.as_deref(),
        parts: parts.as_deref(),
        partial: partial.as_ref(),
    };
    let mut partial_report = None;
    let (repo, report) = clone_into(
        &from,
        &dir,
        coord.id.as_str(),
        json,
        keep_envelope,
        &mut partial_report,
    )?;
    let on = current_branch(&repo)?;
    if let Some(p) = &partial_report {
        crate::remote::print_partial(json, &on, p);
        return Ok(());
    }
    print(
        json,
        serde_json::json!({"cloned": coordinate, "dir": dir, "branch": on, "packs": report.packs, "objects": report.objects, "private": report.envelope.is_some()}),
        || {
            format!(
                "cloned {coordinate} into {}, on branch {on} ({} packs, {} objects{})",
                dir.display(),
                report.packs,
                report.objects,
                if report.envelope.is_some() {
                    ", private"
                } else {
                    ""
                }
            )
        },
    );
    Ok(())
}

/// Clones `coord` into `dir` without a word on the terminal: its default branch, from the
/// relays and blob servers its announcement names (found as `agigit clone` finds them, asking
/// `bootstrap`); a private
/// repository stays private for the same readers. What `agigit serve` fetches to show.
pub(crate) fn clone_quietly(
    coord: &RepoCoordinate,
    bootstrap: &[RelayEntry],
    dir: &Path,
) -> Result<()> {
    let found = crate::remote::discover_relays_on(coord, bootstrap)?;
    let from = CloneFrom {
        coord,
        relays: &found.relays,
        blob_servers: &found.blob_servers,
        branch: None,
        parts: None,
        partial: None,
    };
    let mut unused = None;
    clone_into(
        &from,
        dir,
        coord.id.as_str(),
        true,
        keep_envelope,
        &mut unused,
    )?;
    Ok(())
}

/// A clone of a private repository stays private, for the same readers.
fn keep_envelope(repo: &Repository, report: &agigit::PullReport) -> Result<()> {
    if let Some(envelope) = &report.envelope {
        repo.save_envelope(envelope)?;
    }
    Ok(())
}

pub(crate) fn fork(ctx: &Ctx, args: &ForkArgs) -> Result<()> {
    let json = ctx.json;
    let ForkArgs {
        coordinate,
        dir,
        relays,
        id,
        privacy: Privacy { private, readers },
    } = args;
    let coord: RepoCoordinate = coordinate.parse()?;
    let id = id
        .clone()
        .unwrap_or_else(|| format!("{}-fork", coord.id.as_str()));
    RepoId::new(id.clone()).map_err(|e| Failure::invalid(format!("repository id {id:?}: {e}")))?;
    let dir = dir.clone().unwrap_or_else(|| PathBuf::from(&id));
    let from = CloneFrom {
        coord: &coord,
        relays,
        blob_servers: &[],
        branch: None,
        parts: None,
        partial: None,
    };
    let mut unused = None;
    let (_, report) = clone_into(
        &from,
        &dir,
        &id,
        json,
        |repo, report| {
            let tip = report
                .tip
                .ok_or_else(|| Failure::invalid("the foundation has no commits"))?;
            repo.set_fork_base(coordinate, tip)?;
            let mut config = load_config(repo)?;
            // The fork pushes under its own id; the foundation is fetched by its base.
            config.remote = None;
            save_config(repo, &config)?;
            if *private {
                make_private(repo, readers)?;
            }
            Ok(())
        },
        &mut unused,
    )?;
    print(
        json,
        serde_json::json!({"forked": coordinate, "dir": dir, "id": id, "base": report.tip.map(|t| t.to_string()), "private": private}),
        || {
            format!(
                "forked {coordinate} at {} into {} as {id:?}{}; commits store tensors as deltas against it",
                report
                    .tip
                    .map(|t| t.short().to_string())
                    .unwrap_or_default(),
                dir.display(),
                if *private { " (private)" } else { "" }
            )
        },
    );
    Ok(())
}

/// A coordinate as a user may write it: `30717:<hex or npub>:<id>`.
pub(crate) fn parse_coordinate(text: &str) -> Result<RepoCoordinate> {
    let mut parts = text.splitn(3, ':');
    if let (Some(kind), Some(owner), Some(id)) = (parts.next(), parts.next(), parts.next())
        && owner.starts_with("npub1")
    {
        let key = agigit::event::nostr::prelude::PublicKey::parse(owner)
            .map_err(|e| Failure::invalid(format!("{owner:?}: {e}")))?;
        return Ok(format!("{kind}:{}:{id}", key.to_hex()).parse()?);
    }
    Ok(text.parse()?)
}

/// What a clone takes: which repository, from which relays, which branch (`None`: the remote's
/// default branch), which parts.
struct CloneFrom<'a> {
    coord: &'a RepoCoordinate,
    relays: &'a [String],
    /// Blob servers besides the relays' ports (from the announcement and the owner's BUD-03
    /// list), fetched from only.
    blob_servers: &'a [String],
    branch: Option<&'a str>,
    parts: Option<&'a [agigit::Part]>,
    /// Only one file or tensor (`clone --path`, `--tensor`).
    partial: Option<&'a agigit::PartialWant>,
}

/// Clones `from` into the new directory `dir` (pushing under `id`), on its branch, then runs
/// `after`; on any failure the directory is removed, so no half-made clone is left.
fn clone_into(
    from: &CloneFrom<'_>,
    dir: &Path,
    id: &str,
    json: bool,
    after: impl FnOnce(&Repository, &agigit::PullReport) -> Result<()>,
    partial_report: &mut Option<agigit::PartialReport>,
) -> Result<(Repository, agigit::PullReport)> {
    let CloneFrom {
        coord,
        relays,
        blob_servers,
        branch,
        parts,
        partial,
    } = *from;
    if let Some(branch) = branch {
        agigit::dag::RefName::branch(branch)
            .map_err(|e| Failure::invalid(format!("branch {branch:?}: {e}")))?;
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(Failure::invalid(format!(
            "{} exists and is not empty",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)?;
    let result = (|| -> Result<(Repository, agigit::PullReport)> {
        let repo = Repository::init_on_branch(dir, branch.unwrap_or(agigit::DEFAULT_BRANCH))?;
        // Each relay pinned to the key it names now (those that do not answer stay unpinned).
        let entries: Vec<RelayEntry> = relays
            .iter()
            .map(|u| {
                Ok(RelayEntry {
                    key: crate::remote::learn_key(u)?,
                    ..RelayEntry::new(u.trim_end_matches('/'))
                })
            })
            .collect::<Result<_>>()?;
        let config = RepoConfig {
            id: Some(id.to_owned()),
            remote: Some(coord.to_string()),
            relays: entries.clone(),
            blob_servers: blob_servers
                .iter()
                .map(|u| agigit::config::BlobServerEntry {
                    url: u.clone(),
                    fetch: true,
                    push: false,
                })
                .collect(),
            ..RepoConfig::default()
        };
        save_config(&repo, &config)?;
        let (signer, secret) = fetch_identity()?;
        let rt = runtime()?;
        let _entered = rt.enter();
        let net = network(&signer, &entries)?;
        add_blob_servers(&net, &config.blob_servers)?;
        let bar = Bar::new(json);
        let options = agigit::FetchOptions {
            secret: secret.as_ref(),
            progress: Some(&bar),
            parts,
            ..agigit::FetchOptions::default()
        };
        let remote = repo.remote(&net, &signer);
        let branch = match branch {
            Some(b) => b.to_owned(),
            None => {
                let refs = rt.block_on(remote.refs_with(coord, &options))?;
                let head = refs
                    .head
                    .unwrap_or_else(|| agigit::DEFAULT_BRANCH.to_owned());
                repo.set_unborn_branch(&head)?;
                head
            }
        };
        if let Some(want) = partial {
            let got = rt.block_on(remote.pull_path(coord, &branch, want, options))?;
            let report = agigit::PullReport {
                tip: got.tip,
                objects: got.objects,
                bytes: got.bytes,
                envelope: got.envelope.clone(),
                ..agigit::PullReport::default()
            };
            after(&repo, &report)?;
            *partial_report = Some(got);
            return Ok((repo, report));
        }
        let report = rt.block_on(remote.pull(coord, &branch, options))?;
        after(&repo, &report)?;
        Ok((repo, report))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}
