//! One function per `agigit order` command (after `pull` and `storage`, which post).

use super::*;

pub(super) fn show(a: &Act<'_>, id: &str) -> Result<()> {
    let (s, json) = (&a.s, a.json);
    let l = s.load_any(id_arg(id)?)?;
    print(json, any_summary(&l), || any_summary_text(&l));
    Ok(())
}

pub(super) fn list(a: &Act<'_>) -> Result<()> {
    let (s, me, json) = (&a.s, a.me, a.json);
    let kinds = [kind(PULL_ORDER), kind(STORAGE_ORDER)];
    // Orders this key posted, and those naming it (as a relay or server), in one query.
    let mut orders = s.query_many(&[
        Filter::new().kinds(kinds).author(me).limit(500),
        Filter::new().kinds(kinds).pubkey(me).limit(500),
    ])?;
    orders.sort_by_key(|e| e.id);
    orders.dedup_by_key(|e| e.id);
    let loaded = s.load_many(orders)?;
    print(
        json,
        serde_json::json!({"orders": loaded.iter().map(any_summary).collect::<Vec<_>>()}),
        || {
            if loaded.is_empty() {
                "no orders".to_owned()
            } else {
                loaded
                    .iter()
                    .map(any_summary_text)
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        },
    );
    Ok(())
}

pub(super) fn take(a: &Act<'_>, id: &str, store: Option<&str>) -> Result<()> {
    let (s, me, now, json) = (&a.s, a.me, a.now, a.json);
    match s.load_any(id_arg(id)?)? {
        AnyOrder::Pull(l) => {
            let at = l.allowed(me, &agigit_market::Action::Take, now)?;
            if l.folded.order.terms().bond > 0 {
                return Err(Failure::invalid(
                    "this order asks a bond; bonds on Cashu are not supported by the command line yet",
                ));
            }
            let action = s.act(l.id(), OrderVerb::Take, None, Vec::new(), at)?;
            let l = s.load(l.id())?;
            print(
                json,
                reply("take", action, summary(&l), serde_json::json!({})),
                || format!("took order {}: wait for the buyer to fund it", l.id()),
            );
        }
        AnyOrder::Storage(l) => {
            let at = l.allowed(me, &StorageAction::Take, now)?;
            if l.folded.order.terms().bond > 0 {
                return Err(Failure::invalid(
                    "this order asks a bond; bonds on Cashu are not supported by the command line yet",
                ));
            }
            let store = store.ok_or_else(|| {
            Failure::invalid(
                "a storage order is taken only with your copies checked: give --store <your blob server or relay URL>",
            )
        })?;
            let store = store_url(store);
            let shards = &l.folded.order.terms().shards;
            let checked = check_copies(s, &store, shards)?;
            let action = s.act(l.id(), OrderVerb::Take, None, Vec::new(), at)?;
            let l = s.load_storage(l.id())?;
            print(
                json,
                reply(
                    "take",
                    action,
                    storage_summary(&l),
                    serde_json::json!({"checked_bytes": checked}),
                ),
                || {
                    format!(
                        "checked {} blobs ({checked} bytes) at {store} against the order's hashes and roots; took order {}: wait for the buyer to fund it",
                        shards.len(),
                        l.id()
                    )
                },
            );
        }
    }
    Ok(())
}

pub(super) fn fund(a: &Act<'_>, id: &str) -> Result<()> {
    let (s, now, json, args) = (&a.s, a.now, a.json, a.args);
    match s.load_any(id_arg(id)?)? {
        AnyOrder::Pull(l) => fund_pull(json, args, s, &l, now)?,
        AnyOrder::Storage(l) => fund_storage(json, args, s, &l, now)?,
    }
    Ok(())
}

pub(super) fn deliver(a: &Act<'_>, id: &str) -> Result<()> {
    let (s, me, now, json, args) = (&a.s, a.me, a.now, a.json, a.args);
    let l = s.load(id_arg(id)?)?;
    let at = l.allowed(me, &agigit_market::Action::Deliver, now)?;
    let (lock, escrow) = l.funding()?;
    let w = wallet(args)?;
    s.rt.block_on(w.verify(&lock, &escrow))?;
    let action = s.act(l.id(), OrderVerb::Deliver, None, Vec::new(), at)?;
    let l = s.load(l.id())?;
    print(
        json,
        reply(
            "deliver",
            action,
            summary(&l),
            serde_json::json!({"verified": escrow.amount}),
        ),
        || {
            format!(
                "the funding checks out ({} sats locked for you at the mint); told the buyer it is delivered",
                escrow.amount
            )
        },
    );
    Ok(())
}

pub(super) fn confirm(a: &Act<'_>, id: &str) -> Result<()> {
    let (s, me, now, json, args) = (&a.s, a.me, a.now, a.json, a.args);
    match s.load_any(id_arg(id)?)? {
        AnyOrder::Pull(l) => {
            let at = l.allowed(me, &agigit_market::Action::Confirm, now)?;
            // The model must be here: fetched, every shard and object checked by its hash.
            let model = l.folded.order.terms().model;
            let repo = open(a.ctx)?;
            let here = repo.resolve(&model.to_string()).is_ok_and(|c| c == model);
            if !here {
                return Err(Failure::invalid(format!(
                    "commit {model} is not in this repository: clone or pull it from the relay first (its shards are checked by hash as they arrive), then confirm"
                )));
            }
            let (lock, _) = l.funding()?;
            let w = wallet(args)?;
            let consent = s.rt.block_on(w.consent(&lock))?;
            let action = s.act(l.id(), OrderVerb::Confirm, None, consent.signatures, at)?;
            let l = s.load(l.id())?;
            print(
                json,
                reply("confirm", action, summary(&l), serde_json::json!({})),
                || {
                    format!(
                        "confirmed: the relay can now claim its {} sats",
                        l.folded.order.owed()
                    )
                },
            );
        }
        AnyOrder::Storage(l) => {
            let at = l.allowed(me, &StorageAction::Release, now)?;
            let StoragePhase::Running {
                period,
                audit: Audit::Passed { .. },
                ..
            } = l.folded.order.phase()
            else {
                return Err(Failure::invalid(format!(
                    "nothing to release: a period's payment is released once its audit passed, and this order is {}",
                    l.folded.order.phase().describe()
                )));
            };
            let (lock, escrows) = l.funding()?;
            let escrow = period_escrow(&escrows, period)?;
            let w = wallet(args)?;
            let part = s.rt.block_on(w.part(&lock, escrow.refund_at))?;
            let consent = s.rt.block_on(w.consent(&part))?;
            let action = s.act(l.id(), OrderVerb::Confirm, None, consent.signatures, at)?;
            let l = s.load_storage(l.id())?;
            print(
                json,
                reply(
                    "confirm",
                    action,
                    storage_summary(&l),
                    serde_json::json!({"period": period + 1, "released": escrow.amount}),
                ),
                || {
                    format!(
                        "released period {}'s {} sats: the server can claim them",
                        period + 1,
                        escrow.amount
                    )
                },
            );
        }
    }
    Ok(())
}

pub(super) fn challenge(a: &Act<'_>, id: &str) -> Result<()> {
    let (s, me, now, json) = (&a.s, a.me, a.now, a.json);
    let l = s.load_storage(id_arg(id)?)?;
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce)
        .map_err(|e| Failure::new(ErrorKind::Io, format!("no randomness for a challenge: {e}")))?;
    let at = l.allowed(me, &StorageAction::Challenge(nonce), now)?;
    let action = s.act(l.id(), OrderVerb::Challenge(nonce), None, Vec::new(), at)?;
    // The blobs this challenge reaches, whether or not the server answered already.
    let period = match l.folded.order.tick(at).0.phase() {
        StoragePhase::Running { period, .. } => period,
        _ => 0,
    };
    let l = s.load_storage(l.id())?;
    let t = l.folded.order.terms();
    print(
        json,
        reply(
            "challenge",
            action,
            storage_summary(&l),
            serde_json::json!({"challenged": reached(t, &nonce, period)}),
        ),
        || {
            format!(
                "challenged {} leaves: the server must answer by {}",
                t.challenges,
                at + t.answer_within
            )
        },
    );
    Ok(())
}

pub(super) fn answer(a: &Act<'_>, id: &str, store: &str) -> Result<()> {
    let (s, me, now, json) = (&a.s, a.me, a.now, a.json);
    let l = s.load_storage(id_arg(id)?)?;
    let StoragePhase::Running {
        server,
        period,
        audit: Audit::Challenged { nonce, .. },
        ..
    } = l.folded.order.phase()
    else {
        return Err(Failure::invalid(format!(
            "no challenge to answer: the order is {}",
            l.folded.order.phase().describe()
        )));
    };
    if server != me {
        return Err(not_yours(
            "only the server that took the order answers its audits",
        ));
    }
    let store = store_url(store);
    let openings = open_leaves(s, &store, &l.folded.order, &nonce, period)?;
    let answer = StorageAction::Answer(openings.clone());
    let at = l.allowed(me, &answer, now)?;
    let action = s.act(l.id(), OrderVerb::Answer(openings), None, Vec::new(), at)?;
    let l = s.load_storage(l.id())?;
    print(
        json,
        reply(
            "answer",
            action,
            storage_summary(&l),
            serde_json::json!({"period": period + 1}),
        ),
        || format!("answered period {}'s audit", period + 1),
    );
    Ok(())
}

pub(super) fn dispute(a: &Act<'_>, id: &str) -> Result<()> {
    plain(
        a,
        id,
        agigit_market::Action::Dispute,
        OrderVerb::Dispute,
        |_| "disputed: the arbiter decides".to_owned(),
    )
}

pub(super) fn cancel(a: &Act<'_>, id: &str) -> Result<()> {
    let (s, me, now, json) = (&a.s, a.me, a.now, a.json);
    match s.load_any(id_arg(id)?)? {
        AnyOrder::Pull(_) => plain(
            a,
            id,
            agigit_market::Action::Cancel,
            OrderVerb::Cancel,
            |_| "cancelled".to_owned(),
        )?,
        AnyOrder::Storage(l) => {
            let at = l.allowed(me, &StorageAction::Cancel, now)?;
            let action = s.act(l.id(), OrderVerb::Cancel, None, Vec::new(), at)?;
            let l = s.load_storage(l.id())?;
            print(
                json,
                reply("cancel", action, storage_summary(&l), serde_json::json!({})),
                || "cancelled".to_owned(),
            );
        }
    }
    Ok(())
}

pub(super) fn raise(a: &Act<'_>, id: &str, amount: u64) -> Result<()> {
    plain(
        a,
        id,
        agigit_market::Action::Raise(amount),
        OrderVerb::Raise(amount),
        |l| format!("raised: the order now pays {}", l.folded.order.owed()),
    )
}

pub(super) fn rule(a: &Act<'_>, id: &str, ruling: RuleArg) -> Result<()> {
    let (s, me, now, json, args) = (&a.s, a.me, a.now, a.json, a.args);
    let l = s.load(id_arg(id)?)?;
    let ruling = match ruling {
        RuleArg::Pay => Ruling::Pay,
        RuleArg::Refund => Ruling::Refund,
    };
    let at = l.allowed(me, &agigit_market::Action::Rule(ruling), now)?;
    let (lock, _) = l.funding()?;
    let w = wallet(args)?;
    let consent = s.rt.block_on(w.consent(&lock))?;
    let verb = OrderVerb::Rule(match ruling {
        Ruling::Pay => DefaultRule::Pay,
        Ruling::Refund => DefaultRule::Refund,
    });
    let action = s.act(l.id(), verb, None, consent.signatures, at)?;
    let l = s.load(l.id())?;
    print(
        json,
        reply("rule", action, summary(&l), serde_json::json!({})),
        || "ruled, and signed the escrow over".to_owned(),
    );
    Ok(())
}

pub(super) fn claim(a: &Act<'_>, id: &str) -> Result<()> {
    let (s, me, json, args) = (&a.s, a.me, a.json, a.args);
    match s.load_any(id_arg(id)?)? {
        AnyOrder::Pull(l) => {
            if l.folded.order.phase() != Phase::Closed(Outcome::Paid { relay: me }) {
                return Err(not_yours(&format!(
                    "this order is not paid to you: it is {}",
                    l.folded.order.phase().describe()
                )));
            }
            let (lock, _) = l.funding()?;
            let consents = release_consents(&l, Ruling::Pay);
            let w = wallet(args)?;
            let got = s.rt.block_on(w.claim(&lock, &consents))?;
            let balance = s.rt.block_on(w.balance())?;
            print(
                json,
                serde_json::json!({"id": l.id().to_hex(), "claimed": got, "balance": balance}),
                || format!("claimed {got} sats; the wallet holds {balance}"),
            );
        }
        AnyOrder::Storage(l) => claim_storage(json, args, s, &l)?,
    }
    Ok(())
}

pub(super) fn refund(a: &Act<'_>, id: &str) -> Result<()> {
    let (s, me, json, args) = (&a.s, a.me, a.json, a.args);
    match s.load_any(id_arg(id)?)? {
        AnyOrder::Pull(l) => {
            if l.buyer() != me {
                return Err(not_yours("only the buyer takes an order's escrow back"));
            }
            if matches!(l.folded.order.phase(), Phase::Closed(Outcome::Paid { .. })) {
                return Err(not_yours("this order paid the relay: nothing comes back"));
            }
            // The token from the relays' fund action, else the one kept when funding.
            let (lock, refund_at) = match l.funding() {
                Ok((lock, escrow)) => (lock, Some(escrow.refund_at)),
                Err(e) => (kept_lock(l.id(), e)?, None),
            };
            let w = wallet(args)?;
            let ruled = release_consents(&l, Ruling::Refund);
            let got = if ruled.is_empty() {
                s.rt.block_on(w.refund(&lock))?
            } else {
                s.rt.block_on(w.claim(&lock, &ruled))?
            };
            let balance = s.rt.block_on(w.balance())?;
            print(
                json,
                serde_json::json!({"id": l.id().to_hex(), "refunded": got, "balance": balance, "refund_at": refund_at}),
                || format!("took back {got} sats; the wallet holds {balance}"),
            );
        }
        AnyOrder::Storage(l) => refund_storage(json, args, s, &l)?,
    }
    Ok(())
}

/// A pull order's action that carries nothing for the ledger: checked against the fold,
/// published, the order shown.
fn plain(
    a: &Act<'_>,
    id: &str,
    action: agigit_market::Action,
    verb: OrderVerb,
    text: impl Fn(&Loaded<PullOrder>) -> String,
) -> Result<()> {
    let s = &a.s;
    let l = s.load(id_arg(id)?)?;
    let at = l.allowed(a.me, &action, a.now)?;
    let name = verb.as_str();
    let event = s.act(l.id(), verb, None, Vec::new(), at)?;
    let l = s.load(l.id())?;
    print(
        a.json,
        reply(name, event, summary(&l), serde_json::json!({})),
        || text(&l),
    );
    Ok(())
}
