//! What the market's tests share: deterministic keys, the ledger's books, and bytes.

#![allow(dead_code, reason = "each test file uses its share")]

use agigit_market::{Amount, Effect, Why};
use nostr::prelude::{Keys, PublicKey, SecretKey};

/// Deterministic key `n` (its secret is `n + 1` repeated).
pub(crate) fn key(n: u8) -> PublicKey {
    signer(n).public_key()
}

/// Deterministic keys `n`, to sign with.
pub(crate) fn signer(n: u8) -> Keys {
    let secret = SecretKey::from_slice(&[n + 1; 32]).unwrap_or_else(|_| unreachable!());
    Keys::new(secret)
}

/// The ledger's side: what went into escrow and out of it, per the effects, and every payment.
#[derive(Default, Debug)]
pub(crate) struct Books {
    pub(crate) locked: Amount,
    pub(crate) released: Amount,
    /// The amount of each release paid as [`Why::Payment`], in order.
    pub(crate) payments: Vec<Amount>,
}

impl Books {
    pub(crate) fn apply(&mut self, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Lock { amount, .. } => self.locked += amount,
                Effect::Release { amount, why, .. } => {
                    self.released += amount;
                    if *why == Why::Payment {
                        self.payments.push(*amount);
                    }
                }
            }
        }
    }
}

/// `len` bytes of a xorshift stream seeded by `seed`: no two 1 KiB leaves alike.
pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}
