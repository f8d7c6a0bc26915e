//! The Cashu ledger against a real mint: cdk's own `cdk-mintd` with its fake Lightning backend,
//! started by the test on a free loopback port and stopped when it ends (`support/mint.rs`).

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

#[path = "support/mint.rs"]
mod support;

use std::time::{Duration, Instant};

use agigit_market::ledger::{Escrow, Ledger};
use agigit_market_cashu::{CashuError, CashuLock, CashuWallet};
use nostr::prelude::{Keys, SecretKey};
use support::{TestMint, start_mint};

fn keys(n: u8) -> Keys {
    Keys::new(SecretKey::from_slice(&[n + 1; 32]).expect("a valid secret"))
}

fn wallet(mint: &TestMint, who: u8) -> CashuWallet {
    let dir = mint.dir.join(format!("wallet-{who}"));
    CashuWallet::open(&mint.url, &dir, keys(who)).expect("the wallet opens")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const PAYER: u8 = 0;
const PAYEE: u8 = 1;
const ARBITER: u8 = 2;
const STRANGER: u8 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_on_a_real_mint_pays_with_two_parties_and_refunds_at_the_locktime() {
    let Some(mint) = start_mint("escrow") else {
        return;
    };
    let payer = wallet(&mint, PAYER);
    let payee = wallet(&mint, PAYEE);
    let arbiter = wallet(&mint, ARBITER);
    let stranger = wallet(&mint, STRANGER);
    assert_eq!(payer.top_up(1_000).await, Ok(1_000));
    assert_eq!(payer.balance().await, Ok(1_000));

    // A payment: locked for the payee, verified by it, released by the payer's consent.
    let escrow = Escrow {
        amount: 300,
        payer: keys(PAYER).public_key(),
        payee: keys(PAYEE).public_key(),
        arbiter: Some(keys(ARBITER).public_key()),
        refund_at: unix_now() + 3_600,
    };
    let locked = payer.lock(&escrow).await.expect("locked");
    assert_eq!(payer.balance().await, Ok(700));
    payee.verify(&locked, &escrow).await.expect("as agreed");
    for other in [
        Escrow {
            amount: 301,
            ..escrow
        },
        Escrow {
            payee: keys(STRANGER).public_key(),
            ..escrow
        },
        Escrow {
            refund_at: escrow.refund_at + 1,
            ..escrow
        },
        Escrow {
            arbiter: None,
            ..escrow
        },
    ] {
        assert!(matches!(
            payee.verify(&locked, &other).await,
            Err(CashuError::NotAsAgreed(_))
        ));
    }
    // The payee alone, a stranger with the payer's consent, the payee with its own: nothing.
    assert_eq!(payee.claim(&locked, &[]).await, Err(CashuError::Consents));
    let own = payee.consent(&locked).await.expect("a party");
    assert_eq!(
        payee.claim(&locked, &[own]).await,
        Err(CashuError::Consents)
    );
    assert!(matches!(
        stranger.consent(&locked).await,
        Err(CashuError::NotAParty { .. })
    ));
    let release = payer.consent(&locked).await.expect("a party");
    assert!(matches!(
        stranger
            .claim(&locked, std::slice::from_ref(&release))
            .await,
        Err(CashuError::NotAParty { .. })
    ));
    // A forged consent: the payer's signatures on another token's proofs do not count.
    let mut forged = release.clone();
    forged.signatures.reverse();
    forged.signatures.push("00".repeat(64));
    assert_eq!(
        payee.claim(&locked, &[forged]).await,
        Err(CashuError::Consents)
    );
    // The payer cannot take it back before the locktime.
    assert!(matches!(
        payer.refund(&locked).await,
        Err(CashuError::NotYetRefundable { .. })
    ));
    assert_eq!(
        payee.claim(&locked, std::slice::from_ref(&release)).await,
        Ok(300)
    );
    assert_eq!(payee.balance().await, Ok(300));
    // Nothing twice.
    assert!(payee.claim(&locked, &[release]).await.is_err());
    assert_eq!(payee.verify(&locked, &escrow).await, Err(CashuError::Spent));

    // A ruling: the arbiter's consent lets the payer take it back before the locktime.
    let ruled = payer
        .lock(&Escrow {
            amount: 200,
            ..escrow
        })
        .await
        .expect("locked");
    let ruling = arbiter.consent(&ruled).await.expect("a party");
    assert_eq!(payer.claim(&ruled, &[ruling]).await, Ok(200));

    // The refund path: locked until a second from now, then the payer's alone.
    let soon = Escrow {
        amount: 100,
        refund_at: unix_now() + 1,
        ..escrow
    };
    let lapsing = payer.lock(&soon).await.expect("locked");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(matches!(
        payee.refund(&lapsing).await,
        Err(CashuError::NotAParty { .. })
    ));
    assert_eq!(payer.refund(&lapsing).await, Ok(100));
    assert_eq!(payer.balance().await, Ok(700));

    // A made-up token is no lock at all.
    let fake = CashuLock::from_token("cashuBnotatoken");
    assert!(matches!(
        payee.verify(&fake, &escrow).await,
        Err(CashuError::Token(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tokens_move_between_wallets_once() {
    let Some(mint) = start_mint("plain") else {
        return;
    };
    let alice = wallet(&mint, PAYER);
    let bob = wallet(&mint, PAYEE);
    alice.top_up(64).await.expect("topped up");
    let token = alice.send(40).await.expect("sent");
    assert_eq!(alice.balance().await, Ok(24));
    assert_eq!(bob.receive(&token).await, Ok(40));
    assert!(bob.receive(&token).await.is_err(), "a token is spent once");
    assert_eq!(
        alice.send(1_000).await,
        Err(CashuError::Insufficient {
            have: 24,
            need: 1_000
        })
    );
    // The wallet's file survives, owner-only: reopened, it holds the same (cdk's background
    // tasks let go of the file shortly after the wallet is dropped).
    drop(bob);
    let file = mint.dir.join(format!("wallet-{PAYEE}/wallet.redb"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file)
            .expect("the file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let start = Instant::now();
    let reopened = loop {
        match CashuWallet::open(
            &mint.url,
            &mint.dir.join(format!("wallet-{PAYEE}")),
            keys(PAYEE),
        ) {
            Ok(w) => break w,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the wallet does not reopen: {e}"),
        }
    };
    assert_eq!(reopened.balance().await, Ok(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_is_one_token_whose_parts_pay_or_refund_each_on_its_own() {
    let Some(mint) = start_mint("schedule") else {
        return;
    };
    let payer = wallet(&mint, PAYER);
    let payee = wallet(&mint, PAYEE);
    assert_eq!(payer.top_up(100).await, Ok(100));
    let now = unix_now();
    let period = |i: u64, refund_at: u64| Escrow {
        amount: 10 + i,
        payer: keys(PAYER).public_key(),
        payee: keys(PAYEE).public_key(),
        arbiter: None,
        refund_at,
    };
    let schedule = [
        period(0, now + 3_600),
        period(1, now + 1),
        period(2, now + 7_200),
    ];
    // Two escrows with one refund time could not be told apart.
    assert!(matches!(
        payer.lock_schedule(&[schedule[0], schedule[0]]).await,
        Err(CashuError::NotAsAgreed(_))
    ));
    let locked = payer.lock_schedule(&schedule).await.expect("locked");
    assert_eq!(payer.balance().await, Ok(100 - 33));
    // Each part is the escrow it was locked as, and no other.
    for e in &schedule {
        let part = payee.part(&locked, e.refund_at).await.expect("a part");
        payee.verify(&part, e).await.expect("as agreed");
    }
    let first = payee
        .part(&locked, schedule[0].refund_at)
        .await
        .expect("a part");
    assert!(matches!(
        payee.verify(&first, &schedule[2]).await,
        Err(CashuError::NotAsAgreed(_))
    ));
    assert!(matches!(
        payee.part(&locked, now + 5).await,
        Err(CashuError::NotAsAgreed(_))
    ));
    // The payer's consent to the first part pays that part only; the same signatures do not
    // open the third.
    let release = payer.consent(&first).await.expect("a party");
    let third = payee
        .part(&locked, schedule[2].refund_at)
        .await
        .expect("a part");
    assert_eq!(
        payee.claim(&third, std::slice::from_ref(&release)).await,
        Err(CashuError::Consents)
    );
    assert_eq!(payee.claim(&first, &[release]).await, Ok(10));
    // The second part lapses and comes back to the payer alone; the third stays locked.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let second = payer
        .part(&locked, schedule[1].refund_at)
        .await
        .expect("a part");
    assert_eq!(payer.refund(&second).await, Ok(11));
    assert!(matches!(
        payer.refund(&third).await,
        Err(CashuError::NotYetRefundable { .. })
    ));
    assert_eq!(payee.balance().await, Ok(10));
    assert_eq!(payer.balance().await, Ok(100 - 33 + 11));
}
