//! Relays and transfers: `relay`, `push`, `pull`, `fetch`.

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
    /// Add a relay by its key (npub… or hex: its URL is found through the relays already
    /// known) or by its wss:// (or ws://) URL (its key is recorded), both roles unless one is
    /// given. The relay is pinned to its key: a server at that URL with another key is refused.
    Add {
        /// npub…, 64 hex digits, or wss://host[:port] (ws:// on this machine)
        relay: String,
        /// Fetch from it only.
        #[arg(long)]
        fetch: bool,
        /// Push to it only.
        #[arg(long)]
        push: bool,
    },
    /// Remove a relay (or one of its roles), named by its key or URL.
    Remove {
        /// npub…, 64 hex digits, or wss://host[:port] (ws:// on this machine)
        relay: String,
        /// Remove only the fetch role.
        #[arg(long)]
        fetch: bool,
        /// Remove only the push role.
        #[arg(long)]
        push: bool,
    },
    /// List relays: URL, key and roles.
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
    /// Only this file of the remote branch: fetch the segments that hold it (and the trees
    /// above it) and write it; no branch moves.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["tensor", "parts"])]
    pub(crate) path: Option<String>,
    /// Only this tensor (FILE:NAME) of a safetensors file of the remote branch: written into
    /// the file when it is here with the same layout, else as a file of that tensor alone.
    #[arg(long, value_name = "FILE:NAME", conflicts_with = "parts")]
    pub(crate) tensor: Option<String>,
}

/// A durability target and the availability odds are computed for (push, fsck, repair).
#[derive(Debug, clap::Args)]
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

/// `agigit push`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct PushArgs {
    #[command(flatten)]
    pub(crate) durability: DurabilityArgs,
    /// Publish even when the shards stored fall short of the target (servers down or
    /// refusing): the report says what the push got.
    #[arg(long)]
    pub(crate) accept_weaker: bool,
}

/// `agigit fsck`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct FsckArgs {
    /// Audit the remote: which shards each server still holds of every pack reachable from
    /// the remote's refs, and the margin left (objects in the local store are verified on
    /// every read).
    #[arg(long, required = true)]
    pub(crate) remote: bool,
    #[command(flatten)]
    pub(crate) durability: DurabilityArgs,
}

/// `agigit gc`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct GcArgs {
    /// Collect on the push servers: delete your blobs there that no repository of yours
    /// references any more (local objects are kept).
    #[arg(long, required = true)]
    pub(crate) remote: bool,
    /// Say what would be deleted, and delete nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Keep blobs uploaded more recently than this (a push in flight uploads its shards before
    /// naming them): seconds, or with a unit: 30m, 12h, 7d (default 7d).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub(crate) grace: Option<std::time::Duration>,
}

/// `90`, `30m`, `12h`, `7d`.
fn parse_age(text: &str) -> std::result::Result<std::time::Duration, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: give a number, optionally followed by s, m, h or d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    n.checked_mul(scale)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// `agigit repair`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct RepairArgs {
    #[command(flatten)]
    pub(crate) durability: DurabilityArgs,
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

/// How a relay is named on the command line.
enum RelayName {
    Url(String),
    Key(PublicKey),
}

impl RelayName {
    fn parse(text: &str) -> Result<Self> {
        if text.contains("://") {
            agigit::net::pool::check_relay_url(text)?;
            if agigit::net::tls::plaintext_off_machine(text) {
                eprintln!(
                    "warning: {text} has no TLS: what goes to it can be read and changed on the way (events stay signed and blobs hashed); use wss:// where the relay offers it"
                );
            }
            return Ok(RelayName::Url(text.trim_end_matches('/').to_owned()));
        }
        PublicKey::parse(text.trim())
            .map(RelayName::Key)
            .map_err(|_| {
                Failure::invalid(format!(
                    "{text:?} is neither a relay URL (wss://host[:port], or ws:// on this machine) nor a relay's key (npub… or 64 hex digits)"
                ))
            })
    }

    fn matches(&self, entry: &RelayEntry) -> bool {
        match self {
            RelayName::Url(u) => entry.url.trim_end_matches('/') == u,
            RelayName::Key(k) => entry.key.as_deref() == Some(k.to_hex().as_str()),
        }
    }
}

/// Roles from `--fetch`/`--push`: both when neither is given.
fn roles(fetch: bool, push: bool) -> (bool, bool) {
    if fetch || push {
        (fetch, push)
    } else {
        (true, true)
    }
}

pub(crate) fn relay(ctx: &Ctx, args: &RelayArgs) -> Result<()> {
    let json = ctx.json;
    let RelayArgs { action } = args;
    let repo = open(ctx)?;
    let mut config = load_config(&repo)?;
    match action {
        RelayAction::Add { relay, fetch, push } => {
            let name = RelayName::parse(relay)?;
            let (fetch, push) = roles(*fetch, *push);
            let added = if let Some(r) = config.relays.iter_mut().find(|r| name.matches(r)) {
                r.fetch |= fetch;
                r.push |= push;
                r.clone()
            } else {
                let (url, key) = match name {
                    RelayName::Url(url) => {
                        let key = learn_key(&url)?;
                        (url, key)
                    }
                    RelayName::Key(key) => (locate(&config, &key)?, Some(key.to_hex())),
                };
                let entry = RelayEntry {
                    url,
                    key,
                    fetch,
                    push,
                };
                config.relays.push(entry.clone());
                entry
            };
            save_config(&repo, &config)?;
            print(json, relay_json(&added), || {
                let mut out = format!("added {}", relay_line(&added));
                if added.key.is_none() {
                    out.push_str(
                        "\n(it did not name a key: not pinned; add it again when it answers to pin it)",
                    );
                }
                out
            });
        }
        RelayAction::Remove { relay, fetch, push } => {
            let name = RelayName::parse(relay)?;
            let (fetch, push) = roles(*fetch, *push);
            let Some(r) = config.relays.iter_mut().find(|r| name.matches(r)) else {
                return Err(Failure::invalid(format!(
                    "no relay {relay}: see `agigit relay list`"
                )));
            };
            r.fetch &= !fetch;
            r.push &= !push;
            let left = r.clone();
            config.relays.retain(|r| r.fetch || r.push);
            save_config(&repo, &config)?;
            print(json, relay_json(&left), || {
                if left.fetch || left.push {
                    format!("now {}", relay_line(&left))
                } else {
                    format!("removed {}", left.url)
                }
            });
        }
        RelayAction::List => {
            let list: Vec<_> = config.relays.iter().map(relay_json).collect();
            print(json, serde_json::Value::Array(list), || {
                config
                    .relays
                    .iter()
                    .map(relay_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

fn relay_json(r: &RelayEntry) -> serde_json::Value {
    let npub = r
        .key
        .as_deref()
        .and_then(|k| PublicKey::from_hex(k).ok())
        .and_then(|k| npub(&k).ok());
    serde_json::json!({"url": r.url, "key": r.key, "npub": npub, "fetch": r.fetch, "push": r.push})
}

fn relay_line(r: &RelayEntry) -> String {
    let roles = match (r.fetch, r.push) {
        (true, true) => "fetch, push",
        (true, false) => "fetch",
        (false, true) => "push",
        (false, false) => "no roles",
    };
    let key = r
        .key
        .as_deref()
        .and_then(|k| PublicKey::from_hex(k).ok())
        .and_then(|k| npub(&k).ok())
        .unwrap_or_else(|| "(key unknown)".to_owned());
    format!("{}  {key}  ({roles})", r.url)
}

/// The key the relay at `url` names in its NIP-11 document, if it answers with one.
/// The key relay `url` names in its NIP-11 document: `None` when it does not answer (it is
/// added unpinned); an error when it answers with a TLS certificate that does not check out.
pub(crate) fn learn_key(url: &str) -> Result<Option<String>> {
    let rt = runtime()?;
    let tls = crate::context::tls_config()?;
    match rt.block_on(agigit::net::info::fetch_relay_info_with(
        url,
        KEY_TIMEOUT,
        &tls,
    )) {
        Ok(info) => Ok(info.key().map(|k| k.to_hex())),
        Err(e @ agigit::net::NetError::Tls { .. }) => Err(e.into()),
        Err(_) => Ok(None),
    }
}

/// How long a relay has to say which key it holds.
const KEY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The URL of the relay with key `key`, found through the relays this repository (or the
/// user-level configuration) already knows.
fn locate(config: &agigit::config::RepoConfig, key: &PublicKey) -> Result<String> {
    let user = load_user_config()?;
    let mut known: Vec<RelayEntry> = config.relays.clone();
    for r in user.relays {
        if !known.iter().any(|k| k.url == r.url) {
            known.push(r);
        }
    }
    if known.is_empty() {
        return Err(Failure::invalid(
            "no relay is known to look the key up on: add one by its URL first (`agigit relay add ws://host:port`)",
        ));
    }
    let rt = runtime()?;
    let _entered = rt.enter();
    let pool = lookup_pool(&known)?;
    Ok(rt.block_on(pool.locate_relay(key))?)
}

/// A pool for looking things up on `known` relays (each pinned to its recorded key), which
/// answers NIP-42 challenges with a throw-away key.
fn lookup_pool(known: &[RelayEntry]) -> Result<RelayPool> {
    let reader = agigit::event::nostr::prelude::Keys::generate();
    let pool = RelayPool::new(
        PoolOptions {
            tls: crate::context::tls_config()?,
            ..PoolOptions::default()
        },
        Some(Arc::new(reader)),
    );
    for r in known {
        let pin = r.key.as_deref().and_then(|k| PublicKey::from_hex(k).ok());
        pool.add_pinned_relay(&r.url, Roles::FETCH, pin)?;
    }
    Ok(pool)
}

/// Where a repository lives, found without being told: its relays, and the blob servers
/// besides the relays' own ports.
pub(crate) struct Discovered {
    pub(crate) relays: Vec<String>,
    pub(crate) blob_servers: Vec<String>,
}

/// Where repository `coord` lives, asked of the user's bootstrap relays (the user-level
/// `[[relay]]` list): relays in this order — those its newest announcement (kind 30717) lists,
/// the owner's NIP-65 relay list (kind 10002), then the bootstrap relays themselves — and blob
/// servers from the announcement's `blossom` list and the owner's BUD-03 list (kind 10063),
/// less the relays' own ports. Every event is verified and must be the owner's.
pub(crate) fn discover_relays(coord: &RepoCoordinate) -> Result<Discovered> {
    use agigit::event::nostr::prelude::{Filter, Kind};
    let bootstrap = load_user_config()?.relays;
    if bootstrap.is_empty() {
        return Err(Failure::invalid(
            "no relay to look the repository up on: give --relay, or list bootstrap relays in ~/.config/agigit/config.toml ([[relay]] url = \"wss://…\")",
        ));
    }
    let rt = runtime()?;
    let _entered = rt.enter();
    let pool = lookup_pool(&bootstrap)?;
    let owner = coord.owner;
    let server_list = Kind::from(10063u16);
    let filters = [
        Filter::new()
            .kind(agigit::event::kinds::kind(
                agigit::event::kinds::REPO_ANNOUNCEMENT,
            ))
            .author(owner)
            .identifier(coord.id.as_str()),
        Filter::new().kind(Kind::RelayList).author(owner).limit(4),
        Filter::new().kind(server_list).author(owner).limit(4),
    ];
    let events = rt.block_on(pool.query(&filters))?;
    let mut found: Vec<String> = Vec::new();
    let mut servers: Vec<String> = Vec::new();
    let mut add = |url: &str| {
        let url = url.trim_end_matches('/').to_owned();
        if agigit::net::pool::check_relay_url(&url).is_ok() && !found.contains(&url) {
            found.push(url);
        }
    };
    // The newest announcement its owner signed, and the newest lists.
    if let Some(announcement) = agigit::event::newest_announcement(coord, events.clone()) {
        for r in &announcement.body().relays {
            add(r.as_str());
        }
        servers.extend(
            announcement
                .body()
                .blob_servers
                .iter()
                .map(|u| u.as_str().trim_end_matches('/').to_owned())
                .filter(|u| agigit::net::info::is_blob_server_url(u)),
        );
    }
    let newest = |kind: Kind| {
        events
            .iter()
            .filter(|e| e.kind == kind && e.pubkey == owner)
            .max_by_key(|e| e.created_at)
    };
    if let Some(list) = newest(Kind::RelayList) {
        for url in agigit::net::info::listed_relays(list, &owner) {
            add(&url);
        }
    }
    for r in &bootstrap {
        add(&r.url);
    }
    if let Some(list) = newest(server_list) {
        servers.extend(agigit::net::info::listed_blob_servers(list, &owner));
    }
    // A relay's own port serves its blobs already.
    let ports: Vec<String> = found
        .iter()
        .map(|r| {
            agigit::net::info::http_url(r)
                .trim_end_matches('/')
                .to_owned()
        })
        .collect();
    let mut blob_servers: Vec<String> = Vec::new();
    for s in servers {
        if !ports.contains(&s) && !blob_servers.contains(&s) {
            blob_servers.push(s);
        }
    }
    blob_servers.truncate(agigit::net::info::MAX_LISTED_URLS);
    Ok(Discovered {
        relays: found,
        blob_servers,
    })
}

pub(crate) fn push(ctx: &Ctx, args: &PushArgs) -> Result<()> {
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
    let servers = relays.iter().filter(|r| r.push).count();
    let (durability, availability) = args.durability.resolve(&push, servers)?;
    let private = repo.private_keys(&reader_secret(&keys)?)?;
    let bar = Bar::new(json);
    let options = PushOptions {
        segment_size: push.segment_size,
        min_accepted: push.min_accepted,
        durability,
        accept_weaker: args.accept_weaker,
        availability,
        keys: private.as_ref(),
        progress: Some(&bar),
        ..PushOptions::new(&code)
    };
    let rt = runtime()?;
    let _entered = rt.enter();
    let net = network(&keys, &relays)?;
    add_blob_servers(&net, &config.blob_servers)?;
    // A clone pushes to the repository it was cloned from: its owner's, or — for a maintainer
    // the owner's announcement lists — the owner's too (the relays refuse no one; readers count
    // only the owner's and maintainers' events). Otherwise the repository is the key's own.
    let coordinate = match &config.remote {
        Some(c) => c.parse::<RepoCoordinate>()?,
        None => RepoCoordinate::new(keys.public_key(), id.clone()),
    };
    let mine = RepoCoordinate::new(keys.public_key(), id.clone());
    let remote = repo.remote(&net, &keys);
    let (coordinate, report, declined) =
        match rt.block_on(remote.push_to(&coordinate, &branch, options)) {
            // Not a maintainer of the repository it was cloned from (refused before anything was
            // published): the key's own copy, as a clone of someone else's repository always
            // pushed — said in the output.
            Err(agigit::push::Error::NotAWriter(_)) if coordinate != mine => {
                let report = rt.block_on(remote.push_to(&mine, &branch, options))?;
                (mine, report, Some(coordinate))
            }
            other => (coordinate, other?, None),
        };
    let owner = coordinate.owner == keys.public_key();
    // The announcement goes with every push by the owner (it is replaceable: the newest
    // stands), so that the repository can be found and read without being told its relays. A
    // maintainer's key cannot sign the owner's announcement.
    let announced = owner.then(|| {
        publish_announcement(
            &repo,
            &config,
            &coordinate.id,
            &relays,
            &net,
            &keys,
            &rt,
            &push,
        )
    });
    let coordinate = coordinate.to_string();
    let packs: Vec<_> = report.packs.iter().map(pack_json).collect();
    print(
        json,
        serde_json::json!({"pushed": branch, "repository": coordinate, "announced": match &announced { None => serde_json::Value::Null, Some(Ok(_)) => serde_json::Value::Bool(true), Some(Err(e)) => serde_json::Value::String(e.message.clone()) }, "maintainer": !owner, "not_a_maintainer_of": declined.as_ref().map(ToString::to_string), "objects": report.objects, "shards": report.shards, "rerouted": report.rerouted, "resumed": report.resumed, "pack_bytes": report.pack_bytes, "private": report.private, "up_to_date": report.up_to_date, "bytes_per_server": report.bytes_per_server, "survive_target": report.durability.map(|d| d.servers_lost()), "packs": packs, "tags": report.tags, "tags_rejected": report.tags_rejected}),
        || {
            let mut tags = String::new();
            if !report.tags.is_empty() {
                tags.push_str(&format!("\n  tags published: {}", report.tags.join(", ")));
            }
            if !report.tags_rejected.is_empty() {
                tags.push_str(&format!(
                    "\n  tags the relays have elsewhere, left as they are: {}",
                    report.tags_rejected.join(", ")
                ));
            }
            if let Some(other) = &declined {
                tags.push_str(&format!(
                    "\n  your key is not a maintainer of {other}, which this clone comes from: this is your own copy (ask its owner to list your npub with `agigit announce --maintainer`)"
                ));
            }
            if let Some(Err(e)) = &announced {
                tags.push_str(&format!(
                    "\n  the announcement was not published ({}): run `agigit announce`",
                    e.message
                ));
            }
            if report.up_to_date {
                format!("everything up to date ({coordinate}){tags}")
            } else {
                let mut out = format!(
                    "pushed {branch} to {coordinate}{}: {} objects, {} bytes in {} shards{}",
                    if owner { "" } else { " as a maintainer" },
                    report.objects,
                    report.pack_bytes,
                    report.shards,
                    if report.private { ", encrypted" } else { "" }
                );
                if report.resumed > 0 {
                    out.push_str(&format!(
                        "\n  resumed: {} shards were on their servers already and were not sent again",
                        report.resumed
                    ));
                }
                if report.rerouted > 0 {
                    out.push_str(&format!(
                        "\n  {} shards went to other servers because theirs failed",
                        report.rerouted
                    ));
                }
                out.push_str(&durability_text(&report));
                for (s, b) in &report.bytes_per_server {
                    out.push_str(&format!("\n  {s}: {b} bytes sent"));
                }
                out.push_str(&tags);
                out
            }
        },
    );
    Ok(())
}

/// The relays (`ws://`/`wss://`) readers find the repository on, and the Blossom servers:
/// those on the relays' ports, then the configured others (`[[blob_server]]`) read from.
pub(crate) fn announced_places(
    relays: &[RelayEntry],
    others: &[agigit::config::BlobServerEntry],
) -> (Vec<String>, Vec<String>) {
    let urls: Vec<String> = relays
        .iter()
        .filter(|r| r.fetch)
        .map(|r| r.url.trim_end_matches('/').to_owned())
        .collect();
    let servers = urls
        .iter()
        .map(|u| agigit::net::info::http_url(u))
        .chain(
            others
                .iter()
                .filter(|s| s.fetch)
                .map(|s| s.url.trim_end_matches('/').to_owned()),
        )
        .collect();
    (urls, servers)
}

/// Builds this repository's announcement from its configuration and publishes it.
#[allow(clippy::too_many_arguments, reason = "the pieces push already holds")]
fn publish_announcement(
    repo: &agigit::Repository,
    config: &agigit::config::RepoConfig,
    id: &RepoId,
    relays: &[RelayEntry],
    net: &agigit::net::Network,
    keys: &agigit::event::nostr::prelude::Keys,
    rt: &tokio::runtime::Runtime,
    push: &agigit::config::PushConfig,
) -> Result<agigit::net::PublishReport> {
    let (urls, servers) = announced_places(relays, &config.blob_servers);
    let settings = config.announce.clone().unwrap_or_default();
    let announcement = repo.announcement(id, &settings, &urls, &servers)?;
    Ok(rt.block_on(
        repo.remote(net, keys)
            .announce(&announcement, push.min_accepted),
    )?)
}

/// `agigit announce`: sets what the announcement says, then publishes it.
pub(crate) fn announce(ctx: &Ctx, args: &AnnounceArgs) -> Result<()> {
    let json = ctx.json;
    let repo = open(ctx)?;
    let mut config = load_config(&repo)?;
    let keys = keys()?;
    let id = config
        .id
        .clone()
        .ok_or_else(|| Failure::invalid("no repository id: set `id` in .agigit/config.toml"))?;
    let id = RepoId::new(id)?;
    let mut settings = config.announce.clone().unwrap_or_default();
    let set = |slot: &mut Option<String>, value: &Option<String>| {
        if let Some(v) = value {
            *slot = (!v.is_empty()).then(|| v.clone());
        }
    };
    set(&mut settings.name, &args.name);
    set(&mut settings.description, &args.description);
    set(&mut settings.license, &args.license);
    // A list given replaces the old one; `--maintainer ''` (or `--topic ''`) empties it.
    let replace = |slot: &mut Vec<String>, given: &[String]| {
        if !given.is_empty() {
            *slot = given.iter().filter(|v| !v.is_empty()).cloned().collect();
        }
    };
    replace(&mut settings.maintainers, &args.maintainers);
    replace(&mut settings.topics, &args.topics);
    // Checked (keys, topics) before anything is saved.
    let (relays, push) = effective(&config)?;
    let (urls, servers) = announced_places(&relays, &config.blob_servers);
    let announcement = repo.announcement(&id, &settings, &urls, &servers)?;
    config.announce = Some(settings);
    save_config(&repo, &config)?;
    let rt = runtime()?;
    let _entered = rt.enter();
    let net = network(&keys, &relays)?;
    let published = rt.block_on(
        repo.remote(&net, &keys)
            .announce(&announcement, push.min_accepted),
    )?;
    let coordinate = RepoCoordinate::new(keys.public_key(), id).to_string();
    print(
        json,
        serde_json::json!({"announced": coordinate, "accepted": published.accepted(), "name": announcement.name, "description": announcement.description, "license": announcement.license, "visibility": announcement.visibility.as_str(), "maintainers": announcement.maintainers.iter().map(|k| k.to_hex()).collect::<Vec<_>>(), "topics": announcement.topics, "relays": urls, "blob_servers": servers}),
        || {
            format!(
                "announced {coordinate} ({}) on {} relays",
                announcement.visibility.as_str(),
                published.accepted()
            )
        },
    );
    Ok(())
}

/// `agigit search`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct SearchArgs {
    /// Words that must all appear in a repository's id, name, description or topics
    /// (case-insensitive); none lists every repository found.
    pub(crate) words: Vec<String>,
    /// A relay to search (repeat for several; default: your user-level relays).
    #[arg(long = "relay")]
    pub(crate) relays: Vec<String>,
    /// The most repositories shown.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
}

/// How long a search waits for a relay's NIP-11 document.
const INFO_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `relays` split into those whose NIP-11 document lists NIP-50 (search) and the others (a
/// relay that does not answer in [`INFO_WAIT`] is among the others).
fn split_by_nip50(
    rt: &tokio::runtime::Runtime,
    relays: &[RelayEntry],
) -> Result<(Vec<RelayEntry>, Vec<RelayEntry>)> {
    let tls = crate::context::tls_config()?;
    let supports = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (i, r) in relays.iter().enumerate() {
            let (url, tls) = (r.url.clone(), tls.clone());
            set.spawn(async move {
                let info = agigit::net::info::fetch_relay_info_with(&url, INFO_WAIT, &tls).await;
                (i, info.is_ok_and(|i| i.supports(50)))
            });
        }
        let mut supports = vec![false; relays.len()];
        while let Some(Ok((i, yes))) = set.join_next().await {
            supports[i] = yes;
        }
        supports
    });
    let (mut searching, mut listing) = (Vec::new(), Vec::new());
    for (r, yes) in relays.iter().zip(supports) {
        if yes { &mut searching } else { &mut listing }.push(r.clone());
    }
    Ok((searching, listing))
}

/// The most announcements one search reads from the relays.
const SEARCH_EVENTS: usize = 2000;

/// `agigit search`: the repositories the relays announce, filtered by words, newest update
/// first — owner, id, name, description, topics, foundation and last update.
pub(crate) fn search(ctx: &Ctx, args: &SearchArgs) -> Result<()> {
    use agigit::event::kinds::{REPO_ANNOUNCEMENT, REPO_STATE, kind};
    use agigit::event::nostr::prelude::Filter;
    use agigit::event::{RepoAnnouncement, Signed};
    let relays: Vec<RelayEntry> = if args.relays.is_empty() {
        load_user_config()?.relays
    } else {
        args.relays
            .iter()
            .map(|u| RelayEntry::new(u.trim_end_matches('/')))
            .collect()
    };
    if relays.is_empty() {
        return Err(Failure::invalid(
            "no relay to search: give --relay, or list relays in ~/.config/agigit/config.toml ([[relay]] url = \"wss://…\")",
        ));
    }
    let rt = runtime()?;
    let _entered = rt.enter();
    // Relays that say they implement NIP-50 are asked to search; the others send their newest
    // announcements. The words are checked here on what comes back either way: a relay's
    // search narrows what travels, it decides nothing.
    let words: Vec<String> = args.words.iter().map(|w| w.to_lowercase()).collect();
    let (searching, listing) = if words.is_empty() {
        (Vec::new(), relays.clone())
    } else {
        split_by_nip50(&rt, &relays)?
    };
    let filter = Filter::new()
        .kind(kind(REPO_ANNOUNCEMENT))
        .limit(SEARCH_EVENTS);
    let mut events = Vec::new();
    for (group, filter) in [
        (&searching, filter.clone().search(words.join(" "))),
        (&listing, filter),
    ] {
        if !group.is_empty() {
            events.extend(rt.block_on(lookup_pool(group)?.query(&[filter]))?);
        }
    }
    let pool = lookup_pool(&relays)?;
    // The newest valid announcement of each repository.
    let mut newest: std::collections::BTreeMap<String, Signed<RepoAnnouncement>> =
        std::collections::BTreeMap::new();
    for e in events {
        let Ok(a) = Signed::<RepoAnnouncement>::from_event(e) else {
            continue;
        };
        let key = a.body().coordinate(a.author()).to_string();
        if newest
            .get(&key)
            .is_none_or(|b| b.created_at() < a.created_at())
        {
            newest.insert(key, a);
        }
    }
    let matches = |a: &RepoAnnouncement| {
        let mut text = vec![a.repo.as_str().to_lowercase()];
        text.extend(a.name.iter().map(|n| n.to_lowercase()));
        text.extend(a.description.iter().map(|d| d.to_lowercase()));
        text.extend(a.topics.iter().cloned());
        words
            .iter()
            .all(|w| text.iter().any(|t| t.contains(w.as_str())))
    };
    let found: Vec<&Signed<RepoAnnouncement>> =
        newest.values().filter(|a| matches(a.body())).collect();
    // Their last updates: the newest state of each.
    let mut updated: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    if !found.is_empty() {
        let filters: Vec<Filter> = found
            .iter()
            .take(args.limit.max(1))
            .map(|a| {
                Filter::new()
                    .kind(kind(REPO_STATE))
                    .author(a.author())
                    .identifier(a.body().repo.as_str())
                    .limit(1)
            })
            .collect();
        let states = rt.block_on(pool.query(&filters)).unwrap_or_default();
        for s in states {
            if let Ok(state) = Signed::<agigit::event::RepoState>::from_event(s) {
                let key =
                    RepoCoordinate::new(state.author(), state.body().repo.clone()).to_string();
                let at = state.created_at().as_secs();
                let slot = updated.entry(key).or_default();
                *slot = (*slot).max(at);
            }
        }
    }
    let mut rows: Vec<(u64, &Signed<RepoAnnouncement>, String)> = found
        .into_iter()
        .map(|a| {
            let key = a.body().coordinate(a.author()).to_string();
            let at = updated
                .get(&key)
                .copied()
                .unwrap_or(a.created_at().as_secs());
            (at, a, key)
        })
        .collect();
    rows.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.2.cmp(&y.2)));
    rows.truncate(args.limit.max(1));
    let json_rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|(at, a, key)| {
            let b = a.body();
            serde_json::json!({"repository": key, "owner": a.author().to_hex(), "id": b.repo.as_str(), "name": b.name, "description": b.description, "license": b.license, "visibility": b.visibility.as_str(), "topics": b.topics, "fork_of": b.fork_of.as_ref().map(|f| f.repo.to_string()), "size": b.size, "updated": at})
        })
        .collect();
    print(ctx.json, serde_json::json!(json_rows), || {
        if rows.is_empty() {
            return "no repository found".to_owned();
        }
        rows.iter()
            .map(|(at, a, key)| {
                let b = a.body();
                let mut line = key.clone();
                if let Some(n) = &b.name {
                    line.push_str(&format!("  {n}"));
                }
                if let Some(d) = &b.description {
                    line.push_str(&format!(" — {d}"));
                }
                if !b.topics.is_empty() {
                    line.push_str(&format!(" [{}]", b.topics.join(", ")));
                }
                if let Some(f) = &b.fork_of {
                    line.push_str(&format!(" (fork of {})", f.repo));
                }
                if let Some(size) = b.size {
                    line.push_str(&format!(", {}", crate::view::human_bytes(size)));
                }
                line.push_str(&format!(
                    ", updated {}",
                    crate::history::utc_date(i64::try_from(*at).unwrap_or(i64::MAX))
                ));
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// `agigit announce`'s arguments: each given field replaces the configured one (an empty
/// value clears it); the lists replace theirs when given.
#[derive(Debug, clap::Args)]
pub(crate) struct AnnounceArgs {
    /// A human-readable name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// A description.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// An SPDX licence expression (MIT, Apache-2.0, …).
    #[arg(long)]
    pub(crate) license: Option<String>,
    /// A key besides yours that may push to its branches (npub… or hex; repeat for several;
    /// the list replaces the old one, and `--maintainer ''` removes them all).
    #[arg(long = "maintainer", value_name = "KEY")]
    pub(crate) maintainers: Vec<String>,
    /// A topic (lowercase: llm, vision, …; repeat for several; the list replaces the old one,
    /// and `--topic ''` removes them all).
    #[arg(long = "topic", value_name = "TOPIC")]
    pub(crate) topics: Vec<String>,
}

/// One pack's durability, for `--json`.
fn pack_json(p: &agigit::PackDurability) -> serde_json::Value {
    let servers: Vec<_> = p
        .servers
        .iter()
        .map(
            |s| serde_json::json!({"server": s.server, "shards": s.shards, "manifest": s.manifest}),
        )
        .collect();
    serde_json::json!({
        "manifest": p.manifest.to_string(), "part": p.part.as_deref().unwrap_or("commits"),
        "k": p.code.0, "n": p.code.1, "segments": p.segments, "servers": servers,
        "survives": p.survives, "servers_needed": p.servers_needed,
        "rebuild_probability": p.rebuild.probability, "rebuild_failure": p.rebuild.failure,
        "odds_exact": p.rebuild.exact, "availability": p.availability,
    })
}

/// What the packs of a push guarantee, one line each, then the shards per server.
fn durability_text(report: &agigit::PushReport) -> String {
    let mut out = String::new();
    let Some(first) = report.packs.first() else {
        return out;
    };
    let servers = first.servers.len();
    if let Some(target) = report.durability {
        let weakest = report.packs.iter().map(|p| p.survives).min().unwrap_or(0);
        out.push_str(&format!(
            "\n  durability: any {} of {servers} servers rebuild every pack ({weakest} may be lost; target {}{})",
            servers.saturating_sub(weakest).max(1),
            target.servers_lost(),
            if weakest < target.servers_lost() {
                ", NOT MET: accepted with --accept-weaker"
            } else {
                ""
            }
        ));
    }
    out.push_str("\n  pack       segments  k/n    any m   P(rebuild)");
    for p in &report.packs {
        out.push_str(&format!(
            "\n  {:<10} {:>8}  {:<5}  {:>2}/{:<3}  {}{} at p = {}",
            p.part.as_deref().unwrap_or("commits"),
            p.segments,
            format!("{}/{}", p.code.0, p.code.1),
            p.servers_needed,
            servers,
            odds(p.rebuild.probability, p.rebuild.failure),
            if p.rebuild.exact { "" } else { " (bound)" },
            p.availability
        ));
    }
    for (i, s) in first.servers.iter().enumerate() {
        let shards: Vec<String> = report
            .packs
            .iter()
            .map(|p| {
                let h = &p.servers[i];
                format!(
                    "{}{}",
                    h.shards,
                    if h.manifest { "" } else { " (no manifest)" }
                )
            })
            .collect();
        out.push_str(&format!(
            "\n  {}: shards per pack {}",
            s.server,
            shards.join(", ")
        ));
    }
    out
}

/// A probability near 1 as `1 − 2.3e-7`, others as decimals.
fn odds(probability: f64, failure: f64) -> String {
    if failure > 0.0 && failure < 1e-3 {
        format!("1 - {failure:.1e}")
    } else {
        format!("{probability:.4}")
    }
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

fn fetch_json(report: &agigit::PullReport) -> serde_json::Value {
    serde_json::json!({"tip": report.tip.map(|t| t.to_string()), "packs": report.packs, "objects": report.objects, "forced_from": report.forced_from.map(|t| t.to_string()), "state_forked": report.state_forked, "tags": report.tags, "bytes": report.bytes, "resumed_segments": report.resumed_segments})
}

/// The state events a fetch left out, for `--json`.
fn ignored_json(ignored: &[agigit::event::Ignored]) -> serde_json::Value {
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
fn ignored_text(ignored: &[agigit::event::Ignored]) -> String {
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
fn fetch_text(tracking: &str, report: &agigit::PullReport) -> String {
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

fn print_fetch(json: bool, branch: &str, report: &agigit::PullReport) {
    let mut value = fetch_json(report);
    value["ignored_states"] = ignored_json(&report.ignored_states);
    print(json, value, || {
        fetch_text(&format!("origin/{branch}"), report)
    });
}

/// `agigit fsck --remote`: what each server still holds, per pack, and the margin left.
pub(crate) fn fsck(ctx: &Ctx, args: &FsckArgs) -> Result<()> {
    let session = Session::open(ctx, &PartsArg { parts: Vec::new() }, false)?;
    let options = session.audit_options(&args.durability)?;
    let report = session.rt.block_on(session.repo.audit(
        &session.net,
        &session.coordinate,
        options,
    ))?;
    print(ctx.json, audit_json(&report), || {
        format!("{}\n{}", session.coordinate, audit_text(&report))
    });
    unhealthy(&report, "run `agigit repair` to restore it")
}

/// `agigit repair`: rebuilds the shards missing from every segment below its target.
pub(crate) fn repair(ctx: &Ctx, args: &RepairArgs) -> Result<()> {
    let session = Session::open(ctx, &PartsArg { parts: Vec::new() }, false)?;
    let options = session.audit_options(&args.durability)?;
    let report = session.rt.block_on(session.repo.repair(
        &session.net,
        &session.coordinate,
        options,
    ))?;
    let mut value = audit_json(&report.after);
    value["repaired"] = serde_json::json!({
        "segments": report.segments_repaired, "shards_uploaded": report.shards_uploaded,
        "manifests_uploaded": report.manifests_uploaded, "bytes_up": report.bytes_up,
        "bytes_down": report.bytes_down, "errors": report.errors,
        "before": audit_json(&report.before),
    });
    print(ctx.json, value, || {
        let mut out = if report.shards_uploaded + report.manifests_uploaded == 0 {
            "nothing to repair".to_owned()
        } else {
            format!(
                "repaired {} segments: {} shards and {} manifests uploaded ({} bytes), {} bytes downloaded to rebuild them",
                report.segments_repaired,
                report.shards_uploaded,
                report.manifests_uploaded,
                report.bytes_up,
                report.bytes_down
            )
        };
        for e in &report.errors {
            out.push_str(&format!("\n  failed: {e}"));
        }
        out.push('\n');
        out.push_str(&audit_text(&report.after));
        out
    });
    unhealthy(
        &report.after,
        "add servers (`agigit relay add`), bring the missing ones back, and repair again",
    )
}

impl Session {
    fn audit_options(&self, args: &DurabilityArgs) -> Result<agigit::AuditOptions<'_>> {
        let config = load_config(&self.repo)?;
        let (relays, push) = effective(&config)?;
        let servers = relays.iter().filter(|r| r.push).count();
        let (durability, availability) = args.resolve(&push, servers)?;
        Ok(agigit::AuditOptions {
            fetch: agigit::FetchOptions {
                secret: self.secret.as_ref(),
                ..agigit::FetchOptions::default()
            },
            durability,
            availability,
        })
    }
}

/// A failure naming the packs below their target (after the report was printed), or `Ok`.
fn unhealthy(report: &agigit::AuditReport, what_to_do: &str) -> Result<()> {
    let short: Vec<String> = report
        .packs
        .iter()
        .filter(|p| !p.meets_target())
        .map(|p| p.part.clone().unwrap_or_else(|| "commits".to_owned()))
        .collect();
    if short.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        agigit::ErrorKind::Network,
        format!(
            "{} of {} packs are below their target ({}): {what_to_do}",
            short.len(),
            report.packs.len(),
            short.join(", ")
        ),
    ))
}

fn audit_json(report: &agigit::AuditReport) -> serde_json::Value {
    let packs: Vec<_> = report
        .packs
        .iter()
        .map(|p| {
            let servers: Vec<_> = p
                .servers
                .iter()
                .map(|s| serde_json::json!({"server": s.server, "shards": s.shards, "manifest": s.manifest}))
                .collect();
            serde_json::json!({
                "manifest": p.manifest.to_string(), "part": p.part.as_deref().unwrap_or("commits"),
                "k": p.code.0, "n": p.code.1, "segments": p.segments, "servers": servers,
                "survives": p.survives, "target": p.target.servers_lost(),
                "meets_target": p.meets_target(), "lost_segments": p.lost_segments,
                "below_target": p.below_target, "rebuild_probability": p.rebuild.probability,
                "rebuild_failure": p.rebuild.failure, "odds_exact": p.rebuild.exact,
            })
        })
        .collect();
    serde_json::json!({
        "servers": report.servers, "unreachable": report.unreachable,
        "healthy": report.is_healthy(), "packs": packs,
    })
}

fn audit_text(report: &agigit::AuditReport) -> String {
    let mut out = String::new();
    for (i, s) in report.servers.iter().enumerate() {
        let down = if report.unreachable.contains(s) {
            "  (did not answer: counted as holding nothing)"
        } else {
            ""
        };
        out.push_str(&format!("  [{i}] {s}{down}\n"));
    }
    let columns: Vec<String> = (0..report.servers.len())
        .map(|i| format!("[{i}]"))
        .collect();
    out.push_str(&format!(
        "  pack        segments  k/n    survives  target  lost  P(rebuild)        shards on {}",
        columns.join(" ")
    ));
    for p in &report.packs {
        let shards: Vec<String> = p
            .servers
            .iter()
            .map(|s| format!("{}{}", s.shards, if s.manifest { "" } else { "*" }))
            .collect();
        out.push_str(&format!(
            "\n  {:<10} {:>9}  {:<5}  {:>8}  {:>6}  {:>4}  {:<16}  {}{}",
            p.part.as_deref().unwrap_or("commits"),
            p.segments,
            format!("{}/{}", p.code.0, p.code.1),
            p.survives.map_or("LOST".to_owned(), |s| s.to_string()),
            p.target.servers_lost(),
            p.lost_segments.len(),
            odds(p.rebuild.probability, p.rebuild.failure),
            shards.join(" "),
            if p.meets_target() {
                ""
            } else {
                "  BELOW TARGET"
            }
        ));
    }
    out.push_str("\n  (* no copy of the pack manifest on that server)");
    out
}

/// `agigit gc --remote`: deletes the user's blobs on the push servers that none of their
/// repositories references.
pub(crate) fn gc(ctx: &Ctx, args: &GcArgs) -> Result<()> {
    let repo = open(ctx)?;
    let config = load_config(&repo)?;
    let keys = keys()?;
    let secret = reader_secret(&keys)?;
    let (relays, _) = effective(&config)?;
    let rt = runtime()?;
    let _entered = rt.enter();
    let net = network(&keys, &relays)?;
    let options = agigit::GcOptions {
        fetch: agigit::FetchOptions {
            secret: Some(&secret),
            ..agigit::FetchOptions::default()
        },
        grace: args.grace.unwrap_or(agigit::config::defaults::GC_GRACE),
        dry_run: args.dry_run,
    };
    let report = rt.block_on(repo.gc_remote(&net, &keys.public_key(), options))?;
    let servers: Vec<_> = report
        .servers
        .iter()
        .map(|s| serde_json::json!({"server": s.server, "listed": s.listed, "referenced": s.referenced, "young": s.young, "deleted": s.deleted, "bytes": s.bytes, "errors": s.errors}))
        .collect();
    print(
        ctx.json,
        serde_json::json!({"dry_run": args.dry_run, "repositories": report.repositories, "referenced": report.referenced, "servers": servers}),
        || {
            let verb = if args.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            let mut out = format!(
                "{} repositories of yours reference {} blobs",
                report.repositories.len(),
                report.referenced
            );
            for s in &report.servers {
                out.push_str(&format!(
                    "\n  {}: {verb} {} blobs ({} bytes); kept {} referenced, {} within the grace period",
                    s.server, s.deleted, s.bytes, s.referenced, s.young
                ));
                for e in &s.errors {
                    out.push_str(&format!("\n    failed: {e}"));
                }
            }
            out
        },
    );
    Ok(())
}

/// A blob a server holds of this repository, with its audit root (`docs/market.md`).
pub(crate) struct StoredBlob {
    pub(crate) hash: agigit::hash::BlobHash,
    pub(crate) len: u64,
    pub(crate) root: [u8; 32],
}

/// What `store` (a blob server: `http(s)://…`, or a relay's `ws(s)://…`) holds of the packs
/// reachable from this repository's published refs — each pack's manifest and its shards —
/// every one downloaded from `store`, checked against its hash, and its audit root computed:
/// what a storage order asks the server to keep. One blob in memory at a time.
pub(crate) fn stored_blobs(ctx: &Ctx, store: &str) -> Result<(RepoCoordinate, Vec<StoredBlob>)> {
    let session = Session::open(ctx, &PartsArg { parts: Vec::new() }, false)?;
    let options = agigit::AuditOptions {
        fetch: agigit::FetchOptions {
            secret: session.secret.as_ref(),
            ..agigit::FetchOptions::default()
        },
        ..agigit::AuditOptions::default()
    };
    let held = session.rt.block_on(session.repo.held_by(
        &session.net,
        &session.coordinate,
        store,
        options,
    ))?;
    let mut out = Vec::with_capacity(held.len());
    for blob in held {
        let bytes = session
            .rt
            .block_on(session.net.blobs.download(store, &blob.hash, blob.len))
            .map_err(|e| {
                Failure::new(
                    agigit::ErrorKind::Network,
                    format!("{store} says it holds {} but gave: {e}", blob.hash),
                )
            })?;
        out.push(StoredBlob {
            hash: blob.hash,
            len: bytes.len() as u64,
            root: agigit_market::audit::root(&bytes),
        });
    }
    Ok((session.coordinate.clone(), out))
}
