//! The in-memory ledger keeps the rules a Cashu mint enforces on locked tokens: two distinct
//! parties release, the payer alone only from the refund time on, nothing is spent twice, and
//! a payee can check what it is promised.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use agigit_market::ledger::{Escrow, Ledger, MemoryError, MemoryMint};
use nostr::prelude::{Keys, PublicKey, SecretKey};

fn key(n: u8) -> PublicKey {
    let secret = SecretKey::from_slice(&[n + 1; 32]).expect("a valid secret");
    Keys::new(secret).public_key()
}

/// The memory ledger's futures are ready at once.
fn run<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory ledger never waits"),
    }
}

const PAYER: u8 = 0;
const PAYEE: u8 = 1;
const ARBITER: u8 = 2;
const STRANGER: u8 = 3;

fn escrow(arbiter: bool) -> Escrow {
    Escrow {
        amount: 700,
        payer: key(PAYER),
        payee: key(PAYEE),
        arbiter: arbiter.then(|| key(ARBITER)),
        refund_at: 1_000,
    }
}

fn mint() -> MemoryMint {
    let mint = MemoryMint::new();
    mint.issue(key(PAYER), 1_000).expect("issued");
    mint
}

#[test]
fn a_payee_verifies_what_it_is_promised_and_is_paid_with_the_payers_consent() {
    let mint = mint();
    let (payer, payee) = (mint.wallet(key(PAYER)), mint.wallet(key(PAYEE)));
    let e = escrow(false);
    let locked = run(payer.lock(&e)).expect("locked");
    assert_eq!(run(payer.balance()), Ok(300));
    assert_eq!(mint.locked(), 700);
    run(payee.verify(&locked, &e)).expect("as agreed");
    // Promised more, to another key, or with a later refund time: not what is locked.
    for other in [
        Escrow { amount: 701, ..e },
        Escrow {
            payee: key(STRANGER),
            ..e
        },
        Escrow {
            refund_at: 2_000,
            ..e
        },
        Escrow {
            arbiter: Some(key(ARBITER)),
            ..e
        },
    ] {
        assert_eq!(
            run(payee.verify(&locked, &other)),
            Err(MemoryError::NotAsAgreed)
        );
    }
    // The payee alone, or with its own consent, takes nothing.
    let own = run(payee.consent(&locked)).expect("a party");
    assert_eq!(
        run(payee.claim(&locked, &[own])),
        Err(MemoryError::Consents)
    );
    let release = run(payer.consent(&locked)).expect("a party");
    assert_eq!(run(payee.claim(&locked, &[release])), Ok(700));
    assert_eq!(run(payee.balance()), Ok(700));
    // Nothing twice: not claimed again, not refunded after.
    assert_eq!(
        run(payee.claim(&locked, &[release])),
        Err(MemoryError::Spent)
    );
    mint.set_time(5_000);
    assert_eq!(run(payer.refund(&locked)), Err(MemoryError::Spent));
    assert_eq!(run(payee.verify(&locked, &e)), Err(MemoryError::Spent));
    assert_eq!(mint.total(), 1_000);
}

#[test]
fn the_refund_path_opens_at_the_refund_time_for_the_payer_only() {
    let mint = mint();
    let (payer, payee) = (mint.wallet(key(PAYER)), mint.wallet(key(PAYEE)));
    let locked = run(payer.lock(&escrow(false))).expect("locked");
    mint.set_time(999);
    assert_eq!(
        run(payer.refund(&locked)),
        Err(MemoryError::NotYetRefundable {
            refund_at: 1_000,
            now: 999
        })
    );
    mint.set_time(1_000);
    assert!(
        run(payee.refund(&locked)).is_err(),
        "the payee has no refund path"
    );
    assert_eq!(run(payer.refund(&locked)), Ok(700));
    assert_eq!(run(payer.balance()), Ok(1_000));
    assert_eq!(mint.locked(), 0);
}

#[test]
fn the_arbiter_is_one_of_the_two_either_way_and_a_stranger_is_none() {
    let mint = mint();
    let payer = mint.wallet(key(PAYER));
    let (payee, arbiter) = (mint.wallet(key(PAYEE)), mint.wallet(key(ARBITER)));
    let stranger = mint.wallet(key(STRANGER));
    let e = escrow(true);
    // The arbiter rules for the payee.
    let a = run(payer.lock(&Escrow { amount: 400, ..e })).expect("locked");
    assert!(matches!(
        run(stranger.consent(&a)),
        Err(MemoryError::NotAParty { .. })
    ));
    let ruling = run(arbiter.consent(&a)).expect("a party");
    assert!(run(stranger.claim(&a, &[ruling])).is_err());
    assert_eq!(run(payee.claim(&a, &[ruling])), Ok(400));
    // The arbiter rules for the payer, before the refund time.
    let b = run(payer.lock(&Escrow { amount: 600, ..e })).expect("locked");
    let ruling = run(arbiter.consent(&b)).expect("a party");
    assert_eq!(run(payer.claim(&b, &[ruling])), Ok(600));
    assert_eq!(run(payer.balance()), Ok(600));
    assert_eq!(mint.total(), 1_000);
}

#[test]
fn a_lock_needs_the_funds_and_the_payers_own_wallet() {
    let mint = mint();
    let payer = mint.wallet(key(PAYER));
    assert_eq!(
        run(payer.lock(&Escrow {
            amount: 1_001,
            ..escrow(false)
        })),
        Err(MemoryError::Insufficient {
            have: 1_000,
            need: 1_001
        })
    );
    assert!(run(mint.wallet(key(PAYEE)).lock(&escrow(false))).is_err());
    assert_eq!(
        run(payer.lock(&Escrow {
            amount: 0,
            ..escrow(false)
        })),
        Err(MemoryError::Amount)
    );
    assert_eq!(run(payer.balance()), Ok(1_000));
}
