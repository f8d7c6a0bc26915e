//! `agigit push`, and how its durability report reads.

use super::*;

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

/// One pack's durability, for `--json`.
pub(super) fn pack_json(p: &agigit::PackDurability) -> serde_json::Value {
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
pub(super) fn durability_text(report: &agigit::PushReport) -> String {
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
pub(super) fn odds(probability: f64, failure: f64) -> String {
    if failure > 0.0 && failure < 1e-3 {
        format!("1 - {failure:.1e}")
    } else {
        format!("{probability:.4}")
    }
}
