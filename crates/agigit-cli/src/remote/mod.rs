//! Relays and transfers: `relay`, `push`, `pull`, `fetch`, `announce`, `search`, `fsck`, `repair`
//! and `gc`, a file per group; the arguments and the session they share are here.

use std::sync::Arc;

use agigit::config::RelayEntry;
use agigit::event::nostr::prelude::PublicKey;
use agigit::event::{RepoCoordinate, RepoId};
use agigit::net::{PoolOptions, RelayPool, Roles};
use agigit::shard::Durability;
use agigit::{PartialReport, PartialWant, PushOptions};
use clap::Subcommand;

use crate::context::{
    Bar, Ctx, add_blob_servers, current_branch, effective, fetch_identity, keys, load_config,
    load_user_config, network, npub, open, print, reader_secret, runtime, save_config,
};
use crate::failure::{Failure, Result};

mod discovery;
mod fetch;
mod health;
mod push;
mod relays;

pub(crate) use self::discovery::*;
pub(crate) use self::fetch::*;
pub(crate) use self::health::*;
pub(crate) use self::push::*;
pub(crate) use self::relays::*;

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

/// A durability target and the availability odds are computed for (push, fsck, repair).
#[derive(Debug, Default, clap::Args)]
pub(crate) struct DurabilityArgs {
    /// Push servers that may be lost, whichever they are, with every pack still rebuildable
    /// from the others (default: `[push] survive`, else the most the code gives).
    #[arg(long, value_name = "F", conflicts_with = "any")]
    pub(crate) survive: Option<usize>,
    /// Any M of the push servers rebuild every pack (the same target as --survive S−M).
    #[arg(long, value_name = "M")]
    pub(crate) any: Option<usize>,
    /// The probability that each server is up, for the rebuild odds reported (default:
    /// `[push] availability`, else 0.9).
    #[arg(long, value_name = "P")]
    pub(crate) availability: Option<f64>,
}

impl DurabilityArgs {
    /// The target (`None`: the code's most) and the availability, from the flags, else the
    /// configuration, over `servers` push servers.
    fn resolve(
        &self,
        push: &agigit::config::PushConfig,
        servers: usize,
    ) -> Result<(Option<Durability>, f64)> {
        let durability = match (self.survive.or(push.survive), self.any) {
            (_, Some(m)) => Some(Durability::any_of(m, servers).map_err(|_| {
                Failure::invalid(format!(
                    "--any {m}: there are {servers} push servers; give 1 to {servers}"
                ))
            })?),
            (Some(f), None) => Some(Durability::survive(f)),
            (None, None) => None,
        };
        let availability = self
            .availability
            .or(push.availability)
            .unwrap_or(agigit::config::defaults::AVAILABILITY);
        if !(0.0..=1.0).contains(&availability) {
            return Err(Failure::invalid(format!(
                "availability {availability}: give a probability from 0 to 1"
            )));
        }
        Ok((durability, availability))
    }
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
    /// Remote branches go under refs/remotes/<remote_name>/.
    remote_name: &'static str,
}

/// The repository a configuration fetches from and pushes to: its remote, else its id under
/// the user's key.
pub(crate) fn coordinate_of(config: &agigit::config::RepoConfig) -> Result<RepoCoordinate> {
    match &config.remote {
        Some(c) => Ok(c.parse::<RepoCoordinate>()?),
        None => {
            let keys = keys()?;
            let id = config.id.clone().ok_or_else(|| {
                Failure::invalid("no remote and no repository id in .agigit/config.toml")
            })?;
            Ok(RepoCoordinate::new(keys.public_key(), RepoId::new(id)?))
        }
    }
}

/// Brings every branch the remote of the repository in `dir` publishes up to date there
/// (fast-forwards, as `pull` does each; a copy `agigit serve` fetched holds no work of the
/// user's). Returns how many branches there are.
pub(crate) fn pull_every_branch(dir: &std::path::Path) -> Result<usize> {
    let ctx = Ctx {
        dir: Some(dir.to_owned()),
        json: true,
    };
    let session = Session::open(&ctx, &PartsArg { parts: Vec::new() }, false)?;
    let remote = session.repo.remote(&session.net, &session.signer);
    let options = session.options();
    let refs = session
        .rt
        .block_on(remote.refs_with(&session.coordinate, &options))?;
    for branch in refs.branches.keys() {
        session
            .rt
            .block_on(remote.pull(&session.coordinate, branch, options))?;
    }
    Ok(refs.branches.len())
}

impl Session {
    fn open(ctx: &Ctx, parts: &PartsArg, force: bool) -> Result<Self> {
        let parts = parts.parse()?;
        let repo = open(ctx)?;
        let config = load_config(&repo)?;
        let coordinate = coordinate_of(&config)?;
        let (signer, secret) = fetch_identity()?;
        let (relays, _) = effective(&config)?;
        let rt = runtime()?;
        let net = {
            let _entered = rt.enter();
            network(&signer, &relays)?
        };
        add_blob_servers(&net, &config.blob_servers)?;
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
            remote_name: "origin",
        })
    }

    fn options(&self) -> agigit::FetchOptions<'_> {
        agigit::FetchOptions {
            secret: self.secret.as_ref(),
            progress: Some(&self.bar),
            parts: self.parts.as_deref(),
            force: self.force,
            remote_name: self.remote_name,
            ..agigit::FetchOptions::default()
        }
    }
}
