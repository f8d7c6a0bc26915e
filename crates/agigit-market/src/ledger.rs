//! Where an order's money is: a [`Ledger`] locks a payer's funds for a payee with a refund path
//! after a time, releases them with the consent of enough parties, and lets the payee verify
//! what it is promised before it does any work.
//!
//! The shape is that of ecash locked tokens (Cashu NUT-11): funds locked to the payee with
//! `n_sigs = 2` among payee, payer and arbiter, and a refund key (the payer's) that alone may
//! spend them from a locktime on. The payer's (or the arbiter's) consent is its signature over
//! the locked funds; the payee claims with its own and one other. No state of the order can
//! keep funds locked past the locktime: the refund path opens on the ledger's own clock,
//! whatever anyone signs.
//!
//! [`MemoryMint`] is the in-memory ledger the tests and examples use: one book shared by every
//! party's [`MemoryWallet`], enforcing the same rules.

use std::collections::BTreeMap;
use std::future::{Future, ready};
use std::sync::{Arc, Mutex, PoisonError};

use nostr::prelude::PublicKey;

use crate::{Amount, Time};

/// The conditions funds are locked under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Escrow {
    /// How much.
    pub amount: Amount,
    /// Who locked it, and who may take it back alone from `refund_at` on.
    pub payer: PublicKey,
    /// Who it is for.
    pub payee: PublicKey,
    /// A third key whose consent counts as one of the two needed.
    pub arbiter: Option<PublicKey>,
    /// From then on (the ledger's clock, unix seconds) the payer may take it back alone.
    pub refund_at: Time,
}

impl Escrow {
    /// Whether `key` is one of the parties whose consent counts.
    pub fn is_party(&self, key: &PublicKey) -> bool {
        *key == self.payer || *key == self.payee || self.arbiter.as_ref() == Some(key)
    }
}

/// A wallet on a ledger, acting for one key: the operations an order needs.
///
/// Every method that reaches the ledger returns a future: a Cashu wallet talks to its mint.
/// Implementations must be safe to call from many tasks; the facade runs them on its runtime.
pub trait Ledger {
    /// Funds locked under an [`Escrow`]: what the payer hands the payee (a locked token).
    type Locked: Clone + Send + Sync;
    /// One party's consent that the locked funds go to whoever claims them with it (its
    /// signature over them).
    type Consent: Clone + Send + Sync;
    /// What went wrong.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The key this wallet acts for.
    fn owner(&self) -> PublicKey;

    /// What the wallet may spend now.
    fn balance(&self) -> impl Future<Output = Result<Amount, Self::Error>> + Send;

    /// Locks `escrow.amount` of this wallet's funds under `escrow` (its owner is the payer).
    fn lock(
        &self,
        escrow: &Escrow,
    ) -> impl Future<Output = Result<Self::Locked, Self::Error>> + Send;

    /// Checks, with the ledger, that `locked` holds `escrow.amount`, unspent, under exactly
    /// `escrow`'s conditions: what a payee does before it serves.
    fn verify(
        &self,
        locked: &Self::Locked,
        escrow: &Escrow,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// This wallet's consent to `locked` leaving escrow: the payer's release of a payment, the
    /// arbiter's ruling, or the payee's agreement to a refund before the locktime.
    ///
    /// # Errors
    /// When the owner is not a party to the escrow.
    fn consent(
        &self,
        locked: &Self::Locked,
    ) -> impl Future<Output = Result<Self::Consent, Self::Error>> + Send;

    /// Takes `locked` into this wallet with `consents`: the owner (a party) and the consents
    /// together must be two distinct parties. Returns the amount received.
    fn claim(
        &self,
        locked: &Self::Locked,
        consents: &[Self::Consent],
    ) -> impl Future<Output = Result<Amount, Self::Error>> + Send;

    /// Takes `locked` back into the payer's wallet alone, once the ledger's clock has reached
    /// the refund time. Returns the amount received.
    fn refund(
        &self,
        locked: &Self::Locked,
    ) -> impl Future<Output = Result<Amount, Self::Error>> + Send;
}

/// Why the in-memory ledger refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// Not enough funds.
    #[error("the wallet holds {have}, not the {need} asked for")]
    Insufficient {
        /// What it holds.
        have: Amount,
        /// What was asked.
        need: Amount,
    },
    /// The locked funds were spent already.
    #[error("these funds were already spent")]
    Spent,
    /// The locked funds are not what they claim (another amount, other conditions, or no
    /// such lock).
    #[error("these funds are not locked as agreed")]
    NotAsAgreed,
    /// The owner is not a party to the escrow.
    #[error("{key} is not a party to this escrow")]
    NotAParty {
        /// The key.
        key: PublicKey,
    },
    /// Fewer than two distinct parties consent.
    #[error("two distinct parties must consent")]
    Consents,
    /// A refund before the refund time, or by another key than the payer.
    #[error("only the payer may take it back alone, from {refund_at} on (now {now})")]
    NotYetRefundable {
        /// The refund time.
        refund_at: Time,
        /// The ledger's clock.
        now: Time,
    },
    /// Zero, or an amount that overflows.
    #[error("an amount of 0, or one that overflows")]
    Amount,
}

#[derive(Debug, Default)]
struct Book {
    balances: BTreeMap<PublicKey, Amount>,
    locks: Vec<(Escrow, bool)>,
    now: Time,
}

/// An in-memory ledger: the book every [`MemoryWallet`] of it shares, with its own clock.
#[derive(Clone, Debug, Default)]
pub struct MemoryMint {
    book: Arc<Mutex<Book>>,
}

/// Funds locked in a [`MemoryMint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLock {
    index: usize,
    escrow: Escrow,
}

impl MemoryLock {
    /// The conditions it states.
    pub fn escrow(&self) -> &Escrow {
        &self.escrow
    }
}

/// One party's consent in a [`MemoryMint`]; only [`Ledger::consent`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryConsent {
    index: usize,
    by: PublicKey,
}

/// A party's wallet on a [`MemoryMint`].
#[derive(Clone, Debug)]
pub struct MemoryWallet {
    mint: MemoryMint,
    owner: PublicKey,
}

impl MemoryMint {
    /// An empty ledger at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues `amount` to `owner` (what paying a mint's invoice does).
    ///
    /// # Errors
    /// [`MemoryError::Amount`] when the balance would overflow.
    pub fn issue(&self, owner: PublicKey, amount: Amount) -> Result<(), MemoryError> {
        let mut book = self.book();
        let b = book.balances.entry(owner).or_default();
        *b = b.checked_add(amount).ok_or(MemoryError::Amount)?;
        Ok(())
    }

    /// Sets the ledger's clock.
    pub fn set_time(&self, now: Time) {
        self.book().now = now;
    }

    /// What the book holds in locks not yet spent.
    pub fn locked(&self) -> Amount {
        self.book()
            .locks
            .iter()
            .filter(|(_, spent)| !spent)
            .map(|(e, _)| e.amount)
            .sum()
    }

    /// Everything in the book: balances and unspent locks (constant but for issues).
    pub fn total(&self) -> Amount {
        let balances: Amount = self.book().balances.values().sum();
        balances + self.locked()
    }

    /// `owner`'s wallet.
    pub fn wallet(&self, owner: PublicKey) -> MemoryWallet {
        MemoryWallet {
            mint: self.clone(),
            owner,
        }
    }
}

impl MemoryWallet {
    fn lock_now(&self, escrow: &Escrow) -> Result<MemoryLock, MemoryError> {
        if escrow.payer != self.owner {
            return Err(MemoryError::NotAParty { key: self.owner });
        }
        if escrow.amount == 0 {
            return Err(MemoryError::Amount);
        }
        let mut book = self.mint.book();
        let have = book.balances.get(&self.owner).copied().unwrap_or(0);
        if have < escrow.amount {
            return Err(MemoryError::Insufficient {
                have,
                need: escrow.amount,
            });
        }
        book.balances.insert(self.owner, have - escrow.amount);
        book.locks.push((*escrow, false));
        Ok(MemoryLock {
            index: book.locks.len() - 1,
            escrow: *escrow,
        })
    }

    fn verify_now(&self, locked: &MemoryLock, escrow: &Escrow) -> Result<(), MemoryError> {
        match self.mint.book().locks.get(locked.index) {
            Some((held, false)) if held == escrow && locked.escrow == *escrow => Ok(()),
            Some((held, true)) if held == escrow => Err(MemoryError::Spent),
            _ => Err(MemoryError::NotAsAgreed),
        }
    }

    /// Spends lock `index` into the owner's balance, if `allowed` says so of its escrow.
    fn spend(
        &self,
        locked: &MemoryLock,
        allowed: impl FnOnce(&Escrow, Time) -> Result<(), MemoryError>,
    ) -> Result<Amount, MemoryError> {
        let mut book = self.mint.book();
        let now = book.now;
        let (escrow, spent) = match book.locks.get_mut(locked.index) {
            Some((held, spent)) if *held == locked.escrow => (*held, spent),
            _ => return Err(MemoryError::NotAsAgreed),
        };
        if *spent {
            return Err(MemoryError::Spent);
        }
        allowed(&escrow, now)?;
        *spent = true;
        let b = book.balances.entry(self.owner).or_default();
        *b = b.checked_add(escrow.amount).ok_or(MemoryError::Amount)?;
        Ok(escrow.amount)
    }

    fn claim_now(
        &self,
        locked: &MemoryLock,
        consents: &[MemoryConsent],
    ) -> Result<Amount, MemoryError> {
        let owner = self.owner;
        self.spend(locked, |escrow, _| {
            if !escrow.is_party(&owner) {
                return Err(MemoryError::NotAParty { key: owner });
            }
            let other = consents
                .iter()
                .any(|c| c.index == locked.index && c.by != owner && escrow.is_party(&c.by));
            if other {
                Ok(())
            } else {
                Err(MemoryError::Consents)
            }
        })
    }

    fn refund_now(&self, locked: &MemoryLock) -> Result<Amount, MemoryError> {
        let owner = self.owner;
        self.spend(locked, |escrow, now| {
            if owner == escrow.payer && now >= escrow.refund_at {
                Ok(())
            } else {
                Err(MemoryError::NotYetRefundable {
                    refund_at: escrow.refund_at,
                    now,
                })
            }
        })
    }
}

impl Ledger for MemoryWallet {
    type Locked = MemoryLock;
    type Consent = MemoryConsent;
    type Error = MemoryError;

    fn owner(&self) -> PublicKey {
        self.owner
    }

    fn balance(&self) -> impl Future<Output = Result<Amount, MemoryError>> + Send {
        let have = self.mint.book().balances.get(&self.owner).copied();
        ready(Ok(have.unwrap_or(0)))
    }

    fn lock(
        &self,
        escrow: &Escrow,
    ) -> impl Future<Output = Result<MemoryLock, MemoryError>> + Send {
        ready(self.lock_now(escrow))
    }

    fn verify(
        &self,
        locked: &MemoryLock,
        escrow: &Escrow,
    ) -> impl Future<Output = Result<(), MemoryError>> + Send {
        ready(self.verify_now(locked, escrow))
    }

    fn consent(
        &self,
        locked: &MemoryLock,
    ) -> impl Future<Output = Result<MemoryConsent, MemoryError>> + Send {
        ready(if locked.escrow.is_party(&self.owner) {
            Ok(MemoryConsent {
                index: locked.index,
                by: self.owner,
            })
        } else {
            Err(MemoryError::NotAParty { key: self.owner })
        })
    }

    fn claim(
        &self,
        locked: &MemoryLock,
        consents: &[MemoryConsent],
    ) -> impl Future<Output = Result<Amount, MemoryError>> + Send {
        ready(self.claim_now(locked, consents))
    }

    fn refund(
        &self,
        locked: &MemoryLock,
    ) -> impl Future<Output = Result<Amount, MemoryError>> + Send {
        ready(self.refund_now(locked))
    }
}
