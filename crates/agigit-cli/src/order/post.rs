//! Posting orders, and the copies a storage order's server checks and proves.

use super::*;

/// The copy of `shard` at `store`, checked against its hash as it downloads (at most its
/// size); a failure says `why` it mattered.
pub(super) fn copy(
    s: &Session,
    store: &str,
    shard: &StoredShard,
    why: &str,
) -> Result<impl std::ops::Deref<Target = [u8]> + use<>> {
    s.rt.block_on(s.net.blobs.download(store, &shard.blob, shard.size))
        .map_err(|e| {
            Failure::new(
                ErrorKind::Network,
                format!("{store} cannot give {} ({e}), {why}", shard.blob),
            )
        })
}

/// Downloads every blob `shards` names from `store` (each checked against its hash by the
/// download, one in memory at a time) and checks its length and audit root. Returns the bytes
/// checked.
pub(super) fn check_copies(s: &Session, store: &str, shards: &[StoredShard]) -> Result<u64> {
    let mut bytes = 0u64;
    for shard in shards {
        let got = copy(
            s,
            store,
            shard,
            "as the order names it; take only what you hold",
        )?;
        if got.len() as u64 != shard.size || agigit_market::audit::root(&got) != shard.root {
            return Err(Failure::new(
                ErrorKind::Integrity,
                format!(
                    "{} is not the size or audit root the order gives: the buyer's order is wrong; do not take it",
                    shard.blob
                ),
            ));
        }
        bytes += shard.size;
    }
    Ok(bytes)
}

/// The openings of period `period`'s challenge `nonce`, from the copies at `store`: each
/// challenged shard downloaded once (checked against its hash and audit root), its leaves
/// proved.
pub(super) fn open_leaves(
    s: &Session,
    store: &str,
    order: &StorageOrder,
    nonce: &[u8; 32],
    period: u64,
) -> Result<Vec<Opening>> {
    order
        .terms()
        .answer(nonce, period, |shard| {
            copy(s, store, shard, "which the audit challenges: cannot answer")
        })
        .map_err(|e| match e {
            agigit_market::AnswerError::Read(failure) => failure,
            other => Failure::new(ErrorKind::Integrity, other.to_string()),
        })
}

/// Signs the order `body` at `now` and publishes it — once the fold accepts its terms (ones
/// the order can run to an end with): nothing the fold refuses is sent.
pub(super) fn post_order<O: Order>(
    s: &Session,
    body: O::Event,
    now: u64,
) -> Result<(Loaded<O>, usize)> {
    let event = Signed::sign(body, &s.keys, Timestamp::from_secs(now))
        .map_err(|e| Failure::invalid(e.to_string()))?
        .into_event();
    let folded = agigit_market::fold_order::<O>(&event, [], Some(now))
        .map_err(|e| Failure::invalid(e.to_string()))?;
    let accepted = s.publish(&event)?;
    Ok((
        Loaded {
            order: event,
            actions: Vec::new(),
            folded,
        },
        accepted,
    ))
}

pub(super) fn post(json: bool, args: &OrderArgs, p: &PullArgs) -> Result<()> {
    let s = Session::new(args)?;
    let now = unix_now();
    let repo: RepoCoordinate = p.repo.parse().map_err(|e| {
        Failure::invalid(format!("{:?} is not a repository coordinate: {e}", p.repo))
    })?;
    let model: ObjectId = p
        .model
        .parse()
        .map_err(|e| Failure::invalid(format!("{:?} is not a commit id: {e}", p.model)))?;
    let relays = p
        .takers
        .iter()
        .map(|t| key_arg(t))
        .collect::<Result<Vec<_>>>()?;
    let body = PullOrderEvent {
        repo,
        model,
        relays,
        price: p.price,
        tip: p.tip,
        bond: 0,
        arbiter: p.arbiter.as_deref().map(key_arg).transpose()?,
        take_by: now.saturating_add(p.take_within),
        fund_within: p.fund_within,
        deliver_within: p.deliver_within,
        confirm_within: p.confirm_within,
        arbitrate_within: p.arbitrate_within,
        default_rule: match p.default {
            RuleArg::Pay => DefaultRule::Pay,
            RuleArg::Refund => DefaultRule::Refund,
        },
        note: p.note.clone(),
    };
    let (l, accepted) = post_order::<PullOrder>(&s, body, now)?;
    let event = &l.order;
    let mut value = summary(&l);
    value["accepted"] = serde_json::json!(accepted);
    print(json, value, || {
        format!(
            "posted order {} to {accepted} relays: waiting for a listed relay to take it",
            event.id
        )
    });
    Ok(())
}

pub(super) fn post_storage(ctx: &Ctx, args: &OrderArgs, p: &StorageArgs) -> Result<()> {
    let store = store_url(&p.store);
    let (repo, blobs) = crate::remote::stored_blobs(ctx, &store)?;
    if blobs.is_empty() {
        return Err(Failure::invalid(format!(
            "{store} holds nothing of {repo}'s pushed packs: push first, or name the server that holds them"
        )));
    }
    if blobs.len() > MAX_ORDER_SHARDS {
        return Err(Failure::invalid(format!(
            "{store} holds {} blobs of {repo}; one order names at most {MAX_ORDER_SHARDS}",
            blobs.len()
        )));
    }
    let s = Session::new(args)?;
    let now = unix_now();
    let servers = p
        .servers
        .iter()
        .map(|t| key_arg(t))
        .collect::<Result<Vec<_>>>()?;
    let body = StorageOrderEvent {
        repo,
        shards: blobs
            .iter()
            .map(|b| StoredShard {
                blob: b.hash,
                size: b.len,
                root: b.root,
            })
            .collect(),
        servers,
        price: p.price,
        periods: p.periods,
        period: p.period,
        bond: 0,
        take_by: now.saturating_add(p.take_within),
        fund_within: p.fund_within,
        answer_within: p.answer_within,
        challenges: p.challenges,
        // On Cashu a period's payment moves only with the buyer's release: one nobody
        // audited goes back to the buyer.
        unaudited: DefaultRule::Refund,
        note: p.note.clone(),
    };
    let (l, accepted) = post_order::<StorageOrder>(&s, body, now)?;
    let event = &l.order;
    let mut value = storage_summary(&l);
    value["accepted"] = serde_json::json!(accepted);
    print(ctx.json, value, || {
        format!(
            "posted storage order {} for {} blobs at {store} to {accepted} relays: waiting for a listed server to take it",
            event.id,
            blobs.len()
        )
    });
    Ok(())
}
