//! The storage order state machine against its invariants (DESIGN invariant 12): over random
//! sequences of takes, challenges, honest and dishonest answers by random keys at random times,
//! funds in = funds out + funds held, every payment follows a verified audit (or the agreed
//! rule for a period nobody audited), at most one period's price moves at a time, and the
//! deadlines alone close every order. Then the cases a server or buyer would try.

#![allow(
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test fixtures, with sizes far below 2^32"
)]

use agigit_event::market::{Opening, StoredShard};
use agigit_hash::BlobHash;
use agigit_market::audit::{Digest, root};
use agigit_market::{
    Amount, Audit, Effect, Refused, Ruling, Settled, StorageAction, StorageOrder, StorageOutcome,
    StoragePhase, StorageTerms, Time, Why,
};
use proptest::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

// Deterministic keys: 0 the buyer, 1–3 servers, 4 a stranger.
mod common;
use common::{Books, bytes, key, signer};

const BUYER: u8 = 0;
const SERVER: u8 = 1;
const STRANGER: u8 = 4;
const PRICE: Amount = 100;
const BOND: Amount = 50;
const PERIOD: Time = 1_000;
const ANSWER: Time = 200;

/// Three shards' bytes: what the buyer pushed and the server keeps.
fn shards() -> Vec<Vec<u8>> {
    [3000usize, 1024, 5000]
        .iter()
        .enumerate()
        .map(|(i, &len)| bytes(len, i as u64))
        .collect()
}

fn terms(unaudited: Ruling) -> StorageTerms {
    StorageTerms {
        buyer: key(BUYER),
        shards: shards()
            .iter()
            .map(|s| StoredShard {
                blob: BlobHash::digest(s),
                size: s.len() as u64,
                root: root(s),
            })
            .collect(),
        servers: vec![key(1), key(2), key(3)],
        price: PRICE,
        periods: 3,
        period: PERIOD,
        bond: BOND,
        take_by: 500,
        fund_within: 300,
        answer_within: ANSWER,
        challenges: 4,
        unaudited,
    }
}

/// What a server holding `held` (a shard's bytes, or `None` once deleted) answers to `nonce`
/// in `period`: `None` when it cannot prove some position.
fn answer(
    t: &StorageTerms,
    held: &[Option<Vec<u8>>],
    nonce: &Digest,
    period: u64,
) -> Option<Vec<Opening>> {
    t.answer(nonce, period, |shard| {
        let index = t.shards.iter().position(|s| s == shard).ok_or(())?;
        held[index].clone().ok_or(())
    })
    .ok()
}

fn period_of(order: &StorageOrder) -> Option<u64> {
    match order.phase() {
        StoragePhase::Running { period, .. } => Some(period),
        _ => None,
    }
}

#[derive(Clone, Debug)]
enum Step {
    Cancel,
    Take,
    Fund,
    Challenge(u8),
    /// An honest answer from what the server holds.
    Answer,
    /// An answer with one byte flipped.
    Forged,
    /// The server deletes shard `n`.
    Delete(usize),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Cancel),
        Just(Step::Take),
        Just(Step::Fund),
        Just(Step::Fund),
        any::<u8>().prop_map(Step::Challenge),
        Just(Step::Answer),
        Just(Step::Answer),
        Just(Step::Forged),
        (0usize..3).prop_map(Step::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn conservation_payment_only_after_audit_and_a_timeout_exit_from_everywhere(
        rule in prop_oneof![Just(Ruling::Pay), Just(Ruling::Refund)],
        steps in prop::collection::vec((0u8..5, arb_step(), 0u64..600), 0..30),
    ) {
        let t = terms(rule);
        let (mut order, posted) = StorageOrder::post(t.clone(), 0).expect("valid terms");
        prop_assert!(posted.is_empty(), "posting locks nothing");
        let mut books = Books::default();
        books.apply(&posted);
        let mut held: Vec<Option<Vec<u8>>> = shards().into_iter().map(Some).collect();
        let mut now: Time = 0;
        for (who, step, dt) in steps {
            now += dt;
            let by = key(who);
            let action = match step {
                Step::Delete(n) => {
                    held[n] = None;
                    continue;
                }
                Step::Cancel => StorageAction::Cancel,
                Step::Take => StorageAction::Take,
                Step::Fund => StorageAction::Fund,
                Step::Challenge(n) => StorageAction::Challenge([n; 32]),
                Step::Answer | Step::Forged => {
                    let ticked = order.tick(now).0;
                    let StoragePhase::Running { period, audit: Audit::Challenged { nonce, .. }, .. } = ticked.phase() else {
                        continue;
                    };
                    let Some(mut openings) = answer(&t, &held, &nonce, period) else {
                        continue;
                    };
                    if matches!(step, Step::Forged) {
                        openings[0].bytes[0] ^= 1;
                    }
                    StorageAction::Answer(openings)
                }
            };
            let before = order.clone();
            match order.apply(by, &action, now) {
                Ok((next, effects)) => {
                    books.apply(&effects);
                    order = next;
                }
                Err(_) => prop_assert_eq!(&order, &before, "a refused action changes nothing"),
            }
            prop_assert_eq!(books.locked, books.released + order.held(), "funds in = out + held");
            // Every payment is a period whose audit passed, or one nobody audited under the
            // rule that pays.
            let earned = order
                .settled()
                .iter()
                .filter(|s| matches!(s, Settled::Passed | Settled::Unaudited(Ruling::Pay)))
                .count();
            prop_assert_eq!(books.payments.len(), earned);
            prop_assert!(books.payments.iter().all(|p| *p == PRICE), "a payment is one period's price");
            // Escrow never holds less than the periods still to run.
            if let Some(p) = period_of(&order) {
                prop_assert_eq!(order.held(), PRICE * (3 - p) + BOND);
            }
        }
        let (end, effects) = order.tick(Time::MAX / 2);
        books.apply(&effects);
        prop_assert!(end.is_closed());
        prop_assert_eq!(end.held(), 0);
        prop_assert_eq!(books.locked, books.released);
        prop_assert!(books.payments.len() <= 3);
        for who in 0..5 {
            for action in [StorageAction::Cancel, StorageAction::Take, StorageAction::Challenge([1; 32])] {
                prop_assert_eq!(end.apply(key(who), &action, Time::MAX / 2).map(|_| ()), Err(Refused::Closed));
            }
        }
    }
}

/// A nonce whose audit in `period` reaches shard `shard` (every audit of 4 positions over 3
/// shards does; the search only documents it).
fn nonce_reaching(t: &StorageTerms, period: u64, shard: usize) -> Digest {
    (0..=255u8)
        .map(|n| [n; 32])
        .find(|n| t.positions(n, period).iter().any(|p| p.shard == shard))
        .expect("some nonce reaches the shard")
}

/// The storage run at the state machine's level: three audit periods; the server
/// deletes a shard before the third audit, cannot answer it, and is not paid for that period;
/// its bond goes to the buyer.
#[test]
fn three_periods_and_a_shard_deleted_before_the_third_audit() -> TestResult {
    let t = terms(Ruling::Refund);
    let mut held: Vec<Option<Vec<u8>>> = shards().into_iter().map(Some).collect();
    let (order, locked) = StorageOrder::post(t.clone(), 0)?;
    assert!(locked.is_empty(), "posting locks nothing");
    let (order, bond) = order.apply(key(SERVER), &StorageAction::Take, 90)?;
    assert_eq!(
        bond,
        [Effect::Lock {
            from: key(SERVER),
            amount: BOND
        }]
    );
    // Funded at 100: every period's price locked for the server; period 0 starts.
    let (mut order, locked) = order.apply(key(BUYER), &StorageAction::Fund, 100)?;
    assert_eq!(
        locked,
        [Effect::Lock {
            from: key(BUYER),
            amount: 300
        }]
    );
    let mut paid = Vec::new();
    for period in 0..3u64 {
        let start = 100 + period * PERIOD;
        if period == 2 {
            held[1] = None;
        }
        let nonce = nonce_reaching(&t, period, 1);
        let (next, _) = order.apply(key(BUYER), &StorageAction::Challenge(nonce), start + 10)?;
        order = next;
        match answer(&t, &held, &nonce, period) {
            Some(openings) => {
                let (next, none) =
                    order.apply(key(SERVER), &StorageAction::Answer(openings), start + 50)?;
                assert!(none.is_empty(), "an answer pays nothing by itself");
                order = next;
            }
            None => assert_eq!(period, 2, "only the deleted shard goes unanswered"),
        }
        let (next, effects) = order.tick(start + PERIOD);
        paid.push(effects);
        order = next;
    }
    let release = |to: u8, amount, why| Effect::Release {
        to: key(to),
        amount,
        why,
    };
    assert_eq!(paid[0], [release(SERVER, PRICE, Why::Payment)]);
    assert_eq!(paid[1], [release(SERVER, PRICE, Why::Payment)]);
    // The third audit's answer window closed unanswered: the period is refunded and the bond
    // forfeited, at the window's end — before the period's.
    assert_eq!(
        paid[2],
        [
            release(BUYER, PRICE, Why::Refund),
            release(BUYER, BOND, Why::BondForfeited)
        ]
    );
    assert_eq!(
        order.phase(),
        StoragePhase::Closed(StorageOutcome::Failed {
            server: key(SERVER),
            period: 2
        })
    );
    assert_eq!(
        order.settled(),
        [Settled::Passed, Settled::Passed, Settled::Failed]
    );
    Ok(())
}

#[test]
fn an_order_run_to_its_end_pays_each_period_and_returns_the_bond() -> TestResult {
    let t = terms(Ruling::Refund);
    let held: Vec<Option<Vec<u8>>> = shards().into_iter().map(Some).collect();
    let (order, _) = StorageOrder::post(t.clone(), 0)?;
    let (order, _) = order.apply(key(2), &StorageAction::Take, 0)?;
    let (mut order, _) = order.apply(key(BUYER), &StorageAction::Fund, 0)?;
    let mut effects = Vec::new();
    for period in 0..3u64 {
        let nonce = [period as u8; 32];
        // The challenge's step first settles the period before it (its deadline passed).
        let (o, e) = order.apply(
            key(BUYER),
            &StorageAction::Challenge(nonce),
            period * PERIOD + 1,
        )?;
        effects.extend(e);
        let openings = answer(&t, &held, &nonce, period).expect("the server holds everything");
        let (o, e) = o.apply(
            key(2),
            &StorageAction::Answer(openings),
            period * PERIOD + 2,
        )?;
        effects.extend(e);
        order = o;
    }
    let (end, e) = order.tick(3 * PERIOD);
    effects.extend(e);
    let payments = effects
        .iter()
        .filter(|e| {
            matches!(
                e,
                Effect::Release {
                    why: Why::Payment,
                    amount: PRICE,
                    ..
                }
            )
        })
        .count();
    assert_eq!(payments, 3);
    assert!(effects.contains(&Effect::Release {
        to: key(2),
        amount: BOND,
        why: Why::BondReturned
    }));
    assert_eq!(
        end.phase(),
        StoragePhase::Closed(StorageOutcome::Completed { server: key(2) })
    );
    Ok(())
}

#[test]
fn an_unaudited_period_follows_the_agreed_rule() -> TestResult {
    for (rule, to, why) in [
        (Ruling::Pay, SERVER, Why::Payment),
        (Ruling::Refund, BUYER, Why::Refund),
    ] {
        let (order, _) = StorageOrder::post(terms(rule), 0)?;
        let (order, _) = order.apply(key(SERVER), &StorageAction::Take, 0)?;
        let (order, _) = order.apply(key(BUYER), &StorageAction::Fund, 0)?;
        let (order, effects) = order.tick(PERIOD);
        assert_eq!(
            effects,
            [Effect::Release {
                to: key(to),
                amount: PRICE,
                why
            }]
        );
        assert_eq!(order.settled(), [Settled::Unaudited(rule)]);
    }
    Ok(())
}

/// What a dishonest server or a stranger would try: answering with the right bytes of another
/// leaf, with a forged byte, with too few openings, or answering for someone else.
#[test]
fn only_the_taker_answers_and_only_with_the_challenged_leaves() -> TestResult {
    let t = terms(Ruling::Refund);
    let held: Vec<Option<Vec<u8>>> = shards().into_iter().map(Some).collect();
    let (order, _) = StorageOrder::post(t.clone(), 0)?;
    let (order, _) = order.apply(key(SERVER), &StorageAction::Take, 0)?;
    let (order, _) = order.apply(key(BUYER), &StorageAction::Fund, 0)?;
    let nonce = [9; 32];
    let (order, _) = order.apply(key(BUYER), &StorageAction::Challenge(nonce), 10)?;
    let honest = answer(&t, &held, &nonce, 0).expect("held");

    // Another key, even another listed server, cannot answer.
    for who in [2, STRANGER, BUYER] {
        assert!(matches!(
            order.apply(key(who), &StorageAction::Answer(honest.clone()), 20),
            Err(Refused::NotYours { .. })
        ));
    }
    // Valid proofs, but of other leaves: those of another period's challenge.
    let other = answer(&t, &held, &nonce, 1).expect("held");
    assert_ne!(other, honest);
    assert!(matches!(
        order.apply(key(SERVER), &StorageAction::Answer(other), 20),
        Err(Refused::Unproven { .. })
    ));
    let mut forged = honest.clone();
    let last = forged.len() - 1;
    forged[last].bytes[0] ^= 0x80;
    assert!(matches!(
        order.apply(key(SERVER), &StorageAction::Answer(forged), 20),
        Err(Refused::Unproven { index, .. }) if index == last
    ));
    assert_eq!(
        order.apply(
            key(SERVER),
            &StorageAction::Answer(honest[1..].to_vec()),
            20
        ),
        Err(Refused::Openings {
            expected: 4,
            found: 3
        })
    );
    // The honest answer passes; a second one is not asked for.
    let (passed, _) = order.apply(key(SERVER), &StorageAction::Answer(honest.clone()), 20)?;
    assert!(
        passed
            .apply(key(SERVER), &StorageAction::Answer(honest), 21)
            .is_err()
    );
    Ok(())
}

#[test]
fn a_challenge_must_leave_the_server_its_answer_window_and_comes_once_a_period() -> TestResult {
    let (order, _) = StorageOrder::post(terms(Ruling::Refund), 0)?;
    assert!(matches!(
        order.apply(key(BUYER), &StorageAction::Challenge([1; 32]), 10),
        Err(Refused::NotYours { .. })
    ));
    let (order, _) = order.apply(key(SERVER), &StorageAction::Take, 0)?;
    // Not funded yet: nothing to audit, and the server's time has not started.
    assert!(matches!(
        order.apply(key(BUYER), &StorageAction::Challenge([1; 32]), 1),
        Err(Refused::NotYours { .. })
    ));
    assert!(
        order.apply(key(SERVER), &StorageAction::Fund, 0).is_err(),
        "the buyer funds"
    );
    let (order, _) = order.apply(key(BUYER), &StorageAction::Fund, 0)?;
    assert_eq!(
        order.apply(
            key(BUYER),
            &StorageAction::Challenge([1; 32]),
            PERIOD - ANSWER + 1
        ),
        Err(Refused::TooLate { period_end: PERIOD })
    );
    assert!(matches!(
        order.apply(key(STRANGER), &StorageAction::Challenge([1; 32]), 10),
        Err(Refused::NotYours { .. })
    ));
    let (order, _) = order.apply(
        key(BUYER),
        &StorageAction::Challenge([1; 32]),
        PERIOD - ANSWER,
    )?;
    assert!(matches!(
        order.apply(
            key(BUYER),
            &StorageAction::Challenge([2; 32]),
            PERIOD - ANSWER
        ),
        Err(Refused::NotYours { .. })
    ));
    // Unanswered by the window's end, which is the period's: failed.
    let (end, _) = order.tick(PERIOD);
    assert!(matches!(
        end.phase(),
        StoragePhase::Closed(StorageOutcome::Failed { period: 0, .. })
    ));
    Ok(())
}

#[test]
fn only_a_listed_server_takes_and_only_the_buyer_cancels_an_open_order() -> TestResult {
    let (order, _) = StorageOrder::post(terms(Ruling::Refund), 0)?;
    for who in [BUYER, STRANGER] {
        assert!(order.apply(key(who), &StorageAction::Take, 1).is_err());
    }
    assert!(order.apply(key(SERVER), &StorageAction::Cancel, 1).is_err());
    let (cancelled, effects) = order.apply(key(BUYER), &StorageAction::Cancel, 1)?;
    assert!(effects.is_empty(), "nothing was locked");
    assert!(cancelled.is_closed());
    // Taken, it can no longer be cancelled; untaken, it expires at take_by.
    let (taken, _) = order.apply(key(3), &StorageAction::Take, 1)?;
    assert!(taken.apply(key(BUYER), &StorageAction::Cancel, 2).is_err());
    // Taken and never funded: the bond goes back at the funding deadline.
    let (unfunded, effects) = taken.tick(1 + 300);
    assert_eq!(
        unfunded.phase(),
        StoragePhase::Closed(StorageOutcome::Unfunded { server: key(3) })
    );
    assert_eq!(
        effects,
        [Effect::Release {
            to: key(3),
            amount: BOND,
            why: Why::BondReturned
        }]
    );
    let (expired, _) = order.tick(500);
    assert_eq!(
        expired.phase(),
        StoragePhase::Closed(StorageOutcome::Expired)
    );
    Ok(())
}

#[test]
fn terms_that_could_not_run_to_an_end_are_refused() {
    let ok = terms(Ruling::Refund);
    let mut cases: Vec<(&str, StorageTerms)> = Vec::new();
    let mut t = ok.clone();
    t.answer_within = t.period;
    cases.push(("answer window as long as a period", t));
    let mut t = ok.clone();
    t.periods = 0;
    cases.push(("no period", t));
    let mut t = ok.clone();
    t.challenges = 9;
    cases.push(("nine challenges", t));
    let mut t = ok.clone();
    t.price = u64::MAX / 2;
    cases.push(("price × periods overflows", t));
    let mut t = ok.clone();
    t.servers.push(key(BUYER));
    cases.push(("the buyer as a server", t));
    let mut t = ok.clone();
    t.shards.push(t.shards[0]);
    cases.push(("a shard twice", t));
    let mut t = ok.clone();
    t.shards[0].size = 0;
    cases.push(("an empty shard", t));
    let mut t = ok.clone();
    t.period = 400 * 24 * 3600;
    cases.push(("a period over a year", t));
    let mut t = ok;
    t.take_by = 0;
    cases.push(("take_by past", t));
    for (what, t) in cases {
        assert!(StorageOrder::post(t, 0).is_err(), "{what} was accepted");
    }
    assert!(StorageOrder::post(terms(Ruling::Pay), 0).is_ok());
    // The audit roots are the shards' own.
    let t = terms(Ruling::Pay);
    for (s, bytes) in t.shards.iter().zip(shards()) {
        assert_eq!(s.root, root(&bytes));
    }
}

// ---------------------------------------------------------------------------------------------
// The fold over signed events
// ---------------------------------------------------------------------------------------------

fn signed_action(
    by: u8,
    order: nostr::prelude::EventId,
    verb: agigit_event::market::OrderVerb,
    at: u64,
) -> Result<nostr::prelude::Event, Box<dyn std::error::Error>> {
    let keys = signer(by);
    let action = agigit_event::market::OrderAction {
        order,
        verb,
        token: None,
        release: Vec::new(),
        note: String::new(),
    };
    let at = nostr::prelude::Timestamp::from_secs(at);
    Ok(agigit_event::Signed::sign(action, &keys, at)?.into_event())
}

#[test]
fn the_fold_over_signed_events_audits_and_pays_whatever_order_they_arrive_in() -> TestResult {
    use agigit_event::market::{DefaultRule, OrderVerb, StorageOrderEvent};
    use nostr::prelude::Timestamp;
    let t = terms(Ruling::Refund);
    let held: Vec<Option<Vec<u8>>> = shards().into_iter().map(Some).collect();
    let body = StorageOrderEvent {
        repo: format!("30717:{}:model", key(3).to_hex()).parse()?,
        shards: t.shards.clone(),
        servers: t.servers.clone(),
        price: PRICE,
        periods: 3,
        period: PERIOD,
        bond: BOND,
        take_by: 10_000 + 500,
        fund_within: 300,
        answer_within: ANSWER,
        challenges: 4,
        unaudited: DefaultRule::Refund,
        note: String::new(),
    };
    let buyer = signer(BUYER);
    let order = agigit_event::Signed::sign(body, &buyer, Timestamp::from_secs(10_000))?;
    let order = order.into_event();
    let id = order.id;
    let nonce = [3; 32];
    let honest = answer(&t, &held, &nonce, 0).expect("held");
    let mut forged = honest.clone();
    forged[0].bytes[0] ^= 1;
    let events = vec![
        signed_action(SERVER, id, OrderVerb::Take, 10_010)?,
        signed_action(BUYER, id, OrderVerb::Fund, 10_015)?,
        signed_action(BUYER, id, OrderVerb::Challenge(nonce), 10_020)?,
        // A stranger's answer, a forged one, and a pull order's verb: refused, nothing moves.
        signed_action(STRANGER, id, OrderVerb::Answer(honest.clone()), 10_030)?,
        signed_action(SERVER, id, OrderVerb::Answer(forged), 10_031)?,
        signed_action(SERVER, id, OrderVerb::Deliver, 10_032)?,
        signed_action(SERVER, id, OrderVerb::Answer(honest), 10_040)?,
    ];
    let mut shuffled = events.clone();
    shuffled.reverse();
    shuffled.push(events[2].clone());
    let now = Some(10_015 + PERIOD);
    let folded = agigit_market::fold_storage(&order, events, now)?;
    assert_eq!(folded, agigit_market::fold_storage(&order, shuffled, now)?);
    assert_eq!(folded.order.settled(), [Settled::Passed]);
    assert!(folded.effects.contains(&Effect::Release {
        to: key(SERVER),
        amount: PRICE,
        why: Why::Payment
    }));
    let refused: Vec<&Refused> = folded.refused.iter().map(|(_, r)| r).collect();
    assert!(matches!(refused[0], Refused::NotYours { .. }));
    assert!(matches!(refused[1], Refused::Unproven { index: 0, .. }));
    assert_eq!(refused[2], &Refused::NotThisKind { action: "deliver" });
    // A storage order is not a pull order.
    assert!(agigit_market::fold(&order, [], None).is_err());
    Ok(())
}

#[test]
fn a_release_is_the_buyers_consent_and_moves_nothing_the_fold_does_not_owe() -> TestResult {
    let t = terms(Ruling::Refund);
    let (order, _) = StorageOrder::post(t, 0)?;
    // Nothing is locked before the order is funded: nothing to release.
    assert!(order.apply(key(BUYER), &StorageAction::Release, 1).is_err());
    let (order, _) = order.apply(key(2), &StorageAction::Take, 1)?;
    assert!(order.apply(key(BUYER), &StorageAction::Release, 2).is_err());
    let (order, _) = order.apply(key(BUYER), &StorageAction::Fund, 2)?;
    // The buyer's release changes neither the phase nor what escrow holds.
    let (same, effects) = order.apply(key(BUYER), &StorageAction::Release, 3)?;
    assert_eq!(same, order);
    assert!(effects.is_empty());
    // Nobody else's.
    for who in [key(2), key(STRANGER)] {
        assert!(matches!(
            order.apply(who, &StorageAction::Release, 3),
            Err(Refused::NotYours { .. })
        ));
    }
    // After the last period (all unaudited, refunded) the order has completed; a release
    // still applies and changes nothing.
    let (end, _) = order.tick(2 + 3 * PERIOD);
    assert!(matches!(
        end.phase(),
        StoragePhase::Closed(StorageOutcome::Completed { .. })
    ));
    let (after, effects) = end.apply(key(BUYER), &StorageAction::Release, 3 + 3 * PERIOD)?;
    assert_eq!(after, end);
    assert!(effects.is_empty());
    Ok(())
}

/// A server answers from its own copies through `StorageTerms::answer`: each challenged shard
/// read once, its openings in the challenge's order and accepted by the state machine; a copy
/// that rotted is caught before anything is signed.
#[test]
fn an_answer_reads_each_challenged_shard_once_and_refuses_a_rotted_copy() -> TestResult {
    let t = terms(Ruling::Refund);
    let held = shards();
    let (order, _) = StorageOrder::post(t.clone(), 0)?;
    let (order, _) = order.apply(key(SERVER), &StorageAction::Take, 10)?;
    let (order, _) = order.apply(key(BUYER), &StorageAction::Fund, 20)?;
    let nonce = [7u8; 32];
    let (order, _) = order.apply(key(BUYER), &StorageAction::Challenge(nonce), 30)?;
    let mut reads = Vec::new();
    let openings = t.answer(&nonce, 0, |shard| {
        reads.push(shard.blob);
        let index = t.shards.iter().position(|s| s == shard).ok_or("unknown")?;
        Ok::<_, &str>(held[index].clone())
    })?;
    let mut distinct = reads.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        reads.len(),
        distinct.len(),
        "each shard read once: {reads:?}"
    );
    assert_eq!(openings.len() as u64, t.challenges);
    let (order, paid) = order.apply(key(SERVER), &StorageAction::Answer(openings), 40)?;
    assert!(
        paid.is_empty(),
        "a period is paid at its end, not at the answer"
    );
    assert!(matches!(
        order.phase(),
        StoragePhase::Running {
            audit: Audit::Passed { .. },
            ..
        }
    ));

    // One flipped byte in a challenged shard: no answer, and the error names the shard.
    let first = t.positions(&nonce, 0)[0].shard;
    let rotted = t.answer(&nonce, 0, |shard| {
        let index = t.shards.iter().position(|s| s == shard).ok_or("unknown")?;
        let mut copy = held[index].clone();
        if index == first {
            copy[0] ^= 1;
        }
        Ok::<_, &str>(copy)
    });
    match rotted {
        Err(agigit_market::AnswerError::Mismatch { shard }) => {
            assert_eq!(shard, t.shards[first]);
        }
        other => panic!("a rotted copy must not be answered from: {other:?}"),
    }
    // A shard the server cannot read: its error, as it gave it.
    let lost = t.answer(&nonce, 0, |_| Err::<Vec<u8>, _>("deleted"));
    assert!(matches!(
        lost,
        Err(agigit_market::AnswerError::Read("deleted"))
    ));
    Ok(())
}
