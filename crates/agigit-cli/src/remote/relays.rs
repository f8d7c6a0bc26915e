//! `agigit relay`: the repository's relays, and learning a relay's key and the relays a
//! repository announces.

use super::*;

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

/// How a relay is named on the command line.
pub(super) enum RelayName {
    Url(String),
    Key(PublicKey),
}

impl RelayName {
    pub(super) fn parse(text: &str) -> Result<Self> {
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

    pub(super) fn matches(&self, entry: &RelayEntry) -> bool {
        match self {
            RelayName::Url(u) => entry.url.trim_end_matches('/') == u,
            RelayName::Key(k) => entry.key.as_deref() == Some(k.to_hex().as_str()),
        }
    }
}

/// Roles from `--fetch`/`--push`: both when neither is given.
pub(super) fn roles(fetch: bool, push: bool) -> (bool, bool) {
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

pub(super) fn relay_json(r: &RelayEntry) -> serde_json::Value {
    let npub = r
        .key
        .as_deref()
        .and_then(|k| PublicKey::from_hex(k).ok())
        .and_then(|k| npub(&k).ok());
    serde_json::json!({"url": r.url, "key": r.key, "npub": npub, "fetch": r.fetch, "push": r.push})
}

pub(super) fn relay_line(r: &RelayEntry) -> String {
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
pub(super) const KEY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The URL of the relay with key `key`, found through the relays this repository (or the
/// user-level configuration) already knows.
pub(super) fn locate(config: &agigit::config::RepoConfig, key: &PublicKey) -> Result<String> {
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
pub(super) fn lookup_pool(known: &[RelayEntry]) -> Result<RelayPool> {
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
    discover_relays_on(coord, &load_user_config()?.relays)
}

/// As [`discover_relays`], asking `bootstrap` (`agigit serve` asks the relays it lists
/// announcements from: the user's and every served repository's).
pub(crate) fn discover_relays_on(
    coord: &RepoCoordinate,
    bootstrap: &[RelayEntry],
) -> Result<Discovered> {
    use agigit::event::nostr::prelude::{Filter, Kind};
    if bootstrap.is_empty() {
        return Err(Failure::invalid(
            "no relay to look the repository up on: give --relay, or list bootstrap relays in ~/.config/agigit/config.toml ([[relay]] url = \"wss://…\")",
        ));
    }
    let rt = runtime()?;
    let _entered = rt.enter();
    let pool = lookup_pool(bootstrap)?;
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
    for r in bootstrap {
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
