//! The pull order state machine against its invariants (DESIGN invariant 12): over random
//! sequences of actions by random keys at random times, funds in = funds out + funds held,
//! nothing is paid twice, a payment follows only the buyer's confirmation or a ruling, and from
//! every state reached the deadlines alone close the order. Then one test per defect of the
//! seed documents' contract, showing it cannot happen here.

#![allow(clippy::expect_used, reason = "test fixtures")]

use agigit_hash::ObjectId;
use agigit_market::pull::MAX_WINDOW;
use agigit_market::{
    Action, Amount, Effect, Outcome, Phase, PullOrder, PullTerms, Refused, Ruling, TermsError,
    Time, Why,
};
use proptest::prelude::*;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

// Deterministic keys: 0 the buyer, 1–3 relays, 4 the arbiter, 5 a stranger.
mod common;
use common::{Books, key, signer};

const BUYER: u8 = 0;
const RELAY: u8 = 1;
const ARBITER: u8 = 4;
const STRANGER: u8 = 5;

fn terms(bond: Amount, arbiter: bool, rule: Ruling) -> PullTerms {
    PullTerms {
        buyer: key(BUYER),
        model: ObjectId::digest(b"the model's commit"),
        relays: vec![key(1), key(2), key(3)],
        price: 1_000,
        tip: 50,
        bond,
        arbiter: arbiter.then(|| key(ARBITER)),
        take_by: 1_000,
        fund_within: 400,
        deliver_within: 500,
        confirm_within: 300,
        arbitrate_within: 200,
        default_rule: rule,
    }
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0u64..500).prop_map(Action::Raise),
        Just(Action::Cancel),
        Just(Action::Take),
        Just(Action::Fund),
        Just(Action::Fund),
        Just(Action::Deliver),
        Just(Action::Confirm),
        Just(Action::Dispute),
        Just(Action::Rule(Ruling::Pay)),
        Just(Action::Rule(Ruling::Refund)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn conservation_no_double_payment_and_a_timeout_exit_from_everywhere(
        bond in prop_oneof![Just(0u64), 1u64..10_000],
        arbiter in any::<bool>(),
        rule in prop_oneof![Just(Ruling::Pay), Just(Ruling::Refund)],
        steps in prop::collection::vec((0u8..6, arb_action(), 0u64..400), 0..24),
    ) {
        // A default rule that pays needs an arbiter to sign it.
        let rule = if arbiter { rule } else { Ruling::Refund };
        let (mut order, posted) = PullOrder::post(terms(bond, arbiter, rule), 0).expect("valid terms");
        prop_assert!(posted.is_empty(), "posting locks nothing");
        let mut books = Books::default();
        books.apply(&posted);
        let mut now: Time = 0;
        for (who, action, dt) in steps {
            now += dt;
            let by = key(who);
            let before = order.clone();
            match order.apply(by, action, now) {
                Ok((next, effects)) => {
                    books.apply(&effects);
                    let paid = effects.iter().any(|e| matches!(e, Effect::Release { why: Why::Payment, .. }));
                    if paid {
                        // A payment comes from the buyer's confirmation, an arbiter's ruling or
                        // the default rule at a dispute's timeout — never from a relay's word.
                        let by_rule = matches!(before.tick(now).0.phase(), Phase::Closed(Outcome::Paid { .. }));
                        prop_assert!(
                            by_rule
                                || (action == Action::Confirm && who == BUYER)
                                || (action == Action::Rule(Ruling::Pay) && arbiter && who == ARBITER),
                            "paid on {action:?} by key {who}"
                        );
                    }
                    order = next;
                }
                Err(_) => {
                    // Refused: nothing moved.
                    prop_assert_eq!(&order, &before);
                }
            }
            prop_assert_eq!(books.locked, books.released + order.held(), "funds in = out + held");
            prop_assert!(books.payments.len() <= 1, "paid twice");
        }
        // From wherever it is, the deadlines alone close it, and release everything.
        let (end, effects) = order.tick(Time::MAX / 2);
        books.apply(&effects);
        prop_assert!(end.is_closed());
        prop_assert_eq!(end.held(), 0);
        prop_assert_eq!(books.locked, books.released);
        prop_assert!(books.payments.len() <= 1);
        // A closed order takes no action from anyone.
        for who in 0..6 {
            for action in [Action::Raise(1), Action::Cancel, Action::Take, Action::Fund, Action::Deliver, Action::Confirm, Action::Dispute, Action::Rule(Ruling::Pay)] {
                prop_assert_eq!(end.apply(key(who), action, Time::MAX / 2).map(|_| ()), Err(Refused::Closed));
            }
        }
    }

    #[test]
    fn deadlines_are_at_most_a_year_and_every_terms_check_is_an_error_not_a_panic(
        take_by in any::<u64>(), deliver in any::<u64>(), now in any::<u64>(), price in any::<u64>(), tip in any::<u64>(),
    ) {
        let mut t = terms(0, false, Ruling::Refund);
        t.take_by = take_by;
        t.deliver_within = deliver;
        t.price = price;
        t.tip = tip;
        if let Ok((order, _)) = PullOrder::post(t, now) {
            let (deadline, _) = order.next_deadline().expect("open");
            prop_assert!(deadline > now && deadline - now <= MAX_WINDOW);
        }
    }
}

fn posted(bond: Amount) -> Result<PullOrder, TermsError> {
    Ok(PullOrder::post(terms(bond, true, Ruling::Refund), 0)?.0)
}

/// Posted, taken by [`RELAY`] at 10 and funded by the buyer at 15.
fn funded(bond: Amount) -> TestResult<PullOrder> {
    let (order, _) = posted(bond)?.apply(key(RELAY), Action::Take, 10)?;
    let (order, effects) = order.apply(key(BUYER), Action::Fund, 15)?;
    assert_eq!(
        effects,
        [Effect::Lock {
            from: key(BUYER),
            amount: 1_050
        }]
    );
    Ok(order)
}

// ---------------------------------------------------------------------------------------------
// The seed's contract, defect by defect
// ---------------------------------------------------------------------------------------------

/// Seed defect: "completion checks no caller, so anyone can move an order into a state nobody
/// can leave". Here only the buyer confirms, and every other key's confirmation (or ruling, or
/// cancel) is refused.
#[test]
fn seed_defect_completion_by_anyone_is_refused() -> TestResult {
    let (order, _) = funded(0)?.apply(key(RELAY), Action::Deliver, 20)?;
    for who in [RELAY, 2, ARBITER, STRANGER] {
        assert!(matches!(
            order.apply(key(who), Action::Confirm, 30),
            Err(Refused::NotYours { .. })
        ));
    }
    assert!(matches!(
        order.apply(key(STRANGER), Action::Rule(Ruling::Pay), 30),
        Err(Refused::NotYours { .. })
    ));
    Ok(())
}

/// Seed defect: "the relay supplies its own proof". A relay's delivery pays nothing: the price
/// stays in escrow until the buyer confirms or the arbiter rules.
#[test]
fn seed_defect_a_relays_own_proof_pays_nothing() -> TestResult {
    let (order, effects) = funded(100)?.apply(key(RELAY), Action::Deliver, 20)?;
    assert!(effects.is_empty());
    assert_eq!(order.held(), 1_050 + 100);
    // Delivering again is not the relay's to do either.
    assert!(order.apply(key(RELAY), Action::Deliver, 21).is_err());
    // Silence after delivery goes to dispute, and with this order's default rule (refund) the
    // relay is not paid on its own word.
    let (end, effects) = order.tick(20 + 300 + 200);
    assert_eq!(
        end.phase(),
        Phase::Closed(Outcome::Refunded { relay: key(RELAY) })
    );
    assert!(effects.contains(&Effect::Release {
        to: key(BUYER),
        amount: 1_050,
        why: Why::Refund
    }));
    Ok(())
}

/// Seed defect: "the down payment leaves escrow at take_order, before anything is delivered".
/// Taking moves nothing out of escrow (it locks the relay's bond in); funding locks the
/// buyer's price for the taker, and a relay cannot deliver an order that is not funded.
#[test]
fn seed_defect_nothing_leaves_escrow_at_take() -> TestResult {
    let (order, effects) = posted(100)?.apply(key(RELAY), Action::Take, 10)?;
    assert_eq!(
        effects,
        [Effect::Lock {
            from: key(RELAY),
            amount: 100
        }]
    );
    assert_eq!((order.held(), order.owed()), (100, 1_050));
    assert!(order.apply(key(RELAY), Action::Deliver, 11).is_err());
    assert!(
        order.apply(key(RELAY), Action::Fund, 11).is_err(),
        "the buyer funds"
    );
    let order = funded(100)?;
    assert_eq!(order.held(), 1_050 + 100);
    Ok(())
}

/// Seed defect: "no state has a cancel, expiry or refund; an order nobody takes, or a relay that
/// takes and vanishes, keeps the user's coins for good". Here: cancel before take; expiry at
/// `take_by`; abandonment at the delivery deadline, with the bond to the buyer.
#[test]
fn seed_defect_an_untaken_or_abandoned_order_gives_the_funds_back() -> TestResult {
    let order = posted(100)?;
    // Nothing is locked before a relay takes the order and the buyer funds it: a cancel or an
    // expiry has nothing to give back.
    let (cancelled, effects) = order.apply(key(BUYER), Action::Cancel, 5)?;
    assert_eq!(cancelled.phase(), Phase::Closed(Outcome::Cancelled));
    assert!(effects.is_empty());
    let (expired, effects) = order.tick(999);
    assert_eq!(expired.phase(), Phase::Open, "not before the deadline");
    assert!(effects.is_empty());
    let (expired, effects) = order.tick(1_000);
    assert_eq!(expired.phase(), Phase::Closed(Outcome::Expired));
    assert!(effects.is_empty());
    // A take after the deadline finds the order expired.
    assert_eq!(
        order.apply(key(RELAY), Action::Take, 1_000).map(|_| ()),
        Err(Refused::Closed)
    );
    let (taken, _) = order.apply(key(RELAY), Action::Take, 100)?;
    // Taken and never funded: the relay's bond goes back at the funding deadline.
    let (unfunded, effects) = taken.tick(100 + 400);
    assert_eq!(
        unfunded.phase(),
        Phase::Closed(Outcome::Unfunded { relay: key(RELAY) })
    );
    assert_eq!(
        effects,
        [Effect::Release {
            to: key(RELAY),
            amount: 100,
            why: Why::BondReturned
        }]
    );
    let (taken, _) = taken.apply(key(BUYER), Action::Fund, 150)?;
    let (abandoned, effects) = taken.tick(150 + 500);
    assert_eq!(
        abandoned.phase(),
        Phase::Closed(Outcome::Abandoned { relay: key(RELAY) })
    );
    assert_eq!(
        effects,
        [
            Effect::Release {
                to: key(BUYER),
                amount: 1_050,
                why: Why::Refund
            },
            Effect::Release {
                to: key(BUYER),
                amount: 100,
                why: Why::BondForfeited
            }
        ]
    );
    // Once taken, the buyer cannot cancel (the relay may be serving already): it waits for the
    // delivery deadline instead.
    assert!(taken.apply(key(BUYER), Action::Cancel, 200).is_err());
    Ok(())
}

/// Seed defect: "take_order checks a relay_pubkey argument against the order's list, not the
/// caller's identity". Here the taker is the signer: a stranger's take is refused, and the
/// order, once taken, is the signer's alone.
#[test]
fn seed_defect_only_a_listed_relay_can_take_and_then_only_it_delivers() -> TestResult {
    let order = posted(0)?;
    for who in [STRANGER, BUYER, ARBITER] {
        assert!(matches!(
            order.apply(key(who), Action::Take, 10),
            Err(Refused::NotYours { .. })
        ));
    }
    let (taken, _) = order.apply(key(2), Action::Take, 10)?;
    assert_eq!(
        taken.phase(),
        Phase::Taken {
            relay: key(2),
            at: 10
        }
    );
    // Another listed relay cannot take it again, nor deliver for the taker.
    assert!(taken.apply(key(RELAY), Action::Take, 11).is_err());
    assert!(taken.apply(key(RELAY), Action::Deliver, 11).is_err());
    Ok(())
}

#[test]
fn a_dispute_is_the_arbiters_and_its_ruling_is_final() -> TestResult {
    let (order, _) = funded(100)?.apply(key(RELAY), Action::Deliver, 20)?;
    let (disputed, _) = order.apply(key(BUYER), Action::Dispute, 30)?;
    assert!(matches!(disputed.phase(), Phase::Disputed { at: 30, .. }));
    let (paid, effects) = disputed.apply(key(ARBITER), Action::Rule(Ruling::Pay), 40)?;
    assert_eq!(
        paid.phase(),
        Phase::Closed(Outcome::Paid { relay: key(RELAY) })
    );
    assert_eq!(
        effects,
        [
            Effect::Release {
                to: key(RELAY),
                amount: 1_050,
                why: Why::Payment
            },
            Effect::Release {
                to: key(RELAY),
                amount: 100,
                why: Why::BondReturned
            }
        ]
    );
    assert_eq!(
        paid.apply(key(ARBITER), Action::Rule(Ruling::Refund), 41)
            .map(|_| ()),
        Err(Refused::Closed)
    );
    Ok(())
}

#[test]
fn raises_go_to_whoever_escrow_pays_and_terms_that_cannot_run_are_refused() -> TestResult {
    let (order, effects) = posted(0)?.apply(key(BUYER), Action::Raise(200), 5)?;
    assert_eq!((order.owed(), order.held()), (1_250, 0));
    assert!(
        effects.is_empty(),
        "a raise is locked when the order is funded"
    );
    let (order, _) = order.apply(key(RELAY), Action::Take, 6)?;
    let (funded, effects) = order.apply(key(BUYER), Action::Fund, 7)?;
    assert_eq!(
        effects,
        [Effect::Lock {
            from: key(BUYER),
            amount: 1_250
        }]
    );
    assert!(funded.apply(key(BUYER), Action::Raise(1), 8).is_err());
    assert!(order.apply(key(STRANGER), Action::Raise(1), 6).is_err());
    assert_eq!(
        order.apply(key(BUYER), Action::Raise(0), 6).map(|_| ()),
        Err(Refused::Zero)
    );
    let mut t = terms(0, false, Ruling::Pay);
    t.relays.push(key(1));
    assert!(matches!(
        PullOrder::post(t, 0),
        Err(TermsError::Repeated { .. })
    ));
    let mut t = terms(0, false, Ruling::Pay);
    t.relays.clear();
    assert!(matches!(
        PullOrder::post(t, 0),
        Err(TermsError::Relays { count: 0 })
    ));
    let mut t = terms(0, true, Ruling::Pay);
    t.arbiter = Some(key(RELAY));
    assert!(matches!(
        PullOrder::post(t, 0),
        Err(TermsError::Conflict { .. })
    ));
    let t = terms(0, false, Ruling::Pay);
    assert!(matches!(
        PullOrder::post(t, 0),
        Err(TermsError::Conflict { .. })
    ));
    let mut t = terms(0, true, Ruling::Pay);
    t.take_by = 0;
    assert!(matches!(
        PullOrder::post(t, 0),
        Err(TermsError::Deadline { .. })
    ));
    let mut t = terms(0, true, Ruling::Pay);
    t.price = u64::MAX;
    assert!(matches!(PullOrder::post(t, 0), Err(TermsError::Overflow)));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The fold over signed events
// ---------------------------------------------------------------------------------------------

fn action_event(
    by: u8,
    order: nostr::prelude::EventId,
    verb: agigit_event::market::OrderVerb,
    at: u64,
) -> Result<nostr::prelude::Event, Box<dyn std::error::Error>> {
    use agigit_event::market::OrderAction;
    Ok(agigit_event::Signed::sign(
        OrderAction {
            order,
            verb,
            token: None,
            release: Vec::new(),
            note: String::new(),
        },
        &signer(by),
        nostr::prelude::Timestamp::from_secs(at),
    )?
    .into_event())
}

#[test]
fn the_fold_gives_one_state_whatever_order_the_events_arrive_in() -> TestResult {
    use agigit_event::market::{DefaultRule, OrderVerb, PullOrderEvent};
    use nostr::prelude::Timestamp;
    let body = PullOrderEvent {
        repo: format!("30717:{}:model", key(3).to_hex()).parse()?,
        model: ObjectId::digest(b"commit"),
        relays: vec![key(1), key(2)],
        price: 1_000,
        tip: 0,
        bond: 100,
        arbiter: None,
        take_by: 2_000,
        fund_within: 600,
        deliver_within: 600,
        confirm_within: 600,
        arbitrate_within: 600,
        default_rule: DefaultRule::Refund,
        note: "a model, please".to_owned(),
    };
    let order =
        agigit_event::Signed::sign(body, &signer(BUYER), Timestamp::from_secs(1_000))?.into_event();
    let other_order = nostr::prelude::EventId::from_byte_array([9; 32]);
    let events = vec![
        action_event(STRANGER, order.id, OrderVerb::Take, 1_005)?,
        action_event(RELAY, order.id, OrderVerb::Take, 1_010)?,
        action_event(BUYER, order.id, OrderVerb::Fund, 1_015)?,
        action_event(RELAY, order.id, OrderVerb::Deliver, 1_020)?,
        action_event(BUYER, order.id, OrderVerb::Confirm, 1_030)?,
        action_event(BUYER, other_order, OrderVerb::Cancel, 1_040)?,
        action_event(RELAY, order.id, OrderVerb::Take, 900)?,
    ];
    let mut shuffled = events.clone();
    shuffled.reverse();
    shuffled.push(events[2].clone()); // the same event from a second relay
    let folded = agigit_market::fold(&order, events, None)?;
    assert_eq!(folded, agigit_market::fold(&order, shuffled, None)?);
    assert_eq!(
        folded.order.phase(),
        Phase::Closed(Outcome::Paid { relay: key(RELAY) })
    );
    assert_eq!(
        folded.effects,
        [
            Effect::Lock {
                from: key(RELAY),
                amount: 100
            },
            Effect::Lock {
                from: key(BUYER),
                amount: 1_000
            },
            Effect::Release {
                to: key(RELAY),
                amount: 1_000,
                why: Why::Payment
            },
            Effect::Release {
                to: key(RELAY),
                amount: 100,
                why: Why::BondReturned
            },
        ]
    );
    assert_eq!(folded.refused.len(), 1, "the stranger's take");
    assert_eq!(
        folded.ignored.len(),
        2,
        "another order's action, one dated before the order"
    );

    // Taken, funded and never delivered: at the deadline, the buyer has its funds and the bond.
    let abandoned = agigit_market::fold(
        &order,
        [
            action_event(2, order.id, OrderVerb::Take, 1_100)?,
            action_event(BUYER, order.id, OrderVerb::Fund, 1_110)?,
        ],
        Some(1_110 + 600),
    )?;
    assert_eq!(
        abandoned.order.phase(),
        Phase::Closed(Outcome::Abandoned { relay: key(2) })
    );
    // An order event that is not one is an error, not a panic.
    assert!(agigit_market::fold(&events_first(&abandoned, &order), [], None).is_err());
    Ok(())
}

/// An action event standing where the order should (anything not kind 1721).
fn events_first(
    _folded: &agigit_market::Folded,
    order: &nostr::prelude::Event,
) -> nostr::prelude::Event {
    action_event(
        BUYER,
        order.id,
        agigit_event::market::OrderVerb::Cancel,
        1_000,
    )
    .expect("signs")
}
