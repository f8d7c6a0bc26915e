//! A competition round's outcome as a deterministic fold over its signed events: the
//! announcement (kind 1725), the actions on it (kind 1726) and the evaluators' receipts (kind
//! 1724) with the per-document losses they commit to. Any party holding the same events and
//! losses computes the same standing, champion and payouts (`docs/rounds.md`).
//!
//! No I/O and no forward pass: the losses come from wherever the caller fetched them, and are
//! checked against each receipt's Merkle root before they count.

use std::collections::HashMap;

use agigit_event::nostr::prelude::{EventId, PublicKey};
use agigit_event::round::{RoundAction, RoundEvent, RoundVerb, seal};
use agigit_event::{EvalReceipt, RepoCoordinate, Signed};
use agigit_hash::ObjectId;
use agigit_market::ledger::Escrow;
use agigit_market::{Amount, Effect, Time, Why};

use crate::compare::{Bootstrap, Comparison, comparable, ladder};
use crate::{DocumentLoss, Evaluation};

/// The most submissions a round counts (the earliest).
pub const MAX_SUBMISSIONS: usize = 256;
/// The most actions and receipts one fold reads.
pub const MAX_EVENTS: usize = 4096;

/// A receipt with the losses it commits to.
#[derive(Clone, Debug)]
pub struct Evidence {
    /// The signed receipt.
    pub receipt: Signed<EvalReceipt>,
    /// Every document's loss, in order: their Merkle root must be the receipt's `losses`.
    pub losses: Vec<DocumentLoss>,
}

/// Where a round is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Taking submissions.
    Submissions,
    /// Submissions closed; the test set not yet revealed.
    Reveal,
    /// The test set revealed; taking receipts.
    Evaluation,
    /// Receipts closed; taking challenges and rulings.
    Challenges,
    /// Decided: the champion and payouts are final.
    Settled,
    /// The test set was never revealed: the round decides nothing and the pool goes back.
    Void,
}

/// A contribution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    /// The submit action's id.
    pub id: EventId,
    /// Its author: who is paid.
    pub author: PublicKey,
    /// The fork's repository.
    pub repo: RepoCoordinate,
    /// The commit.
    pub commit: ObjectId,
    /// When it was submitted.
    pub at: Time,
}

/// What became of a receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not challenged, or upheld by the arbiter.
    Stands,
    /// Challenged and not yet (or never) ruled on: it does not count.
    Disputed,
    /// The arbiter ruled for the other side.
    Overturned,
}

/// A receipt the round counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Counted {
    /// The receipt's id.
    pub id: EventId,
    /// Its evaluator.
    pub evaluator: PublicKey,
    /// The commit it evaluates.
    pub commit: ObjectId,
    /// When.
    pub at: Time,
    /// What became of it.
    pub verdict: Verdict,
}

/// A step of the round's ladder: a submission that took the lead.
#[derive(Clone, Debug, PartialEq)]
pub struct Lead {
    /// The submission.
    pub submission: Submission,
    /// How it compared with the leader before it.
    pub over: Comparison,
    /// What it is paid.
    pub reward: Amount,
}

/// An evaluator's bond, locked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bonded {
    /// The evaluator.
    pub evaluator: PublicKey,
    /// The `bond` action's id.
    pub id: EventId,
    /// When: its receipts count from then.
    pub at: Time,
    /// Once the round is decided, who the bond goes to: its evaluator, or the evaluator of the
    /// receipt that stood against one of its own.
    pub to: Option<PublicKey>,
}

/// The arbiter's payment of what a decided round owes one payee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// The `pay` action's id.
    pub id: EventId,
    /// The payee.
    pub to: PublicKey,
    /// What its token holds, as the action states: at most what the round owes the payee (less
    /// when the arbiter could not claim all of it — a forged bond, say).
    pub amount: Amount,
    /// What the round owes the payee ([`Standing::owed`]).
    pub owed: Amount,
    /// When.
    pub at: Time,
}

/// A round as its events leave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing {
    /// Where it is.
    pub phase: Phase,
    /// Whether the pool was locked.
    pub funded: bool,
    /// The evaluators' bonds, when the round asks for one.
    pub bonds: Vec<Bonded>,
    /// Submissions that count, earliest first.
    pub submissions: Vec<Submission>,
    /// The revealed test set (its tree id) and the commit that holds it.
    pub revealed: Option<(ObjectId, ObjectId)>,
    /// Receipts that count, and their verdicts.
    pub receipts: Vec<Counted>,
    /// When settled: every submission that took the lead, in order (the last is the champion).
    pub ladder: Vec<Lead>,
    /// Submissions with no standing receipt when the round settled.
    pub unevaluated: Vec<ObjectId>,
    /// What the escrow did: the pool and the bonds locked, released once the round is decided
    /// (a bond back to its evaluator, or to the other side of a challenge it lost).
    pub effects: Vec<Effect>,
    /// The organizer's signed result, and whether it names the champion this fold computed.
    pub result: Option<(EventId, bool)>,
    /// The arbiter's payments once the round is decided: the first to each payee it owes.
    pub payments: Vec<Payment>,
    /// Events left out, and why.
    pub ignored: Vec<(EventId, String)>,
}

impl Standing {
    /// The champion: the last submission to take the lead.
    pub fn champion(&self) -> Option<&Submission> {
        self.ladder.last().map(|l| &l.submission)
    }

    /// What the pool pays each party once the round is decided (rewards and the organizer's
    /// refund of the rest), summed per payee, in the order of [`Standing::effects`].
    pub fn owed(&self) -> Vec<(PublicKey, Amount)> {
        let mut out: Vec<(PublicKey, Amount)> = Vec::new();
        for e in &self.effects {
            if let Effect::Release { to, amount, .. } = *e {
                match out.iter_mut().find(|(k, _)| *k == to) {
                    Some((_, sum)) => *sum = sum.saturating_add(amount),
                    None => out.push((to, amount)),
                }
            }
        }
        out
    }
}

/// How long after a round settles its arbiter may claim the pool (with the organizer's
/// release, in its `result`); from then on the organizer alone can take it back.
pub const CLAIM_POOL_WITHIN: Time = 86_400;

/// How long a payee has to claim a payment after the pool's refund time; from then on the
/// arbiter can take it back.
pub const CLAIM_PAYMENT_WITHIN: Time = 30 * 86_400;

/// The pool's escrow, as `fund` locks it: the organizer's funds for the arbiter, refundable to
/// the organizer [`CLAIM_POOL_WITHIN`] after the round settles. `None` for a round without a
/// pool or without an arbiter other than the organizer (whose `fund` the fold ignores).
pub fn pool_escrow(round: &Signed<RoundEvent>) -> Option<Escrow> {
    let r = round.body();
    let arbiter = r.arbiter.filter(|a| *a != round.author())?;
    (r.pool > 0).then(|| Escrow {
        amount: r.pool,
        payer: round.author(),
        payee: arbiter,
        arbiter: None,
        refund_at: settles_at(r).saturating_add(CLAIM_POOL_WITHIN),
    })
}

/// An evaluator's bond, as `bond` locks it: the evaluator's `bond` sats for the arbiter, whose
/// claim the organizer's consent completes (the evaluator's is not needed: a bond lost is
/// taken without it), refundable to the evaluator when the pool is. `None` for a round that
/// asks no bond or has no arbiter other than the organizer.
pub fn bond_escrow(round: &Signed<RoundEvent>, evaluator: PublicKey) -> Option<Escrow> {
    let r = round.body();
    let arbiter = r.arbiter.filter(|a| *a != round.author())?;
    (r.bond > 0).then(|| Escrow {
        amount: r.bond,
        payer: evaluator,
        payee: arbiter,
        arbiter: Some(round.author()),
        refund_at: settles_at(r).saturating_add(CLAIM_POOL_WITHIN),
    })
}

/// A payment's escrow, as `pay` hands it over: `amount` of the arbiter's for `to`, released
/// by the arbiter's consent in the same action; the arbiter's again
/// [`CLAIM_PAYMENT_WITHIN`] after the pool's refund time.
pub fn payment_escrow(round: &Signed<RoundEvent>, to: PublicKey, amount: Amount) -> Escrow {
    let r = round.body();
    Escrow {
        amount,
        payer: r.arbiter.unwrap_or(round.author()),
        payee: to,
        arbiter: None,
        refund_at: settles_at(r)
            .saturating_add(CLAIM_POOL_WITHIN)
            .saturating_add(CLAIM_PAYMENT_WITHIN),
    }
}

/// When a settled round's receipts and rulings are all in: the end of the challenge window,
/// and as long again for the arbiter.
pub fn settles_at(round: &RoundEvent) -> Time {
    round
        .evaluate_by
        .saturating_add(round.challenge_within.saturating_mul(2))
}

/// The bootstrap every party runs for `round`: its samples and confidence, seeded by its id.
pub fn bootstrap(id: &EventId, round: &RoundEvent) -> Bootstrap {
    let seed = u64::from_le_bytes(id.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    let samples = u32::try_from(round.samples).unwrap_or(Bootstrap::MAX_SAMPLES);
    let confidence = u8::try_from(round.confidence).unwrap_or(95);
    Bootstrap::new(seed)
        .with(samples, confidence)
        .unwrap_or(Bootstrap::new(seed))
}

fn at(event: &agigit_event::nostr::prelude::Event) -> Time {
    event.created_at.as_secs()
}

/// Whether `losses` are what `r` states: the Merkle root, the count, the sums, the value.
fn consistent(r: &EvalReceipt, losses: &[DocumentLoss]) -> Result<(), String> {
    if losses.len() as u64 != r.documents {
        return Err(format!(
            "{} losses for {} documents",
            losses.len(),
            r.documents
        ));
    }
    let leaves: Vec<_> = losses.iter().map(DocumentLoss::leaf_hash).collect();
    if agigit_hash::merkle::root(&leaves) != r.losses {
        return Err("the losses are not those the receipt's root commits to".into());
    }
    let bytes: u64 = losses.iter().map(|d| d.bytes).sum();
    let tokens: u64 = losses.iter().map(|d| d.tokens).sum();
    let bits: f64 = losses.iter().map(|d| d.bits).sum();
    #[allow(clippy::cast_precision_loss, reason = "a ratio")]
    let value = if bytes == 0 { 0.0 } else { bits / bytes as f64 };
    if bytes != r.bytes || tokens != r.tokens || (value - r.value).abs() > 1e-9 * value.max(1.0) {
        return Err("the receipt's totals are not its losses' sums".into());
    }
    Ok(())
}

/// Folds `round` at `now`: its actions and receipts (signatures already checked by [`Signed`];
/// events of other rounds, out of time or by the wrong key are left out, listed in
/// [`Standing::ignored`]).
pub fn fold(
    round: &Signed<RoundEvent>,
    actions: &[Signed<RoundAction>],
    evidence: &[Evidence],
    now: Time,
) -> Standing {
    let r = round.body();
    let organizer = round.author();
    let arbiter = r.arbiter.unwrap_or(organizer);
    let mut s = Standing {
        phase: Phase::Submissions,
        funded: false,
        bonds: Vec::new(),
        submissions: Vec::new(),
        revealed: None,
        receipts: Vec::new(),
        ladder: Vec::new(),
        unevaluated: Vec::new(),
        effects: Vec::new(),
        result: None,
        payments: Vec::new(),
        ignored: Vec::new(),
    };
    let mut actions: Vec<&Signed<RoundAction>> = actions.iter().take(MAX_EVENTS).collect();
    actions.sort_by_key(|a| (at(a.event()), a.id()));
    actions.dedup_by_key(|a| a.id());
    let mut revealed_at = None;
    // First pass: everything but challenges, rulings and the result, which need the receipts.
    for a in &actions {
        let (by, when, id) = (a.author(), at(a.event()), a.id());
        let body = a.body();
        let ignore = |s: &mut Standing, why: &str| s.ignored.push((id, why.to_owned()));
        if body.round != round.id() || when > now {
            ignore(&mut s, "another round's, or dated after now");
            continue;
        }
        match &body.verb {
            RoundVerb::Fund => {
                if by != organizer || s.funded || when > r.submit_by || r.pool == 0 {
                    ignore(
                        &mut s,
                        "a fund by another than the organizer, twice, late or of no pool",
                    );
                } else if r.arbiter.is_none_or(|a| a == organizer) {
                    ignore(
                        &mut s,
                        "a pool needs an arbiter other than the organizer to hold it",
                    );
                } else {
                    s.funded = true;
                    s.effects.push(Effect::Lock {
                        from: organizer,
                        amount: r.pool,
                    });
                }
            }
            RoundVerb::Bond => {
                if r.bond == 0 || !r.evaluators.contains(&by) || when > r.evaluate_by {
                    ignore(
                        &mut s,
                        "a bond in a round that asks none, by another than a listed evaluator, or after evaluate_by",
                    );
                } else if arbiter == organizer {
                    ignore(
                        &mut s,
                        "a bond needs an arbiter other than the organizer to hold it",
                    );
                } else if s.bonds.iter().any(|b| b.evaluator == by) {
                    ignore(&mut s, "a second bond: the first counts");
                } else {
                    s.bonds.push(Bonded {
                        evaluator: by,
                        id,
                        at: when,
                        to: None,
                    });
                    s.effects.push(Effect::Lock {
                        from: by,
                        amount: r.bond,
                    });
                }
            }
            RoundVerb::Submit { repo, commit } => {
                if by == organizer || when > r.submit_by {
                    ignore(&mut s, "a submission by the organizer or after submit_by");
                } else if s.submissions.iter().any(|x| x.commit == *commit) {
                    ignore(&mut s, "a commit submitted before: the earliest counts");
                } else if s.submissions.len() == MAX_SUBMISSIONS {
                    ignore(&mut s, "more than 256 submissions");
                } else {
                    s.submissions.push(Submission {
                        id,
                        author: by,
                        repo: repo.clone(),
                        commit: *commit,
                        at: when,
                    });
                }
            }
            RoundVerb::Reveal { data, salt, commit } => {
                if by != organizer
                    || s.revealed.is_some()
                    || when <= r.submit_by
                    || when > r.reveal_by
                {
                    ignore(&mut s, "a reveal by another, twice, or outside its window");
                } else if seal(data, salt) != r.sealed {
                    ignore(&mut s, "a reveal that does not open the seal");
                } else {
                    s.revealed = Some((*data, *commit));
                    revealed_at = Some(when);
                }
            }
            _ => {}
        }
    }
    // Receipts: by a listed evaluator (or the arbiter), on the foundation or a submission, on
    // the revealed data, with the round's context, between the reveal and evaluate_by, with
    // losses that are what they state.
    let mut evaluations: HashMap<EventId, (&Evidence, Evaluation)> = HashMap::new();
    if let (Some((data, _)), Some(revealed_at)) = (s.revealed, revealed_at) {
        let mut sorted: Vec<&Evidence> = evidence.iter().take(MAX_EVENTS).collect();
        sorted.sort_by_key(|e| (at(e.receipt.event()), e.receipt.id()));
        sorted.dedup_by_key(|e| e.receipt.id());
        for e in sorted {
            let (rc, by, when, id) = (
                e.receipt.body(),
                e.receipt.author(),
                at(e.receipt.event()),
                e.receipt.id(),
            );
            let repo_of = |commit: &ObjectId| {
                if *commit == r.foundation {
                    Some(&r.repo)
                } else {
                    s.submissions
                        .iter()
                        .find(|x| x.commit == *commit)
                        .map(|x| &x.repo)
                }
            };
            let bonded = |by: PublicKey| s.bonds.iter().any(|b| b.evaluator == by && b.at <= when);
            let why = if !(r.evaluators.contains(&by) || by == arbiter) {
                Some("not by one of the round's evaluators".to_owned())
            } else if r.bond > 0 && by != arbiter && !bonded(by) {
                Some("by an evaluator that had not locked the round's bond".to_owned())
            } else if repo_of(&rc.commit) != Some(&rc.repo) {
                Some("not of the foundation or a submission".to_owned())
            } else if rc.data != data || rc.context != r.context || rc.metric != r.metric {
                Some("not of the revealed data with the round's context and metric".to_owned())
            } else if when < revealed_at || when > r.evaluate_by || when > now {
                Some("dated before the reveal (timestamps are seconds: the same second counts) or after evaluate_by".to_owned())
            } else {
                consistent(rc, &e.losses).err()
            };
            if let Some(why) = why {
                s.ignored.push((id, why));
                continue;
            }
            evaluations.insert(
                id,
                (
                    e,
                    Evaluation {
                        model_type: rc.model.clone(),
                        context: usize::try_from(rc.context).unwrap_or(usize::MAX),
                        bits_per_byte: rc.value,
                        bits_per_token: 0.0,
                        bytes: rc.bytes,
                        tokens: rc.tokens,
                        documents: e.losses.clone(),
                    },
                ),
            );
            s.receipts.push(Counted {
                id,
                evaluator: by,
                commit: rc.commit,
                at: when,
                verdict: Verdict::Stands,
            });
        }
    }
    // Challenges (within the window, by the counter receipt's evaluator, on documents where
    // the two disagree) and rulings (by the arbiter, after the challenge, within as long again).
    let window_end = r.evaluate_by.saturating_add(r.challenge_within);
    let mut disputes: Vec<(EventId, EventId)> = Vec::new();
    for a in &actions {
        let (by, when, id) = (a.author(), at(a.event()), a.id());
        if a.body().round != round.id() || when > now {
            continue;
        }
        match &a.body().verb {
            RoundVerb::Challenge {
                receipt,
                counter,
                documents,
            } => {
                let why = match (evaluations.get(receipt), evaluations.get(counter)) {
                    _ if when > window_end => Some("a challenge after the window"),
                    (Some((x, xe)), Some((y, ye))) => {
                        let disagree = documents.iter().all(|&i| {
                            usize::try_from(i).ok().is_some_and(|i| {
                                i < xe.documents.len() && xe.documents[i] != ye.documents[i]
                            })
                        });
                        if y.receipt.author() != by {
                            Some("a challenge whose counter receipt is not its author's")
                        } else if x.receipt.body().commit != y.receipt.body().commit {
                            Some("a counter receipt on another commit")
                        } else if !disagree {
                            Some("a challenge naming documents the receipts agree on")
                        } else {
                            None
                        }
                    }
                    _ => Some("a challenge of receipts the round does not count"),
                };
                match why {
                    Some(why) => s.ignored.push((id, why.to_owned())),
                    None => {
                        disputes.push((*receipt, *counter));
                        for c in &mut s.receipts {
                            if c.id == *receipt || c.id == *counter {
                                c.verdict = Verdict::Disputed;
                            }
                        }
                    }
                }
            }
            RoundVerb::Rule { receipt } => {
                let dispute = disputes
                    .iter()
                    .find(|(x, y)| x == receipt || y == receipt)
                    .copied();
                match dispute {
                    Some((x, y)) if by == arbiter && when <= settles_at(r) => {
                        let loser = if x == *receipt { y } else { x };
                        for c in &mut s.receipts {
                            if c.id == *receipt && c.verdict == Verdict::Disputed {
                                c.verdict = Verdict::Stands;
                            } else if c.id == loser {
                                c.verdict = Verdict::Overturned;
                            }
                        }
                    }
                    _ => s.ignored.push((
                        id,
                        "a ruling by another than the arbiter, late, or on no dispute".into(),
                    )),
                }
            }
            _ => {}
        }
    }
    // Where the round is.
    s.phase = if s.revealed.is_none() && now > r.reveal_by {
        Phase::Void
    } else if now <= r.submit_by {
        Phase::Submissions
    } else if s.revealed.is_none() {
        Phase::Reveal
    } else if now <= r.evaluate_by {
        Phase::Evaluation
    } else if now <= settles_at(r) {
        Phase::Challenges
    } else {
        Phase::Settled
    };
    match s.phase {
        Phase::Void if s.funded => {
            s.effects.push(Effect::Release {
                to: organizer,
                amount: r.pool,
                why: Why::Refund,
            });
        }
        Phase::Settled => settle(&mut s, round, &evaluations),
        _ => {}
    }
    if matches!(s.phase, Phase::Settled | Phase::Void) {
        release_bonds(&mut s, r, &disputes);
    }
    // The organizer's result, checked against what the fold computed.
    if matches!(s.phase, Phase::Settled | Phase::Void) {
        let champion = s.champion().map(|c| c.commit);
        if let Some(a) = actions.iter().find(|a| {
            a.author() == organizer
                && a.body().round == round.id()
                && at(a.event()) <= now
                && matches!(a.body().verb, RoundVerb::Result { .. })
        }) {
            let RoundVerb::Result { champion: named } = a.body().verb else {
                unreachable!("matched above")
            };
            s.result = Some((a.id(), named == champion));
        }
        // The arbiter's payments: after the round is decided, one to each payee it owes.
        let decided_at = if s.phase == Phase::Void {
            r.reveal_by
        } else {
            settles_at(r)
        };
        let owed = s.owed();
        for a in &actions {
            let RoundVerb::Pay { to, amount: paid } = a.body().verb else {
                continue;
            };
            let (when, id) = (at(a.event()), a.id());
            let amount = owed.iter().find(|(k, _)| *k == to).map(|(_, v)| *v);
            let why = if a.author() != arbiter || a.body().round != round.id() {
                Some("a payment by another than the arbiter")
            } else if when <= decided_at || when > now {
                Some("a payment before the round was decided, or dated after now")
            } else if amount.is_none() {
                Some("a payment to a party the round owes nothing")
            } else if amount.is_some_and(|owed| paid > owed) {
                Some("a payment of more than the round owes the party")
            } else if s.payments.iter().any(|p| p.to == to) {
                Some("a second payment to the same party: the first counts")
            } else {
                None
            };
            match (why, amount) {
                (None, Some(owed)) => s.payments.push(Payment {
                    id,
                    to,
                    amount: paid,
                    owed,
                    at: when,
                }),
                (why, _) => s.ignored.push((id, why.unwrap_or_default().to_owned())),
            }
        }
    }
    s
}

/// Each bond back to its evaluator, but one that lost a challenge (its receipt overturned, the
/// other side's standing) goes to the other side's evaluator: the first such challenge decides.
fn release_bonds(s: &mut Standing, r: &RoundEvent, disputes: &[(EventId, EventId)]) {
    let side = |id: &EventId| {
        s.receipts
            .iter()
            .find(|c| c.id == *id)
            .map(|c| (c.evaluator, c.verdict))
    };
    let mut lost: Vec<(PublicKey, PublicKey)> = Vec::new();
    if s.phase == Phase::Settled {
        for (x, y) in disputes {
            let (Some((ex, vx)), Some((ey, vy))) = (side(x), side(y)) else {
                continue;
            };
            let (loser, winner) = match (vx, vy) {
                (Verdict::Overturned, Verdict::Stands) => (ex, ey),
                (Verdict::Stands, Verdict::Overturned) => (ey, ex),
                _ => continue,
            };
            if !lost.iter().any(|(l, _)| *l == loser) {
                lost.push((loser, winner));
            }
        }
    }
    for b in &mut s.bonds {
        let (to, why) = match lost.iter().find(|(l, _)| *l == b.evaluator) {
            Some((_, winner)) => (*winner, Why::BondForfeited),
            None => (b.evaluator, Why::BondReturned),
        };
        b.to = Some(to);
        s.effects.push(Effect::Release {
            to,
            amount: r.bond,
            why,
        });
    }
}

/// The ladder and the payouts of a settled round.
fn settle(
    s: &mut Standing,
    round: &Signed<RoundEvent>,
    evaluations: &HashMap<EventId, (&Evidence, Evaluation)>,
) {
    let r = round.body();
    // Each commit's evaluation: its earliest standing receipt.
    let standing = |commit: &ObjectId| {
        s.receipts
            .iter()
            .find(|c| c.commit == *commit && c.verdict == Verdict::Stands)
            .and_then(|c| evaluations.get(&c.id))
            .map(|(_, e)| e)
    };
    let mut ladder_out = Vec::new();
    let mut unevaluated = Vec::new();
    if let Some(incumbent) = standing(&r.foundation) {
        let mut entries = Vec::new();
        for sub in &s.submissions {
            // An evaluation of other documents than the foundation's (a hostile evaluator's)
            // counts as none: it cannot be compared, and must not stop the others.
            match standing(&sub.commit) {
                Some(e) if comparable(incumbent, e).is_ok() => entries.push((sub, e)),
                _ => unevaluated.push(sub.commit),
            }
        }
        let evals: Vec<&Evaluation> = entries.iter().map(|(_, e)| *e).collect();
        // Only a foundation evaluation that is itself malformed fails here: the foundation stays.
        if let Ok(steps) = ladder(incumbent, &evals, r.margin, bootstrap(&round.id(), r)) {
            ladder_out = steps
                .into_iter()
                .map(|st| Lead {
                    submission: entries[st.index].0.clone(),
                    over: st.over,
                    reward: 0,
                })
                .collect();
        }
    } else {
        unevaluated = s.submissions.iter().map(|x| x.commit).collect();
    }
    // PoWoC: each lead is paid `rate` per 1000 bits it saved over the one before, all of
    // them together at most the pool (scaled down in proportion when more). A rate of 0 makes
    // the pool one prize, the champion's (a customer's training job: FEDSTR).
    if s.funded {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "amounts from f64 bits, floored and capped"
        )]
        {
            let last = ladder_out.len().saturating_sub(1);
            let owed: Vec<f64> = ladder_out
                .iter()
                .enumerate()
                .map(|(i, l): (usize, &Lead)| match r.rate {
                    0 if i == last => r.pool as f64,
                    0 => 0.0,
                    rate => l.over.bits_saved.max(0.0) * rate as f64 / 1000.0,
                })
                .collect();
            let total: f64 = owed.iter().sum();
            let scale = if total > r.pool as f64 {
                r.pool as f64 / total
            } else {
                1.0
            };
            let mut paid: Amount = 0;
            for (lead, owed) in ladder_out.iter_mut().zip(owed) {
                let amount = ((owed * scale).floor() as Amount).min(r.pool - paid);
                lead.reward = amount;
                paid += amount;
                if amount > 0 {
                    s.effects.push(Effect::Release {
                        to: lead.submission.author,
                        amount,
                        why: Why::Reward,
                    });
                }
            }
            if paid < r.pool {
                s.effects.push(Effect::Release {
                    to: round.author(),
                    amount: r.pool - paid,
                    why: Why::Refund,
                });
            }
        }
    }
    s.ladder = ladder_out;
    s.unevaluated = unevaluated;
}
