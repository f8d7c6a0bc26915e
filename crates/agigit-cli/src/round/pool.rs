//! A round's pool and bonds on a Cashu mint (`docs/rounds.md`, "On a ledger"): the organizer
//! locks the pool for the arbiter (`fund`), each evaluator its bond (`bond`); the organizer
//! releases them with its result, the arbiter claims them and pays each party the fold says it
//! owes (`pay`), each payee claims its payment (`claim`), and the organizer takes back a pool
//! nobody claimed (`refund`).

use agigit::ErrorKind;
use agigit::eval::round::{Standing, bond_escrow, fold, payment_escrow, pool_escrow};
use agigit::event::Signed;
use agigit::event::nostr::prelude::PublicKey;
use agigit::event::round::{RoundAction, RoundEvent, RoundVerb};
use agigit_market::ledger::Ledger as _;
use agigit_market_cashu::{CashuConsent, CashuError, CashuLock, CashuWallet};

use super::{Conn, RoundEvents, now, short};
use crate::context::{Ctx, npub, print};
use crate::failure::{Failure, Result};

fn who(k: &PublicKey) -> String {
    npub(k).unwrap_or_else(|_| k.to_hex())
}

/// Where the organizer keeps the pool's token for `round`.
fn kept_pool(round: &Signed<RoundEvent>) -> Result<std::path::PathBuf> {
    crate::wallet::kept("rounds", &format!("{}.pool", round.id().to_hex()))
}

/// Where the arbiter keeps a payment's token.
fn kept_payment(round: &Signed<RoundEvent>, to: &PublicKey) -> Result<std::path::PathBuf> {
    crate::wallet::kept(
        "rounds",
        &format!("{}.{}", round.id().to_hex(), to.to_hex()),
    )
}

/// The token an earlier try kept at `kept` (locked, but perhaps never published), else the one
/// `lock` makes now, kept there before anything is published: a publish that fails loses
/// nothing, and a retry locks nothing twice.
fn kept_or_lock(
    kept: &std::path::Path,
    lock: impl FnOnce() -> Result<CashuLock>,
) -> Result<CashuLock> {
    if let Ok(token) = std::fs::read_to_string(kept) {
        return Ok(CashuLock::from_token(token.trim()));
    }
    let lock = lock()?;
    crate::wallet::keep(kept, lock.token())?;
    Ok(lock)
}

/// Locks `escrow` from the wallet at `mint` (or takes the token an earlier try kept at `kept`)
/// and publishes `verb` carrying it; a publish that fails says where the token is and `retry`.
fn lock_and_publish(
    c: &Conn,
    round: &Signed<RoundEvent>,
    verb: RoundVerb,
    kept: &std::path::Path,
    escrow: &agigit_market::ledger::Escrow,
    mint: Option<&str>,
    retry: &str,
) -> Result<Signed<RoundAction>> {
    let lock = kept_or_lock(kept, || {
        let w = crate::wallet::open(mint)?;
        Ok(c.block_on(w.lock(escrow))?)
    })?;
    c.publish(&RoundAction {
        round: round.id(),
        verb,
        token: Some(lock.token().to_owned()),
        release: Vec::new(),
        note: String::new(),
    })
    .map_err(|e| {
        Failure::new(
            e.kind,
            format!(
                "{}; the funds are locked in {}: {retry}",
                e.message,
                kept.display()
            ),
        )
    })
}

/// A counted bond's lock: its action's token.
fn bond_lock(ev: &RoundEvents, bond: &agigit::event::nostr::prelude::EventId) -> Option<CashuLock> {
    ev.actions
        .iter()
        .find(|a| a.id() == *bond)
        .and_then(|a| a.body().token.clone())
        .map(CashuLock::from_token)
}

/// `round bond` (a listed evaluator): locks the round's bond for the arbiter and publishes the
/// `bond` action carrying it (a token kept by an earlier try is published again instead).
pub(super) fn bond(ctx: &Ctx, c: &Conn, round: &str, mint: Option<&str>) -> Result<()> {
    let r = c.round(round)?;
    let b = r.body();
    let me = c.keys.public_key();
    if b.bond == 0 {
        return Err(Failure::invalid("the round asks no bond"));
    }
    if !b.evaluators.contains(&me) {
        return Err(Failure::invalid(
            "you are not one of the round's evaluators: only theirs are bonded",
        ));
    }
    if now() > b.evaluate_by {
        return Err(Failure::invalid("the round's receipts are closed"));
    }
    let escrow = bond_escrow(&r, me).ok_or_else(|| {
        Failure::invalid("the round has no arbiter other than its organizer to hold bonds")
    })?;
    let ev = c.events(&r)?;
    if fold(&r, &ev.actions, &[], now())
        .bonds
        .iter()
        .any(|x| x.evaluator == me)
    {
        return Err(Failure::invalid(
            "your bond for this round is locked already",
        ));
    }
    let kept = crate::wallet::kept("rounds", &format!("{}.bond", r.id().to_hex()))?;
    let retry = format!("`agigit round bond {}` publishes it again", r.id());
    let signed = lock_and_publish(c, &r, RoundVerb::Bond, &kept, &escrow, mint, &retry)?;
    print(
        ctx.json,
        serde_json::json!({"round": r.id().to_hex(), "bond": signed.id().to_hex(), "locked": escrow.amount}),
        || {
            format!(
                "locked a bond of {} sats for round {}: back once the round is decided, unless a challenge rules against your receipt",
                escrow.amount,
                short(&r.id())
            )
        },
    );
    Ok(())
}

/// Refuses an evaluator's receipts in a round whose bond it has not locked: they would not
/// count.
pub(super) fn bonded(c: &Conn, r: &Signed<RoundEvent>, s: &Standing) -> Result<()> {
    let b = r.body();
    let me = c.keys.public_key();
    let arbiter = b.arbiter.unwrap_or(r.author());
    if b.bond > 0 && me != arbiter && !s.bonds.iter().any(|x| x.evaluator == me) {
        return Err(Failure::invalid(format!(
            "the round asks each evaluator for a bond of {} sats and yours is not locked: `agigit round bond {}` first (receipts without one do not count)",
            b.bond,
            r.id()
        )));
    }
    Ok(())
}

/// The organizer's consent to the arbiter's claim of each evaluator's bond, once the round is
/// decided: a `consent` action each, for the bonds that are at the mint as the round states.
/// Returns the bonds left out (a forged token, say), each with why.
pub(super) fn consent_bonds(
    c: &Conn,
    r: &Signed<RoundEvent>,
    ev: &RoundEvents,
    s: &Standing,
    w: Option<&CashuWallet>,
) -> Result<Vec<String>> {
    let Some(w) = w.filter(|_| !s.bonds.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut left_out = Vec::new();
    for b in &s.bonds {
        let checked = bond_lock(ev, &b.id)
            .zip(bond_escrow(r, b.evaluator))
            .ok_or(CashuError::NotAsAgreed("a bond action without its token"))
            .and_then(|(lock, escrow)| {
                c.block_on(w.verify(&lock, &escrow))?;
                c.block_on(w.consent(&lock))
            });
        match checked {
            Ok(consent) => {
                c.publish(&RoundAction {
                    round: r.id(),
                    verb: RoundVerb::Consent { bond: b.id },
                    token: None,
                    release: consent.signatures,
                    note: String::new(),
                })?;
            }
            Err(e) => left_out.push(format!("{}'s bond: {e}", who(&b.evaluator))),
        }
    }
    Ok(left_out)
}

/// The pool's lock: the token of the round's first `fund` by its organizer (the one the fold
/// counts).
fn funding(round: &Signed<RoundEvent>, ev: &RoundEvents) -> Option<CashuLock> {
    ev.actions
        .iter()
        .filter(|a| a.author() == round.author() && a.body().verb == RoundVerb::Fund)
        .min_by_key(|a| (a.created_at(), a.id()))
        .and_then(|a| a.body().token.clone())
        .map(CashuLock::from_token)
}

/// The organizer locks the pool for the arbiter and publishes the `fund` action carrying it;
/// a token kept by an earlier try whose action never reached the relays is published again
/// instead of locking more.
pub(super) fn fund(c: &Conn, round: &Signed<RoundEvent>, mint: Option<&str>) -> Result<u64> {
    let r = round.body();
    if round.author() != c.keys.public_key() {
        return Err(Failure::invalid(
            "only the round's organizer funds its pool",
        ));
    }
    let escrow = pool_escrow(round).ok_or_else(|| {
        Failure::invalid(
            "the round has no pool, or no arbiter other than you to hold it with you: nothing to fund",
        )
    })?;
    if now() > r.submit_by {
        return Err(Failure::invalid(
            "the round's submissions are closed: a pool funded now would not count",
        ));
    }
    let ev = c.events(round)?;
    if fold(round, &ev.actions, &[], now()).funded {
        return Err(Failure::invalid("the round's pool is funded already"));
    }
    let kept = kept_pool(round)?;
    let id = round.id();
    let retry = format!(
        "`agigit round fund {id}` publishes it again, `agigit round refund {id}` takes it back from {}",
        escrow.refund_at
    );
    lock_and_publish(c, round, RoundVerb::Fund, &kept, &escrow, mint, &retry)?;
    Ok(escrow.amount)
}

/// The organizer's consent to the pool's release, for its `result`: empty without a funded
/// pool.
pub(super) fn release(
    c: &Conn,
    round: &Signed<RoundEvent>,
    ev: &RoundEvents,
    s: &Standing,
    w: Option<&CashuWallet>,
) -> Result<Vec<String>> {
    let Some(w) = w.filter(|_| s.funded) else {
        return Ok(Vec::new());
    };
    let lock = funding(round, ev).ok_or_else(|| {
        Failure::new(
            ErrorKind::Integrity,
            "the round is funded but its fund action carries no token",
        )
    })?;
    Ok(c.block_on(w.consent(&lock))?.signatures)
}

/// Whether the funded pool is at the mint as the round states (amount, locked for the arbiter
/// with the organizer's refund at the agreed time, unspent): `None` without a wallet to ask
/// with (no `--mint` or `[wallet] mint`), or with no funded pool.
pub(super) fn check(
    c: &Conn,
    round: &Signed<RoundEvent>,
    ev: &RoundEvents,
    s: &Standing,
    mint: Option<&str>,
) -> Option<std::result::Result<(), String>> {
    if !s.funded {
        return None;
    }
    let w = crate::wallet::open(mint).ok()?;
    let escrow = pool_escrow(round)?;
    Some(match funding(round, ev) {
        Some(lock) => c
            .block_on(w.verify(&lock, &escrow))
            .map_err(|e| e.to_string()),
        None => Err("the fund action carries no token".to_owned()),
    })
}

/// `round fund`.
pub(super) fn fund_command(ctx: &Ctx, c: &Conn, round: &str, mint: Option<&str>) -> Result<()> {
    let r = c.round(round)?;
    let amount = fund(c, &r, mint)?;
    print(
        ctx.json,
        serde_json::json!({"round": r.id().to_hex(), "funded": amount}),
        || format!("locked {amount} sats for round {}", short(&r.id())),
    );
    Ok(())
}

/// The decided round, its events and the fold, refused before it is decided.
fn decided(c: &Conn, round: &str) -> Result<(Signed<RoundEvent>, RoundEvents, Standing)> {
    let (r, ev, s) = c.standing(round)?;
    super::decided(&r, &s)?;
    if !s.funded && s.bonds.is_empty() {
        return Err(Failure::invalid(
            "the round has no funded pool and no bonds: nothing to pay",
        ));
    }
    Ok((r, ev, s))
}

/// `round pay` (the arbiter): claims the pool with the organizer's release (and each bond with
/// its consent) and hands each party the fold says it owes a payment locked for it, with the
/// arbiter's consent.
pub(super) fn pay(ctx: &Ctx, c: &Conn, round: &str, mint: Option<&str>) -> Result<()> {
    let (r, ev, s) = decided(c, round)?;
    let me = c.keys.public_key();
    let organizer = r.author();
    if r.body().arbiter.filter(|a| *a != organizer) != Some(me) {
        return Err(Failure::invalid("only the round's arbiter pays it out"));
    }
    let (result, agrees) = s.result.ok_or_else(|| {
        Failure::invalid(
            "the organizer has not published the round's result: its release of the pool comes with it",
        )
    })?;
    if !agrees {
        return Err(Failure::new(
            ErrorKind::Integrity,
            "the organizer's result names another champion than the round's events do: pay nothing, and ask the organizer to publish the result `agigit round show` computes",
        ));
    }
    let w = crate::wallet::open(mint)?;
    // The pool and each bond, checked against the round's terms, then claimed; spent means an
    // earlier `round pay` claimed it, and the payments below pick up where that one stopped.
    let mut claimed = 0;
    if s.funded {
        let release = ev
            .actions
            .iter()
            .find(|a| a.id() == result)
            .map(|a| a.body().release.clone())
            .unwrap_or_default();
        let pool = funding(&r, &ev)
            .ok_or_else(|| Failure::new(ErrorKind::Integrity, "no fund action with a token"))?;
        let escrow = pool_escrow(&r).ok_or_else(|| Failure::invalid("no pool"))?;
        claimed += claim_locked(c, &w, &pool, &escrow, organizer, release, "the pool")?;
    }
    // A bond that is not as the round states (an evaluator's forged token), or not released,
    // stops nobody else's payment: it is reported, and what it would have paid is not there.
    let mut problems = Vec::new();
    // What a bond that could not be claimed would have paid, and to whom: not paid.
    let mut withheld: Vec<(PublicKey, u64)> = Vec::new();
    for b in &s.bonds {
        let claim = || -> Result<u64> {
            let lock = bond_lock(&ev, &b.id)
                .ok_or_else(|| Failure::new(ErrorKind::Integrity, "a bond without its token"))?;
            let escrow = bond_escrow(&r, b.evaluator).ok_or_else(|| Failure::invalid("no bond"))?;
            let release = ev
                .actions
                .iter()
                .find(|a| {
                    a.author() == organizer && a.body().verb == RoundVerb::Consent { bond: b.id }
                })
                .map(|a| a.body().release.clone())
                .ok_or_else(|| {
                    Failure::invalid("the organizer has not released it (its `round result` does)")
                })?;
            claim_locked(c, &w, &lock, &escrow, organizer, release, "a bond")
        };
        match claim() {
            Ok(amount) => claimed += amount,
            Err(e) => {
                problems.push(format!("{}'s bond: {}", who(&b.evaluator), e.message));
                withheld.extend(b.to.map(|to| (to, r.body().bond)));
            }
        }
    }
    let mut paid = Vec::new();
    for (to, owed) in s.owed() {
        let short: u64 = withheld
            .iter()
            .filter(|(k, _)| *k == to)
            .map(|(_, a)| a)
            .sum();
        let amount = owed.saturating_sub(short);
        if to == me || amount == 0 || s.payments.iter().any(|p| p.to == to) {
            continue;
        }
        match pay_one(c, &w, &r, to, amount) {
            Ok(token) => {
                paid.push(serde_json::json!({"to": to.to_hex(), "amount": amount, "event": token}))
            }
            Err(e) => problems.push(format!("{amount} sats to {}: {}", who(&to), e.message)),
        }
    }
    let balance = c.block_on(w.balance())?;
    print(
        ctx.json,
        serde_json::json!({"round": r.id().to_hex(), "claimed": claimed, "paid": paid, "balance": balance, "problems": problems}),
        || {
            let mut out = format!("claimed the pool and bonds ({claimed} sats)");
            for p in &paid {
                out.push_str(&format!(
                    "\n  paid {} sats to {}",
                    p["amount"],
                    p["to"].as_str().unwrap_or_default()
                ));
            }
            for p in &problems {
                out.push_str(&format!("\n  NOT paid: {p}"));
            }
            out
        },
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            ErrorKind::Integrity,
            format!(
                "{} of the round's payouts could not be made (listed above); run `agigit round pay {}` again once they can",
                problems.len(),
                r.id()
            ),
        ))
    }
}

/// Claims `lock` (checked against `escrow` first) with `by`'s consent `release`; 0 when an
/// earlier `round pay` claimed it.
fn claim_locked(
    c: &Conn,
    w: &CashuWallet,
    lock: &CashuLock,
    escrow: &agigit_market::ledger::Escrow,
    by: PublicKey,
    release: Vec<String>,
    what: &str,
) -> Result<u64> {
    let consent = CashuConsent {
        by,
        signatures: release,
    };
    match c
        .block_on(w.verify(lock, escrow))
        .and_then(|()| c.block_on(w.claim(lock, &[consent])))
    {
        Ok(amount) => Ok(amount),
        Err(CashuError::Spent) => Ok(0),
        Err(CashuError::Consents) => Err(Failure::new(
            ErrorKind::Access,
            format!("the organizer's release of {what} is not valid"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Locks `amount` for `to` (or takes the token an earlier try kept) and publishes the `pay`
/// action carrying it with the arbiter's consent. Returns the action's id.
fn pay_one(
    c: &Conn,
    w: &CashuWallet,
    r: &Signed<RoundEvent>,
    to: PublicKey,
    amount: u64,
) -> Result<String> {
    let kept = kept_payment(r, &to)?;
    let lock = kept_or_lock(&kept, || {
        Ok(c.block_on(w.lock(&payment_escrow(r, to, amount)))?)
    })?;
    let consent = c.block_on(w.consent(&lock))?;
    let action = RoundAction {
        round: r.id(),
        verb: RoundVerb::Pay { to, amount },
        token: Some(lock.token().to_owned()),
        release: consent.signatures,
        note: String::new(),
    };
    let signed = c.publish(&action).map_err(|e| {
        Failure::new(
            e.kind,
            format!(
                "{}; the payment to {} is locked in {}: `agigit round pay {}` publishes it again",
                e.message,
                who(&to),
                kept.display(),
                r.id()
            ),
        )
    })?;
    Ok(signed.id().to_hex())
}

/// `round claim` (a payee): takes the payment the arbiter handed this user.
pub(super) fn claim(ctx: &Ctx, c: &Conn, round: &str, mint: Option<&str>) -> Result<()> {
    let (r, ev, s) = decided(c, round)?;
    let me = c.keys.public_key();
    let owed = s
        .owed()
        .into_iter()
        .find(|(k, _)| *k == me)
        .map(|(_, a)| a)
        .ok_or_else(|| Failure::invalid("the round owes you nothing"))?;
    let payment = s.payments.iter().find(|p| p.to == me).ok_or_else(|| {
        Failure::invalid(format!(
            "the round owes you {owed} sats, but its arbiter has not paid yet (`agigit round pay` is theirs to run)"
        ))
    })?;
    let action = ev
        .actions
        .iter()
        .find(|a| a.id() == payment.id)
        .ok_or_else(|| Failure::new(ErrorKind::Integrity, "the payment's action went missing"))?;
    let lock = CashuLock::from_token(action.body().token.clone().unwrap_or_default());
    let w = crate::wallet::open(mint)?;
    let consent = CashuConsent {
        by: action.author(),
        signatures: action.body().release.clone(),
    };
    // The token must hold what the fold says, locked for this user as agreed; spent means
    // claimed before.
    let escrow = payment_escrow(&r, me, payment.amount);
    let got = match c
        .block_on(w.verify(&lock, &escrow))
        .and_then(|()| c.block_on(w.claim(&lock, &[consent])))
    {
        Ok(amount) => amount,
        Err(CashuError::Spent) => 0,
        Err(e) => return Err(e.into()),
    };
    let balance = c.block_on(w.balance())?;
    print(
        ctx.json,
        serde_json::json!({"round": r.id().to_hex(), "claimed": got, "owed": owed, "balance": balance}),
        || {
            let mut out = if got == 0 {
                format!("claimed before; the wallet holds {balance}")
            } else {
                format!("claimed {got} sats; the wallet holds {balance}")
            };
            if payment.amount < owed {
                out.push_str(&format!(
                    "\n  the round owes you {owed} sats: its arbiter paid {} (see `agigit round pay`'s report)",
                    payment.amount
                ));
            }
            out
        },
    );
    Ok(())
}

/// `round refund` (the organizer): the pool back, once its refund time has come and nobody
/// claimed it.
pub(super) fn refund(ctx: &Ctx, c: &Conn, round: &str, mint: Option<&str>) -> Result<()> {
    let r = c.round(round)?;
    if r.author() != c.keys.public_key() {
        return Err(Failure::invalid(
            "only the round's organizer takes its pool back",
        ));
    }
    let ev = c.events(&r)?;
    let lock = match funding(&r, &ev) {
        Some(lock) => lock,
        None => {
            // Locked, but the fund action never reached the relays.
            let kept = kept_pool(&r)?;
            let token = std::fs::read_to_string(&kept)
                .map_err(|_| Failure::invalid("the round's pool was never locked"))?;
            CashuLock::from_token(token.trim())
        }
    };
    let w = crate::wallet::open(mint)?;
    let got = match c.block_on(w.refund(&lock)) {
        Ok(amount) => amount,
        Err(CashuError::NotYetRefundable { refund_at }) => {
            return Err(Failure::invalid(format!(
                "the pool comes back from {refund_at} if its arbiter has not claimed it by then"
            )));
        }
        Err(CashuError::Spent) => {
            return Err(Failure::invalid(
                "the pool was claimed (by its arbiter, with your result's release, or refunded before): see `agigit round show`",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let balance = c.block_on(w.balance())?;
    print(
        ctx.json,
        serde_json::json!({"round": r.id().to_hex(), "refunded": got, "balance": balance}),
        || format!("took back {got} sats; the wallet holds {balance}"),
    );
    Ok(())
}
