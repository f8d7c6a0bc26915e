//! `agigit fsck`, `agigit repair` and `agigit gc`: the pushed packs' health on the servers.

use super::*;

impl Session {
    pub(super) fn audit_options(&self, args: &DurabilityArgs) -> Result<agigit::AuditOptions<'_>> {
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
pub(super) fn parse_age(text: &str) -> std::result::Result<std::time::Duration, String> {
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

/// The audit `agigit fsck --remote` makes, of the repository in `dir`, with the durability
/// target its configuration sets: what `agigit serve`'s availability page shows.
pub(crate) fn audit_at(dir: &std::path::Path) -> Result<agigit::AuditReport> {
    let ctx = Ctx {
        dir: Some(dir.to_owned()),
        json: true,
    };
    let session = Session::open(&ctx, &PartsArg { parts: Vec::new() }, false)?;
    let options = session.audit_options(&DurabilityArgs::default())?;
    Ok(session.rt.block_on(
        session
            .repo
            .audit(&session.net, &session.coordinate, options),
    )?)
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

/// A failure naming the packs below their target (after the report was printed), or `Ok`.
pub(super) fn unhealthy(report: &agigit::AuditReport, what_to_do: &str) -> Result<()> {
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

pub(super) fn audit_json(report: &agigit::AuditReport) -> serde_json::Value {
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

pub(super) fn audit_text(report: &agigit::AuditReport) -> String {
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
