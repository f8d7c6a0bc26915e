#![doc = include_str!("../README.md")]

pub mod audit;
pub mod fold;
pub mod ledger;
pub mod pull;
pub mod storage;

use nostr::prelude::PublicKey;

pub use fold::{FoldError, Folded, Order, fold, fold_order, fold_storage};
pub use pull::{Action, Outcome, Phase, PullOrder, PullTerms, Ruling};
pub use storage::{
    AnswerError, Audit, Settled, StorageAction, StorageOrder, StorageOutcome, StoragePhase,
    StorageTerms,
};

/// An amount in the ledger's unit (sats for a Cashu mint in sat).
pub type Amount = u64;

/// Unix seconds.
pub type Time = u64;

/// What a transition asks the ledger to do. Every amount a [`Lock`](Effect::Lock) puts into
/// escrow for an order leaves it by exactly one [`Release`](Effect::Release) when the order
/// closes: funds in = funds out + funds held, at every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// `from` puts `amount` into the order's escrow.
    Lock {
        /// Who pays in.
        from: PublicKey,
        /// How much.
        amount: Amount,
    },
    /// Escrow pays `amount` out to `to`.
    Release {
        /// Who receives it.
        to: PublicKey,
        /// How much.
        amount: Amount,
        /// Why.
        why: Why,
    },
}

/// Why escrow releases funds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Why {
    /// The relay's pay for a delivery confirmed or ruled.
    Payment,
    /// The buyer's funds back: cancelled, expired, abandoned or ruled so.
    Refund,
    /// The relay's bond back.
    BondReturned,
    /// The relay's bond to the buyer: it abandoned the order.
    BondForfeited,
    /// A contributor's pay for bits saved in a competition round (`agigit_eval::round`).
    Reward,
}

/// Why posted terms are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TermsError {
    /// No relay, or more than [`pull::MAX_RELAYS`].
    #[error("an order lists 1 to {} relays, not {count}", pull::MAX_RELAYS)]
    Relays {
        /// How many it lists.
        count: usize,
    },
    /// A key listed twice.
    #[error("relay {key} is listed twice")]
    Repeated {
        /// The key.
        key: PublicKey,
    },
    /// One key in two roles.
    #[error("{what}")]
    Conflict {
        /// Which roles.
        what: &'static str,
    },
    /// An amount that must not be zero.
    #[error("the {what} must be more than 0")]
    Zero {
        /// Which amount.
        what: &'static str,
    },
    /// Amounts whose sum does not fit.
    #[error("the amounts overflow")]
    Overflow,
    /// A deadline that could not run.
    #[error("{what}: {reason}")]
    Deadline {
        /// Which deadline.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Checks an order's listed takers: 1 to [`pull::MAX_RELAYS`] keys, none twice, the buyer not
/// among them (`role` names them in the message).
fn check_listed(
    keys: &[PublicKey],
    buyer: &PublicKey,
    buyer_listed: &'static str,
) -> Result<(), TermsError> {
    if keys.is_empty() || keys.len() > pull::MAX_RELAYS {
        return Err(TermsError::Relays { count: keys.len() });
    }
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            return Err(TermsError::Repeated { key: *k });
        }
        if k == buyer {
            return Err(TermsError::Conflict { what: buyer_listed });
        }
    }
    Ok(())
}

/// Checks an order's windows as posted at `now`: `take_by` after `now`, and every window
/// (the first being `take_by − now`) more than 0 s and at most [`pull::MAX_WINDOW`].
fn check_windows(
    take_by: Time,
    now: Time,
    windows: &[(&'static str, Time)],
) -> Result<(), TermsError> {
    if take_by <= now {
        return Err(TermsError::Deadline {
            what: "take_by",
            reason: "already past",
        });
    }
    for &(what, window) in std::iter::once(&("take_by", take_by - now)).chain(windows) {
        if window == 0 || window > pull::MAX_WINDOW {
            return Err(TermsError::Deadline {
                what,
                reason: "must be more than 0 s and at most a year away",
            });
        }
    }
    Ok(())
}

/// Why an action is refused; the order is as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The order is over (perhaps by a deadline that passed before the action).
    #[error("the order is closed")]
    Closed,
    /// This key may not take this action in this phase.
    #[error("{by} may not {action} an order that is {phase}")]
    NotYours {
        /// The action's name.
        action: &'static str,
        /// Who asked.
        by: PublicKey,
        /// The phase the order is in.
        phase: &'static str,
    },
    /// An action this kind of order does not have (a challenge of a pull order, say).
    #[error("this kind of order has no {action} action")]
    NotThisKind {
        /// The action's name.
        action: &'static str,
    },
    /// A raise of nothing.
    #[error("a raise must add more than 0")]
    Zero,
    /// Escrow would overflow.
    #[error("escrow would overflow")]
    Overflow,
    /// A challenge too close to its period's end for the server to answer within it.
    #[error(
        "too late to challenge this period: the answer window would pass its end at {period_end}"
    )]
    TooLate {
        /// When the period ends.
        period_end: Time,
    },
    /// An answer with another number of openings than the challenge's positions.
    #[error("an answer of {found} leaves to a challenge of {expected}")]
    Openings {
        /// Positions challenged.
        expected: usize,
        /// Openings sent.
        found: usize,
    },
    /// An opening that does not prove its challenged leaf.
    #[error("opening {index}: {reason}")]
    Unproven {
        /// Which opening.
        index: usize,
        /// What does not hold.
        reason: audit::ProofError,
    },
}
