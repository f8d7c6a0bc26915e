//! `agigit receipts`: the evaluation receipts (kind 1724) the relays hold for a repository, each
//! signature checked; `eval --publish` makes them.

use agigit::event::{EvalReceipt, RepoCoordinate, Signed};
use agigit::hash::ObjectId;

use crate::context::{Ctx, effective, fetch_identity, load_config, network, open, print, runtime};
use crate::failure::Result;

/// `agigit receipts`' arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ReceiptsArgs {
    /// The repository (`30717:<owner hex>:<id>`; default: this one's).
    pub(crate) repository: Option<String>,
    /// Only receipts for this commit (any revision of this repository).
    #[arg(long, value_name = "REV")]
    pub(crate) commit: Option<String>,
}

/// This repository's coordinate: the one it was cloned from, else the key's own under its id.
pub(crate) fn this_coordinate(config: &agigit::config::RepoConfig) -> Result<RepoCoordinate> {
    Ok(match &config.remote {
        Some(c) => c.parse::<RepoCoordinate>()?,
        None => {
            let keys = crate::context::keys()?;
            let id = config.id.clone().ok_or_else(|| {
                crate::failure::Failure::invalid(
                    "no remote and no repository id in .agigit/config.toml: `init --id <id>`, or name the repository",
                )
            })?;
            RepoCoordinate::new(keys.public_key(), agigit::event::RepoId::new(id)?)
        }
    })
}

pub(crate) fn receipts(ctx: &Ctx, args: &ReceiptsArgs) -> Result<()> {
    let repo = open(ctx)?;
    let config = load_config(&repo)?;
    let coordinate = match &args.repository {
        Some(c) => crate::setup::parse_coordinate(c)?,
        None => this_coordinate(&config)?,
    };
    let commit = args
        .commit
        .as_deref()
        .map(|rev| repo.resolve(rev))
        .transpose()?;
    let found = fetch(&repo, &config, &coordinate, commit.as_ref())?;
    let list: Vec<serde_json::Value> = found.receipts.iter().map(receipt_json).collect();
    print(
        ctx.json,
        serde_json::json!({"repository": coordinate.to_string(), "receipts": list, "ignored": found.ignored}),
        || {
            let mut out = format!("{} receipts for {coordinate}", found.receipts.len());
            for s in &found.receipts {
                out.push_str(&format!(
                    "\n  {}  {}",
                    s.body().commit.short(),
                    receipt_line(s)
                ));
            }
            if found.ignored > 0 {
                out.push_str(&format!(
                    "\n  ({} events dropped: bad signature, malformed or another repository)",
                    found.ignored
                ));
            }
            out
        },
    );
    Ok(())
}

/// The receipts the repository's relays hold for `coordinate` (for `commit` only, when given),
/// each signature checked.
pub(crate) fn fetch(
    repo: &agigit::Repository,
    config: &agigit::config::RepoConfig,
    coordinate: &RepoCoordinate,
    commit: Option<&ObjectId>,
) -> Result<agigit::Receipts> {
    let (signer, _) = fetch_identity()?;
    let (relays, _) = effective(config)?;
    let rt = runtime()?;
    let _entered = rt.enter();
    let net = network(&signer, &relays)?;
    Ok(rt.block_on(repo.remote(&net, &signer).receipts(coordinate, commit))?)
}

/// A receipt as `--json` lists it.
pub(crate) fn receipt_json(s: &Signed<EvalReceipt>) -> serde_json::Value {
    let r = s.body();
    serde_json::json!({
        "evaluator": s.author().to_hex(),
        "event": s.id().to_hex(),
        "created_at": s.created_at().as_secs(),
        "commit": r.commit.to_string(),
        "data": r.data.to_string(),
        "metric": r.metric,
        "value": r.value,
        "bytes": r.bytes,
        "tokens": r.tokens,
        "documents": r.documents,
        "context": r.context,
        "losses": agigit::hash::BlobHash::from(r.losses).to_string(),
        "model": r.model,
        "software": r.software,
        "note": r.note,
    })
}

/// A receipt in a line: value, metric, data, evaluator, documents, software.
pub(crate) fn receipt_line(s: &Signed<EvalReceipt>) -> String {
    let r = s.body();
    format!(
        "{:.4} {} on data {}  by {}  ({} documents, context {}, {})",
        r.value,
        r.metric,
        r.data.short(),
        s.author().to_hex().get(..16).unwrap_or_default(),
        r.documents,
        r.context,
        r.software,
    )
}
