//! The Cashu side of orders: funding, claiming and refunding escrows, and the tokens kept
//! between them.

use super::*;

/// The escrows of a storage order funded at `since`: period `p` pays `price` to `server`,
/// refundable to the buyer from the period's end (`since + (p + 1) × period`).
pub(super) fn period_escrows(
    t: &agigit_market::StorageTerms,
    server: PublicKey,
    since: u64,
) -> Vec<Escrow> {
    (0..t.periods)
        .map(|p| Escrow {
            amount: t.price,
            payer: t.buyer,
            payee: server,
            arbiter: None,
            refund_at: since.saturating_add(t.period.saturating_mul(p + 1)),
        })
        .collect()
}

/// When a funded order's escrow returns to the buyer on the ledger's clock alone: the last
/// deadline a funded order can reach (delivery, confirmation, arbitration).
pub(super) fn refund_time(funded_at: u64, t: &agigit_market::PullTerms) -> u64 {
    funded_at
        .saturating_add(t.deliver_within)
        .saturating_add(t.confirm_within)
        .saturating_add(t.arbitrate_within)
}

pub(super) fn wallet(args: &OrderArgs) -> Result<CashuWallet> {
    crate::wallet::open(args.mint.as_deref())
}

/// The token this user kept when funding order `id`, or `missing` when there is none.
pub(super) fn kept_lock(id: EventId, missing: Failure) -> Result<CashuLock> {
    let kept = kept_token(id)?;
    let token = std::fs::read_to_string(&kept).map_err(|_| missing)?;
    Ok(CashuLock::from_token(token.trim()))
}

/// Period `p`'s escrow.
pub(super) fn period_escrow(escrows: &[Escrow], p: u64) -> Result<Escrow> {
    usize::try_from(p)
        .ok()
        .and_then(|i| escrows.get(i))
        .copied()
        .ok_or_else(|| {
            Failure::new(
                ErrorKind::Integrity,
                format!("the order has no period {}", p + 1),
            )
        })
}

/// `order fund` of a pull order: `owed` locked for the taker.
pub(super) fn fund_pull(
    json: bool,
    args: &OrderArgs,
    s: &Session,
    l: &Loaded<PullOrder>,
    now: u64,
) -> Result<()> {
    let me = s.me();
    let at = l.allowed(me, &agigit_market::Action::Fund, now)?;
    let relay = l
        .relay()
        .ok_or_else(|| Failure::invalid("nobody took this order yet"))?;
    let t = l.folded.order.terms();
    let escrow = Escrow {
        amount: l.folded.order.owed(),
        payer: me,
        payee: relay,
        arbiter: t.arbiter,
        refund_at: refund_time(at, t),
    };
    let w = wallet(args)?;
    let kept = unfunded(l.id())?;
    let lock = s.rt.block_on(w.lock(&escrow))?;
    let action = publish_fund(s, l.id(), &kept, &lock, at, escrow.refund_at)?;
    let l = s.load(l.id())?;
    print(
        json,
        reply(
            "fund",
            action,
            summary(&l),
            serde_json::json!({"locked": escrow.amount, "refund_at": escrow.refund_at}),
        ),
        || {
            format!(
                "locked {} sats for {}: theirs once you confirm, yours again from {} if not",
                escrow.amount,
                npub(&relay).unwrap_or_else(|_| relay.to_hex()),
                escrow.refund_at
            )
        },
    );
    Ok(())
}

/// `order fund` of a storage order: each period's price locked for the server on its own,
/// refundable from the period's end, all in one token.
pub(super) fn fund_storage(
    json: bool,
    args: &OrderArgs,
    s: &Session,
    l: &Loaded<StorageOrder>,
    now: u64,
) -> Result<()> {
    let me = s.me();
    let at = l.allowed(me, &StorageAction::Fund, now)?;
    let server = l
        .server()
        .ok_or_else(|| Failure::invalid("nobody took this order yet"))?;
    let escrows = period_escrows(l.folded.order.terms(), server, at);
    let total: u64 = escrows.iter().map(|e| e.amount).sum();
    let last = escrows.last().map_or(at, |e| e.refund_at);
    let w = wallet(args)?;
    let kept = unfunded(l.id())?;
    let lock = match s.rt.block_on(w.lock_schedule(&escrows)) {
        Ok(lock) => lock,
        Err(agigit_market_cashu::CashuError::Partly { token, message }) => {
            keep_token(&kept, &token)?;
            return Err(Failure::new(
                ErrorKind::Network,
                format!(
                    "{message}; the periods locked so far are kept in {} and come back with `agigit order refund {}` from each period's end",
                    kept.display(),
                    l.id()
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let action = publish_fund(s, l.id(), &kept, &lock, at, last)?;
    let l = s.load_storage(l.id())?;
    print(
        json,
        reply(
            "fund",
            action,
            storage_summary(&l),
            serde_json::json!({"locked": total, "periods": escrows.len()}),
        ),
        || {
            format!(
                "locked {total} sats for {}, one period's price at a time: each released by you once its audit passes, yours again from its period's end if not",
                npub(&server).unwrap_or_else(|_| server.to_hex())
            )
        },
    );
    Ok(())
}

/// Where the token for order `id` will be kept, refused when an earlier fund kept one.
pub(super) fn unfunded(id: EventId) -> Result<std::path::PathBuf> {
    let kept = kept_token(id)?;
    if kept.exists() {
        return Err(Failure::new(
            ErrorKind::WouldLoseWork,
            format!(
                "an earlier `order fund` locked escrow for this order ({}) that may not have reached the relays: see `agigit order show {id}`; `agigit order refund {id}` takes it back from its refund time",
                kept.display(),
            ),
        ));
    }
    Ok(kept)
}

/// Keeps `lock`'s token at `kept`, then publishes the fund action carrying it. The locked
/// token is the buyer's money until the payee claims it: kept on disk before it is published,
/// so that a failed publish loses nothing.
pub(super) fn publish_fund(
    s: &Session,
    id: EventId,
    kept: &std::path::Path,
    lock: &CashuLock,
    at: u64,
    refund_at: u64,
) -> Result<EventId> {
    keep_token(kept, lock.token())?;
    s.act(id, OrderVerb::Fund, Some(lock.token().to_owned()), Vec::new(), at)
        .map_err(|e| {
            Failure::new(
                e.kind,
                format!(
                    "{}; the escrow is locked in {} and comes back with `agigit order refund {id}` from {refund_at}",
                    e.message,
                    kept.display(),
                ),
            )
        })
}

/// `order claim` of a storage order: every period the fold gives the server, with the
/// buyer's release of it.
pub(super) fn claim_storage(
    json: bool,
    args: &OrderArgs,
    s: &Session,
    l: &Loaded<StorageOrder>,
) -> Result<()> {
    let me = s.me();
    if l.server() != Some(me) {
        return Err(not_yours(
            "only the server that took a storage order is paid by it",
        ));
    }
    let (lock, escrows) = l.funding()?;
    let releases = l.consents(l.buyer(), |v| matches!(v, OrderVerb::Confirm));
    let w = wallet(args)?;
    let mut claimed = Vec::new();
    let mut waiting = Vec::new();
    let mut got = 0u64;
    let parts = split(s, &w, &lock)?;
    for (p, escrow) in (0u64..).zip(&escrows) {
        if !l.earned(p) {
            continue;
        }
        let part = part_of(&parts, escrow)?;
        match s.rt.block_on(w.claim(part, &releases)) {
            Ok(amount) => {
                got += amount;
                claimed.push(p + 1);
            }
            // Claimed before: nothing twice.
            Err(agigit_market_cashu::CashuError::Spent) => {}
            Err(agigit_market_cashu::CashuError::Consents) => waiting.push(p + 1),
            Err(e) => return Err(e.into()),
        }
    }
    let balance = s.rt.block_on(w.balance())?;
    print(
        json,
        serde_json::json!({"id": l.id().to_hex(), "claimed": got, "periods": claimed, "unreleased": waiting, "balance": balance}),
        || {
            let mut text =
                format!("claimed {got} sats (periods {claimed:?}); the wallet holds {balance}");
            if !waiting.is_empty() {
                text.push_str(&format!(
                    "\n  periods {waiting:?} are yours but the buyer has not released them yet"
                ));
            }
            text
        },
    );
    Ok(())
}

/// A schedule token split into its escrows, once per command.
pub(super) fn split(
    s: &Session,
    w: &CashuWallet,
    lock: &CashuLock,
) -> Result<Vec<(u64, CashuLock)>> {
    Ok(s.rt.block_on(w.parts(lock))?)
}

/// The part of `parts` that is `escrow`'s (by its refund time).
pub(super) fn part_of<'p>(parts: &'p [(u64, CashuLock)], escrow: &Escrow) -> Result<&'p CashuLock> {
    parts
        .iter()
        .find(|(at, _)| *at == escrow.refund_at)
        .map(|(_, part)| part)
        .ok_or_else(|| {
            Failure::new(
                ErrorKind::Integrity,
                format!(
                    "the funding token holds no escrow refundable at {}: it is not the order's",
                    escrow.refund_at
                ),
            )
        })
}

/// `order refund` of a storage order: every period not the server's, each from its end.
pub(super) fn refund_storage(
    json: bool,
    args: &OrderArgs,
    s: &Session,
    l: &Loaded<StorageOrder>,
) -> Result<()> {
    let me = s.me();
    if l.buyer() != me {
        return Err(not_yours("only the buyer takes an order's escrow back"));
    }
    let w = wallet(args)?;
    let (lock, escrows) = match l.funding() {
        Ok(found) => found,
        Err(e) => {
            // Funded, but the fund action never reached the relays: every part of the kept
            // token is the buyer's, each from its own time.
            let lock = kept_lock(l.id(), e)?;
            let (mut got, mut later) = (0u64, Vec::new());
            for (_, part) in s.rt.block_on(w.parts(&lock))? {
                match s.rt.block_on(w.refund(&part)) {
                    Ok(amount) => got += amount,
                    Err(agigit_market_cashu::CashuError::NotYetRefundable { refund_at }) => {
                        later.push(refund_at);
                    }
                    Err(agigit_market_cashu::CashuError::Spent) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let balance = s.rt.block_on(w.balance())?;
            print(
                json,
                serde_json::json!({"id": l.id().to_hex(), "refunded": got, "balance": balance, "later": later}),
                || format!("took back {got} sats; the wallet holds {balance}; more from {later:?}"),
            );
            return Ok(());
        }
    };
    let closed = l.folded.order.is_closed();
    let current = match l.folded.order.phase() {
        StoragePhase::Running { period, .. } => Some(period),
        _ => None,
    };
    let settled = l.folded.order.settled().len() as u64;
    let (mut got, mut refunded, mut later) = (0u64, Vec::new(), Vec::new());
    let parts = split(s, &w, &lock)?;
    for (p, escrow) in (0u64..).zip(&escrows) {
        // The buyer's: settled against the server, or left when the order closed.
        let buyers = !l.earned(p) && (p < settled || closed) && current != Some(p);
        if !buyers {
            continue;
        }
        let part = part_of(&parts, escrow)?;
        match s.rt.block_on(w.refund(part)) {
            Ok(amount) => {
                got += amount;
                refunded.push(p + 1);
            }
            Err(agigit_market_cashu::CashuError::NotYetRefundable { refund_at }) => {
                later.push((p + 1, refund_at));
            }
            Err(agigit_market_cashu::CashuError::Spent) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let balance = s.rt.block_on(w.balance())?;
    print(
        json,
        serde_json::json!({
            "id": l.id().to_hex(), "refunded": got, "periods": refunded, "balance": balance,
            "later": later.iter().map(|(p, at)| serde_json::json!({"period": p, "at": at})).collect::<Vec<_>>(),
        }),
        || {
            let mut text =
                format!("took back {got} sats (periods {refunded:?}); the wallet holds {balance}");
            for (p, at) in &later {
                text.push_str(&format!("\n  period {p} comes back from {at}"));
            }
            text
        },
    );
    Ok(())
}

/// Where the buyer keeps the token it locked for order `id`: `<agigit home>/wallet/orders`.
pub(super) fn kept_token(id: EventId) -> Result<std::path::PathBuf> {
    crate::wallet::kept("orders", &id.to_hex())
}

/// Writes `token` to `path`, owner-only, synced before the fund action is published.
pub(super) fn keep_token(path: &std::path::Path, token: &str) -> Result<()> {
    crate::wallet::keep(path, token)
}

/// The consents the order's actions give toward `ruling`: the buyer's confirmation and the
/// arbiter's pay ruling for the relay; the arbiter's refund ruling for the buyer.
pub(super) fn release_consents(l: &Loaded<PullOrder>, ruling: Ruling) -> Vec<CashuConsent> {
    let mut out = Vec::new();
    if ruling == Ruling::Pay {
        out.extend(l.consents(l.buyer(), |v| matches!(v, OrderVerb::Confirm)));
    }
    if let Some(arbiter) = l.folded.order.terms().arbiter {
        let wanted = match ruling {
            Ruling::Pay => DefaultRule::Pay,
            Ruling::Refund => DefaultRule::Refund,
        };
        out.extend(l.consents(arbiter, |v| *v == OrderVerb::Rule(wanted)));
    }
    out
}
