//! A round from announcement to settlement, folded from signed events, on evaluations of real
//! models: a fork whose head was trained in candle on the training text, a fork with noise
//! added, and a later copy of the trained fork. The trained fork is champion and the only one
//! paid; a false receipt is challenged on the documents it lies about and overturned; a test set
//! never revealed voids the round and the pool goes back.

#![cfg(feature = "evaluate")]
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "tests"
)]

mod common;

use agigit_eval::round::{
    Evidence, Phase, Standing, Verdict, bond_escrow, fold, payment_escrow, pool_escrow, settles_at,
};
use agigit_eval::toy::{self, Toy};
use agigit_eval::train::train_head;
use agigit_eval::{EvalOptions, Evaluation, evaluate};
use agigit_event::nostr::prelude::{Keys, PublicKey, SecretKey, Timestamp};
use agigit_event::round::{RoundAction, RoundEvent, RoundVerb, seal};
use agigit_event::{RepoCoordinate, RepoId, Signed};
use agigit_hash::ObjectId;
use agigit_market::ledger::{Ledger, MemoryMint};
use agigit_market::{Effect, Why};
use common::{documents, steps, with_head, with_noise};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn keys(n: u8) -> Keys {
    Keys::new(SecretKey::from_slice(&[n + 1; 32]).expect("a key"))
}

fn repo(owner: &Keys, id: &str) -> RepoCoordinate {
    RepoCoordinate::new(owner.public_key(), RepoId::new(id).expect("an id"))
}

fn id(n: u8) -> ObjectId {
    ObjectId::from_bytes([n; 32])
}

const SUBMIT_BY: u64 = 1000;
const REVEAL_BY: u64 = 2000;
const EVALUATE_BY: u64 = 3000;
const WINDOW: u64 = 500;
const POOL: u64 = 10_000;
const BOND: u64 = 500;

struct Models {
    base: Evaluation,
    trained: Evaluation,
    noisy: Evaluation,
}

/// The three evaluations on the held-out set, from models built and trained here.
fn models() -> Result<Models, Box<dyn std::error::Error>> {
    let base = toy::model(Toy::Random(7), "qwen2", Some(u32::from(b' ')));
    let train = documents("train/", 8, 160, 1);
    let held_out = documents("test/", 24, 96, 2);
    let options = EvalOptions::with_context(64);
    let trained = train_head(&base, &train, steps(60))?;
    let fork = with_head(&base, trained.lm_head);
    let noisy = with_noise(&base, 99, 0.5);
    Ok(Models {
        base: evaluate(&base, &held_out, options)?,
        trained: evaluate(&fork, &held_out, options)?,
        noisy: evaluate(&noisy, &held_out, options)?,
    })
}

/// `e` with every document renamed (its losses, root and totals consistent).
fn renamed(e: &Evaluation) -> Evaluation {
    let mut e = e.clone();
    for d in &mut e.documents {
        d.name.insert_str(0, "other/");
    }
    e
}

struct World {
    organizer: Keys,
    arbiter: Keys,
    evaluator: Keys,
    liar: Keys,
    alice: Keys,
    bob: Keys,
    carol: Keys,
    round: Signed<RoundEvent>,
    salt: [u8; 32],
    data: ObjectId,
}

fn world() -> World {
    world_with(0)
}

/// The world, its round asking each evaluator for a bond of `bond`.
fn world_with(bond: u64) -> World {
    let organizer = keys(1);
    let (arbiter, evaluator, liar) = (keys(2), keys(3), keys(4));
    let (alice, bob, carol) = (keys(5), keys(6), keys(7));
    let (salt, data) = ([9; 32], id(42));
    let round = RoundEvent {
        repo: repo(&organizer, "foundation"),
        foundation: id(1),
        metric: "bits-per-byte".into(),
        sealed: seal(&data, &salt),
        context: 64,
        submit_by: SUBMIT_BY,
        reveal_by: REVEAL_BY,
        evaluate_by: EVALUATE_BY,
        challenge_within: WINDOW,
        pool: POOL,
        rate: 100,
        margin: 0.01,
        samples: 1000,
        confidence: 95,
        evaluators: vec![evaluator.public_key(), liar.public_key()],
        arbiter: Some(arbiter.public_key()),
        bond,
        note: String::new(),
    };
    let round = Signed::sign(round, &organizer, Timestamp::from(10)).expect("sign");
    World {
        organizer,
        arbiter,
        evaluator,
        liar,
        alice,
        bob,
        carol,
        round,
        salt,
        data,
    }
}

fn act(w: &World, by: &Keys, at: u64, verb: RoundVerb) -> Signed<RoundAction> {
    // Stand-ins for what a ledger writes (the in-memory ledger's are not strings).
    let token = match verb {
        RoundVerb::Fund => Some("memory:pool".to_owned()),
        RoundVerb::Bond => Some("memory:bond".to_owned()),
        RoundVerb::Pay { .. } => Some("memory:payment".to_owned()),
        _ => None,
    };
    let release = match verb {
        RoundVerb::Pay { .. } => vec!["ab".repeat(64)],
        _ => Vec::new(),
    };
    let action = RoundAction {
        round: w.round.id(),
        verb,
        token,
        release,
        note: String::new(),
    };
    Signed::sign(action, by, Timestamp::from(at)).expect("sign")
}

/// The releases of `s` for these reasons: payee, amount, reason.
fn releases(s: &Standing, whys: &[Why]) -> Vec<(PublicKey, u64, Why)> {
    s.effects
        .iter()
        .filter_map(|e| match *e {
            Effect::Release { to, amount, why } if whys.contains(&why) => Some((to, amount, why)),
            _ => None,
        })
        .collect()
}

/// The same actions on another round `to` (re-signed by their authors, at their times).
fn moved(
    w: &World,
    to: &Signed<RoundEvent>,
    actions: &[Signed<RoundAction>],
) -> Vec<Signed<RoundAction>> {
    let signers = [
        &w.organizer,
        &w.arbiter,
        &w.evaluator,
        &w.liar,
        &w.alice,
        &w.bob,
        &w.carol,
    ];
    actions
        .iter()
        .map(|a| {
            let by = signers
                .iter()
                .find(|k| k.public_key() == a.author())
                .expect("a signer of the world");
            let mut body = a.body().clone();
            body.round = to.id();
            Signed::sign(body, by, a.created_at()).expect("sign")
        })
        .collect()
}

fn receipt(
    w: &World,
    by: &Keys,
    at: u64,
    e: &Evaluation,
    repo: RepoCoordinate,
    commit: ObjectId,
) -> Evidence {
    let body = e.receipt(repo, commit, w.data, "agigit test", "");
    Evidence {
        receipt: Signed::sign(body, by, Timestamp::from(at)).expect("sign"),
        losses: e.documents.clone(),
    }
}

#[test]
fn the_trained_fork_is_champion_and_paid_noise_and_a_copy_earn_nothing() -> TestResult {
    let m = models()?;
    let w = world();
    let (fa, fb, fc) = (
        repo(&w.alice, "fork"),
        repo(&w.bob, "fork"),
        repo(&w.carol, "fork"),
    );
    let actions = vec![
        act(&w, &w.organizer, 20, RoundVerb::Fund),
        act(
            &w,
            &w.bob,
            100,
            RoundVerb::Submit {
                repo: fb.clone(),
                commit: id(3),
            },
        ),
        act(
            &w,
            &w.alice,
            200,
            RoundVerb::Submit {
                repo: fa.clone(),
                commit: id(2),
            },
        ),
        // Carol copies Alice's weights into her own commit, later.
        act(
            &w,
            &w.carol,
            300,
            RoundVerb::Submit {
                repo: fc.clone(),
                commit: id(4),
            },
        ),
        // Alice's commit again, by Carol: the earliest submission of a commit counts.
        act(
            &w,
            &w.carol,
            301,
            RoundVerb::Submit {
                repo: fa.clone(),
                commit: id(2),
            },
        ),
        // Too late.
        act(
            &w,
            &w.carol,
            SUBMIT_BY + 1,
            RoundVerb::Submit {
                repo: fc.clone(),
                commit: id(5),
            },
        ),
        // A reveal that does not open the seal, then the right one.
        act(
            &w,
            &w.organizer,
            1100,
            RoundVerb::Reveal {
                data: id(43),
                salt: w.salt,
                commit: id(9),
            },
        ),
        act(
            &w,
            &w.organizer,
            1200,
            RoundVerb::Reveal {
                data: w.data,
                salt: w.salt,
                commit: id(9),
            },
        ),
    ];
    let evidence = vec![
        receipt(
            &w,
            &w.evaluator,
            2100,
            &m.base,
            w.round.body().repo.clone(),
            id(1),
        ),
        // Bob's fork evaluated on documents of the evaluator's own naming: not comparable with
        // the foundation's, so it counts as unevaluated and stops nobody else.
        receipt(&w, &w.evaluator, 2200, &renamed(&m.noisy), fb, id(3)),
        receipt(&w, &w.evaluator, 2300, &m.trained, fa, id(2)),
        receipt(&w, &w.evaluator, 2400, &m.trained, fc, id(4)),
        // Dated before the reveal: nobody could have had the data.
        receipt(
            &w,
            &w.evaluator,
            1150,
            &m.base,
            w.round.body().repo.clone(),
            id(1),
        ),
    ];

    let during = fold(&w.round, &actions, &evidence, 2500);
    assert_eq!(during.phase, Phase::Evaluation);
    assert_eq!(during.ladder, []);
    assert_eq!(
        during.effects,
        [Effect::Lock {
            from: w.organizer.public_key(),
            amount: POOL
        }]
    );

    let s = fold(
        &w.round,
        &actions,
        &evidence,
        settles_at(w.round.body()) + 1,
    );
    assert_eq!(s.phase, Phase::Settled);
    assert_eq!(
        s.submissions.iter().map(|x| x.commit).collect::<Vec<_>>(),
        [id(3), id(2), id(4)]
    );
    assert_eq!(s.revealed, Some((w.data, id(9))));
    assert_eq!(s.receipts.len(), 4);
    assert!(s.receipts.iter().all(|r| r.verdict == Verdict::Stands));
    assert_eq!(s.ladder.len(), 1, "{:?}", s.ladder);
    let champion = s.champion().expect("a champion");
    assert_eq!(
        (champion.commit, champion.author),
        (id(2), w.alice.public_key())
    );
    // Paid 100 per 1000 bits saved, capped by the pool.
    let saved = s.ladder[0].over.bits_saved;
    let owed = ((saved * 100.0 / 1000.0).floor() as u64).min(POOL);
    assert!(owed > 0);
    assert_eq!(s.ladder[0].reward, owed);
    assert_eq!(
        s.effects,
        [
            Effect::Lock {
                from: w.organizer.public_key(),
                amount: POOL
            },
            Effect::Release {
                to: w.alice.public_key(),
                amount: owed,
                why: Why::Reward
            },
            Effect::Release {
                to: w.organizer.public_key(),
                amount: POOL - owed,
                why: Why::Refund
            },
        ]
    );
    assert_eq!(s.unevaluated, [id(3)]);
    assert!(s.ignored.len() >= 4, "{:?}", s.ignored);

    // The same round as one prize (rate 0: a customer's training job): the champion takes the
    // whole pool, nothing comes back.
    let prize = Signed::sign(
        RoundEvent {
            rate: 0,
            ..w.round.body().clone()
        },
        &w.organizer,
        Timestamp::from(10),
    )?;
    let p = fold(
        &prize,
        &moved(&w, &prize, &actions),
        &evidence,
        settles_at(prize.body()) + 1,
    );
    assert_eq!(p.champion().map(|c| c.commit), Some(id(2)));
    assert_eq!(p.ladder[0].reward, POOL);
    assert_eq!(p.owed(), [(w.alice.public_key(), POOL)]);

    // The organizer's result is checked against the fold.
    let mut with_result = actions.clone();
    with_result.push(act(
        &w,
        &w.organizer,
        4100,
        RoundVerb::Result {
            champion: Some(id(2)),
        },
    ));
    let s2 = fold(&w.round, &with_result, &evidence, 4200);
    assert_eq!(s2.result.map(|r| r.1), Some(true));
    let mut wrong = actions.clone();
    wrong.push(act(
        &w,
        &w.organizer,
        4100,
        RoundVerb::Result {
            champion: Some(id(4)),
        },
    ));
    assert_eq!(
        fold(&w.round, &wrong, &evidence, 4200).result.map(|r| r.1),
        Some(false)
    );
    Ok(())
}

/// The memory ledger's futures are ready at once.
fn run<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory ledger never waits"),
    }
}

/// Carries a settled round's payouts out on a ledger, as `docs/rounds.md` specifies: the pool,
/// locked at funding for the arbiter ([`pool_escrow`]: a refund to the organizer from its
/// refund time), is claimed by the arbiter with the organizer's consent (its result's release)
/// and paid on to each party the round owes ([`Standing::owed`]), each payment locked for its
/// payee ([`payment_escrow`]) and released by the arbiter's consent, which its `pay` action
/// carries. Returns those actions.
fn pay_on_ledger(mint: &MemoryMint, w: &World, s: &Standing, at: u64) -> Vec<Signed<RoundAction>> {
    let organizer = mint.wallet(w.organizer.public_key());
    let arbiter = mint.wallet(w.arbiter.public_key());
    assert!(s.funded);
    // The pool and each evaluator's bond, locked for the arbiter on the terms every party
    // computes, and checked by it.
    let mut locks = Vec::new();
    for effect in &s.effects {
        if let Effect::Lock { from, .. } = *effect {
            let escrow = if from == w.organizer.public_key() {
                pool_escrow(&w.round)
            } else {
                bond_escrow(&w.round, from)
            }
            .expect("the round's terms");
            let locked = run(mint.wallet(from).lock(&escrow)).expect("locked");
            run(arbiter.verify(&locked, &escrow)).expect("the arbiter checks it");
            locks.push(locked);
        }
    }
    // The organizer's result releases them to the arbiter (a bond lost is taken without its
    // evaluator's consent).
    for locked in &locks {
        let consent = run(organizer.consent(locked)).expect("a party");
        run(arbiter.claim(locked, &[consent])).expect("the arbiter takes it");
    }
    let mut actions = Vec::new();
    for (to, amount) in s.owed() {
        let escrow = payment_escrow(&w.round, to, amount);
        let locked = run(arbiter.lock(&escrow)).expect("the arbiter pays on");
        let consent = run(arbiter.consent(&locked)).expect("a party");
        let payee = mint.wallet(to);
        run(payee.verify(&locked, &escrow)).expect("the payee checks it");
        run(payee.claim(&locked, &[consent])).expect("the payee claims");
        actions.push(act(w, &w.arbiter, at, RoundVerb::Pay { to, amount }));
    }
    actions
}

#[test]
fn a_false_receipt_is_challenged_and_overturned_and_the_right_contributor_is_paid() -> TestResult {
    let m = models()?;
    // Each evaluator locks a bond before its receipts count.
    let w = world_with(BOND);
    let (fa, fb) = (repo(&w.alice, "fork"), repo(&w.bob, "fork"));
    let actions = vec![
        act(&w, &w.organizer, 20, RoundVerb::Fund),
        act(&w, &w.evaluator, 1500, RoundVerb::Bond),
        act(&w, &w.liar, 1500, RoundVerb::Bond),
        act(
            &w,
            &w.alice,
            100,
            RoundVerb::Submit {
                repo: fa.clone(),
                commit: id(2),
            },
        ),
        act(
            &w,
            &w.bob,
            200,
            RoundVerb::Submit {
                repo: fb.clone(),
                commit: id(3),
            },
        ),
        act(
            &w,
            &w.organizer,
            1200,
            RoundVerb::Reveal {
                data: w.data,
                salt: w.salt,
                commit: id(9),
            },
        ),
    ];
    // The liar claims Bob's noisy fork scored as the trained one did, and that Alice's
    // trained fork scored as badly as the noisy one.
    let foundation = w.round.body().repo.clone();
    let lie_bob = receipt(&w, &w.liar, 2100, &m.trained, fb.clone(), id(3));
    let lie_alice = receipt(&w, &w.liar, 2101, &m.noisy, fa.clone(), id(2));
    let honest_bob = receipt(&w, &w.evaluator, 2200, &m.noisy, fb, id(3));
    let honest_alice = receipt(&w, &w.evaluator, 2201, &m.trained, fa, id(2));
    let evidence = vec![
        receipt(&w, &w.evaluator, 2050, &m.base, foundation, id(1)),
        lie_bob.clone(),
        lie_alice.clone(),
        honest_bob.clone(),
        honest_alice.clone(),
    ];
    let end = settles_at(w.round.body()) + 1;
    // Unchallenged, the earliest receipt of each commit counts: the liar's, and Bob wins.
    let fooled = fold(&w.round, &actions, &evidence, end);
    assert_eq!(fooled.champion().map(|c| c.commit), Some(id(3)));
    // Without its bond, the liar's receipts would not have counted at all.
    let unbonded: Vec<_> = actions
        .iter()
        .filter(|a| !(a.author() == w.liar.public_key() && a.body().verb == RoundVerb::Bond))
        .cloned()
        .collect();
    let without = fold(&w.round, &unbonded, &evidence, end);
    assert!(
        without
            .receipts
            .iter()
            .all(|r| r.evaluator != w.liar.public_key())
    );
    assert_eq!(without.champion().map(|c| c.commit), Some(id(2)));

    let disputed: Vec<u64> = (0..m.trained.documents.len() as u64).take(8).collect();
    let mut challenged = actions.clone();
    for (lie, honest) in [(&lie_bob, &honest_bob), (&lie_alice, &honest_alice)] {
        challenged.push(act(
            &w,
            &w.evaluator,
            EVALUATE_BY + 10,
            RoundVerb::Challenge {
                receipt: lie.receipt.id(),
                counter: honest.receipt.id(),
                documents: disputed.clone(),
            },
        ));
    }
    // A challenge after the window, and one naming documents the two agree on, do not count.
    challenged.push(act(
        &w,
        &w.liar,
        EVALUATE_BY + WINDOW + 1,
        RoundVerb::Challenge {
            receipt: honest_bob.receipt.id(),
            counter: lie_bob.receipt.id(),
            documents: vec![0],
        },
    ));
    // Before the arbiter rules, the disputed receipts count for nobody: no champion.
    let pending = fold(&w.round, &challenged, &evidence, end);
    assert!(pending.champion().is_none(), "{:?}", pending.ladder);
    assert_eq!(
        pending
            .receipts
            .iter()
            .filter(|r| r.verdict == Verdict::Disputed)
            .count(),
        4
    );
    // The arbiter re-evaluates and rules for the honest receipts; a ruling by another key is
    // ignored.
    challenged.push(act(
        &w,
        &w.liar,
        EVALUATE_BY + WINDOW + 5,
        RoundVerb::Rule {
            receipt: lie_bob.receipt.id(),
        },
    ));
    for honest in [&honest_bob, &honest_alice] {
        challenged.push(act(
            &w,
            &w.arbiter,
            EVALUATE_BY + WINDOW + 10,
            RoundVerb::Rule {
                receipt: honest.receipt.id(),
            },
        ));
    }
    let s = fold(&w.round, &challenged, &evidence, end);
    let verdict = |id| s.receipts.iter().find(|r| r.id == id).map(|r| r.verdict);
    assert_eq!(verdict(lie_bob.receipt.id()), Some(Verdict::Overturned));
    assert_eq!(verdict(lie_alice.receipt.id()), Some(Verdict::Overturned));
    assert_eq!(verdict(honest_bob.receipt.id()), Some(Verdict::Stands));
    assert_eq!(s.champion().map(|c| c.author), Some(w.alice.public_key()));
    let paid = releases(&s, &[Why::Reward]);
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].0, w.alice.public_key());
    // The liar's bond goes to the evaluator who challenged it; the evaluator's comes back.
    assert_eq!(
        releases(&s, &[Why::BondForfeited, Why::BondReturned]),
        [
            (w.evaluator.public_key(), BOND, Why::BondReturned),
            (w.evaluator.public_key(), BOND, Why::BondForfeited),
        ]
    );
    // Funds in = funds out.
    let (mut locked, mut released) = (0, 0);
    for e in &s.effects {
        match e {
            Effect::Lock { amount, .. } => locked += amount,
            Effect::Release { amount, .. } => released += amount,
        }
    }
    assert_eq!((locked, released), (POOL + 2 * BOND, POOL + 2 * BOND));

    // On the ledger: Alice holds her reward, the organizer the rest, the arbiter nothing; the
    // liar and Bob got nothing.
    let mint = MemoryMint::new();
    mint.issue(w.organizer.public_key(), POOL)?;
    mint.issue(w.evaluator.public_key(), BOND)?;
    mint.issue(w.liar.public_key(), BOND)?;
    let paid_at = settles_at(w.round.body()) + 1;
    let payments = pay_on_ledger(&mint, &w, &s, paid_at);
    let balance = |k: &Keys| run(mint.wallet(k.public_key()).balance()).expect("a balance");
    let reward = paid[0].1;
    assert!(reward > 0);
    assert_eq!(balance(&w.alice), reward);
    assert_eq!(balance(&w.organizer), POOL - reward);
    assert_eq!(balance(&w.evaluator), 2 * BOND);
    assert_eq!(
        (balance(&w.arbiter), balance(&w.bob), balance(&w.liar)),
        (0, 0, 0)
    );
    assert_eq!(mint.locked(), 0);
    // The arbiter's pay actions, folded: one payment per party owed, each for what it is owed;
    // a second payment, one by another key, one to a stranger and an early one are left out.
    let mut all = challenged.clone();
    all.extend(payments);
    all.push(act(
        &w,
        &w.arbiter,
        paid_at + 1,
        RoundVerb::Pay {
            to: w.alice.public_key(),
            amount: 1,
        },
    ));
    all.push(act(
        &w,
        &w.liar,
        paid_at,
        RoundVerb::Pay {
            to: w.liar.public_key(),
            amount: 1,
        },
    ));
    all.push(act(
        &w,
        &w.arbiter,
        paid_at,
        RoundVerb::Pay {
            to: w.bob.public_key(),
            amount: 1,
        },
    ));
    all.push(act(
        &w,
        &w.arbiter,
        EVALUATE_BY,
        RoundVerb::Pay {
            to: w.organizer.public_key(),
            amount: 1,
        },
    ));
    let after = fold(&w.round, &all, &evidence, paid_at + 10);
    let mut payments: Vec<_> = after.payments.iter().map(|p| (p.to, p.amount)).collect();
    let mut owed = vec![
        (w.alice.public_key(), reward),
        (w.organizer.public_key(), POOL - reward),
        (w.evaluator.public_key(), 2 * BOND),
    ];
    payments.sort();
    owed.sort();
    assert_eq!(payments, owed);
    assert_eq!(
        after.ignored.len(),
        s.ignored.len() + 4,
        "{:?}",
        after.ignored
    );
    // A payment stating more than the round owes does not count; one for less does, and says
    // so (the payee sees what it was short).
    for (amount, counts) in [(reward + 1, false), (reward - 1, true)] {
        let mut one = challenged.clone();
        one.push(act(
            &w,
            &w.arbiter,
            paid_at,
            RoundVerb::Pay {
                to: w.alice.public_key(),
                amount,
            },
        ));
        let f = fold(&w.round, &one, &evidence, paid_at + 10);
        let got: Vec<_> = f.payments.iter().map(|p| (p.amount, p.owed)).collect();
        assert_eq!(
            got,
            if counts {
                vec![(amount, reward)]
            } else {
                vec![]
            }
        );
    }
    Ok(())
}

#[test]
fn an_unrevealed_test_set_voids_the_round_and_returns_the_pool() {
    let w = world();
    let actions = vec![
        act(&w, &w.organizer, 20, RoundVerb::Fund),
        act(
            &w,
            &w.alice,
            100,
            RoundVerb::Submit {
                repo: repo(&w.alice, "fork"),
                commit: id(2),
            },
        ),
        // Before submissions close: refused, so nobody can train on it.
        act(
            &w,
            &w.organizer,
            500,
            RoundVerb::Reveal {
                data: w.data,
                salt: w.salt,
                commit: id(9),
            },
        ),
    ];
    assert_eq!(fold(&w.round, &actions, &[], 1500).phase, Phase::Reveal);
    let s = fold(&w.round, &actions, &[], REVEAL_BY + 1);
    assert_eq!(s.phase, Phase::Void);
    assert_eq!(s.revealed, None);
    assert_eq!(
        s.effects,
        [
            Effect::Lock {
                from: w.organizer.public_key(),
                amount: POOL
            },
            Effect::Release {
                to: w.organizer.public_key(),
                amount: POOL,
                why: Why::Refund
            },
        ]
    );
}
