//! `agigit announce` and `agigit search`: where a repository is stored, told to and found on
//! relays.

use super::*;

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
pub(super) fn publish_announcement(
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
pub(super) const INFO_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `relays` split into those whose NIP-11 document lists NIP-50 (search) and the others (a
/// relay that does not answer in [`INFO_WAIT`] is among the others).
pub(super) fn split_by_nip50(
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
pub(super) const SEARCH_EVENTS: usize = 2000;

/// `agigit search`: the repositories the relays announce, filtered by words, newest update
/// first — owner, id, name, description, topics, foundation and last update.
/// A repository found by [`find_announced`]: its newest valid announcement and when its
/// state last moved (else when it was announced).
pub(crate) struct Found {
    pub(crate) coordinate: String,
    pub(crate) announcement: agigit::event::Signed<agigit::event::RepoAnnouncement>,
    pub(crate) updated: u64,
}

/// The repositories announced on `relays` whose id, name, description or topics hold every one
/// of `words` (lowercase), newest update first, at most `limit`: what `agigit search` prints
/// and `agigit serve` lists.
pub(crate) fn find_announced(
    rt: &tokio::runtime::Runtime,
    relays: &[RelayEntry],
    words: &[String],
    limit: usize,
) -> Result<Vec<Found>> {
    use agigit::event::kinds::{REPO_ANNOUNCEMENT, REPO_STATE, kind};
    use agigit::event::nostr::prelude::Filter;
    use agigit::event::{RepoAnnouncement, Signed};
    let _entered = rt.enter();
    // Relays that say they implement NIP-50 are asked to search; the others send their newest
    // announcements. The words are checked here on what comes back either way: a relay's
    // search narrows what travels, it decides nothing.
    let (searching, listing) = if words.is_empty() {
        (Vec::new(), relays.to_vec())
    } else {
        split_by_nip50(rt, relays)?
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
    let pool = lookup_pool(relays)?;
    // The announcement that counts of each repository.
    let newest = agigit::event::newest_announcements(events);
    let matches = |a: &RepoAnnouncement| {
        let mut text = vec![a.repo.as_str().to_lowercase()];
        text.extend(a.name.iter().map(|n| n.to_lowercase()));
        text.extend(a.description.iter().map(|d| d.to_lowercase()));
        text.extend(a.topics.iter().cloned());
        words
            .iter()
            .all(|w| text.iter().any(|t| t.contains(w.as_str())))
    };
    let found: Vec<Signed<RepoAnnouncement>> =
        newest.into_iter().filter(|a| matches(a.body())).collect();
    // Their last updates: the newest state of each.
    let mut updated: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    if !found.is_empty() {
        let filters: Vec<Filter> = found
            .iter()
            .take(limit.max(1))
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
    let mut rows: Vec<Found> = found
        .into_iter()
        .map(|a| {
            let coordinate = a.body().coordinate(a.author()).to_string();
            let updated = updated
                .get(&coordinate)
                .copied()
                .unwrap_or(a.created_at().as_secs());
            Found {
                coordinate,
                announcement: a,
                updated,
            }
        })
        .collect();
    rows.sort_by(|x, y| {
        y.updated
            .cmp(&x.updated)
            .then_with(|| x.coordinate.cmp(&y.coordinate))
    });
    rows.truncate(limit.max(1));
    Ok(rows)
}

pub(crate) fn search(ctx: &Ctx, args: &SearchArgs) -> Result<()> {
    let relays = crate::context::given_or_user_relays(&args.relays)?;
    if relays.is_empty() {
        return Err(Failure::invalid(
            "no relay to search: give --relay, or list relays in ~/.config/agigit/config.toml ([[relay]] url = \"wss://…\")",
        ));
    }
    let rt = runtime()?;
    let words: Vec<String> = args.words.iter().map(|w| w.to_lowercase()).collect();
    let rows = find_announced(&rt, &relays, &words, args.limit)?;
    let json_rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|f| {
            let (a, b) = (&f.announcement, f.announcement.body());
            serde_json::json!({"repository": f.coordinate, "owner": a.author().to_hex(), "id": b.repo.as_str(), "name": b.name, "description": b.description, "license": b.license, "visibility": b.visibility.as_str(), "topics": b.topics, "fork_of": b.fork_of.as_ref().map(|f| f.repo.to_string()), "size": b.size, "updated": f.updated})
        })
        .collect();
    print(ctx.json, serde_json::json!(json_rows), || {
        if rows.is_empty() {
            return "no repository found".to_owned();
        }
        rows.iter()
            .map(|f| {
                let b = f.announcement.body();
                let mut line = f.coordinate.clone();
                if let Some(n) = &b.name {
                    line.push_str(&format!("  {n}"));
                }
                if let Some(d) = &b.description {
                    line.push_str(&format!(" — {d}"));
                }
                if !b.topics.is_empty() {
                    line.push_str(&format!(" [{}]", b.topics.join(", ")));
                }
                if let Some(fork) = &b.fork_of {
                    line.push_str(&format!(" (fork of {})", fork.repo));
                }
                if let Some(size) = b.size {
                    line.push_str(&format!(", {}", crate::view::human_bytes(size)));
                }
                line.push_str(&format!(
                    ", updated {}",
                    crate::history::utc_date(i64::try_from(f.updated).unwrap_or(i64::MAX))
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
