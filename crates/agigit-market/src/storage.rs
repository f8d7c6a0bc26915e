//! Storage orders: a buyer pays one of the servers it lists to keep the shards of its packs for
//! a number of periods, each period paid only after an audit of it passes — so at most one
//! period's price is ever at stake for either side.
//!
//! A listed server takes the order; the buyer then funds it (every period's price locked for
//! that server), and period 0 starts. In each period the buyer may challenge the server once ([`StorageAction::Challenge`], with a
//! fresh nonce); the server answers with the challenged leaves and their inclusion paths
//! ([`StorageAction::Answer`]), which the state machine checks against the audit roots the
//! order states ([`crate::audit`]). At the period's end escrow pays the period's price to the
//! server if the audit passed; a challenge not answered in time fails the order (this period
//! and every later one refunded, the server's bond to the buyer); a period nobody audited is
//! settled by the order's `unaudited` rule, agreed by both when the server took it.

use agigit_event::market::{
    MAX_CHALLENGES, MAX_ORDER_SHARDS, MAX_SHARD_BYTES, Opening, StoredShard,
};
use nostr::prelude::PublicKey;

use crate::audit::{self, Digest, Position};
use crate::pull::MAX_WINDOW;
use crate::{Amount, Effect, Refused, Ruling, TermsError, Time, Why};

/// The most periods one order runs.
pub const MAX_PERIODS: u64 = 1000;

/// The longest an order may run from its take, all periods together: ten years.
pub const MAX_TERM: Time = 10 * MAX_WINDOW;

/// What a buyer posts: signed by it, fixed for the order's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageTerms {
    /// Who pays, and the only key that may cancel or challenge.
    pub buyer: PublicKey,
    /// What is to be kept, each with its audit root.
    pub shards: Vec<StoredShard>,
    /// The servers that may take the order (the taker is the key that signs the take).
    pub servers: Vec<PublicKey>,
    /// Paid per period.
    pub price: Amount,
    /// How many periods the order runs once taken.
    pub periods: u64,
    /// A period's length, seconds.
    pub period: Time,
    /// What the server locks when it takes the order; the buyer's if it fails an audit.
    pub bond: Amount,
    /// An order nobody takes by then expires (nothing was locked).
    pub take_by: Time,
    /// A taken order the buyer has not funded within this long closes unfunded: the server's
    /// bond goes back.
    pub fund_within: Time,
    /// How long the server has to answer a challenge (shorter than a period: a challenge must
    /// leave this long before its period ends).
    pub answer_within: Time,
    /// How many positions one audit challenges, 1 to 8.
    pub challenges: u64,
    /// What a period nobody audited does.
    pub unaudited: Ruling,
}

/// Where an audit of the current period stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audit {
    /// Not challenged yet.
    Waiting,
    /// Challenged with `nonce` at `at`; the server must answer by `at + answer_within`.
    Challenged {
        /// The buyer's nonce.
        nonce: Digest,
        /// When.
        at: Time,
    },
    /// Answered and verified at `at`: the period is the server's at its end.
    Passed {
        /// When.
        at: Time,
    },
}

/// Where a storage order is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoragePhase {
    /// Posted; any listed server may take it until `take_by`.
    Open,
    /// Taken by `server` at `at`; the buyer funds it within `fund_within`.
    Taken {
        /// The server that signed the take.
        server: PublicKey,
        /// When.
        at: Time,
    },
    /// Funded at `since`; period `period` (from 0) runs from `since + period × length`.
    Running {
        /// The server that signed the take.
        server: PublicKey,
        /// When the buyer funded the order: period 0 starts then.
        since: Time,
        /// The current period.
        period: u64,
        /// Its audit.
        audit: Audit,
    },
    /// Over; no action changes it.
    Closed(StorageOutcome),
}

/// How a storage order ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageOutcome {
    /// The buyer cancelled before anyone took it (nothing was locked).
    Cancelled,
    /// Nobody took it by `take_by` (nothing was locked).
    Expired,
    /// The buyer did not fund the taken order in time: the server's bond went back.
    Unfunded {
        /// The server.
        server: PublicKey,
    },
    /// Every period ran; each was settled, and the bond went back.
    Completed {
        /// The server.
        server: PublicKey,
    },
    /// The server did not answer period `period`'s challenge: that period and every later
    /// one refunded, the bond to the buyer.
    Failed {
        /// The server.
        server: PublicKey,
        /// The period whose audit failed.
        period: u64,
    },
}

/// How one period was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Settled {
    /// Its audit passed: the server was paid.
    Passed,
    /// Nobody audited it: the `unaudited` rule decided.
    Unaudited(Ruling),
    /// Its challenge went unanswered: refunded, and the order failed.
    Failed,
}

/// Something a party asks of a storage order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageAction {
    /// The buyer withdraws an order nobody took.
    Cancel,
    /// A listed server takes the order: it holds every shard and has checked their roots.
    Take,
    /// The buyer locks every period's price for the taking server; period 0 starts.
    Fund,
    /// The buyer audits the current period.
    Challenge(Digest),
    /// The server answers the current challenge: one opening per position, in order.
    Answer(Vec<Opening>),
    /// The buyer consents, on the ledger, to paying a period the server earned (a `confirm`
    /// carrying the buyer's release signatures). It changes no state: who is owed what is the
    /// fold's to decide; the consent is what a ledger needs to move the money (a Cashu token
    /// locked to the server with the buyer's key beside its own).
    Release,
}

impl StoragePhase {
    /// Where the order stands, in words.
    pub fn describe(&self) -> String {
        match *self {
            StoragePhase::Open => "open".to_owned(),
            StoragePhase::Taken { .. } => "taken, waiting for the buyer to fund it".to_owned(),
            StoragePhase::Running { period, audit, .. } => {
                let audit = match audit {
                    Audit::Waiting => "not audited yet",
                    Audit::Challenged { .. } => "challenged, waiting for the server's answer",
                    Audit::Passed { .. } => "audit passed",
                };
                format!("running, period {}: {audit}", period + 1)
            }
            StoragePhase::Closed(o) => match o {
                StorageOutcome::Cancelled => "closed: cancelled".to_owned(),
                StorageOutcome::Expired => "closed: nobody took it".to_owned(),
                StorageOutcome::Unfunded { .. } => "closed: never funded".to_owned(),
                StorageOutcome::Completed { .. } => "closed: every period ran".to_owned(),
                StorageOutcome::Failed { period, .. } => format!(
                    "closed: the server failed period {}'s audit; it and every later period go back to the buyer",
                    period + 1
                ),
            },
        }
    }

    /// The server that took the order, in any phase after the take.
    pub fn server(&self) -> Option<PublicKey> {
        match *self {
            StoragePhase::Open => None,
            StoragePhase::Taken { server, .. } | StoragePhase::Running { server, .. } => {
                Some(server)
            }
            StoragePhase::Closed(o) => match o {
                StorageOutcome::Unfunded { server }
                | StorageOutcome::Completed { server }
                | StorageOutcome::Failed { server, .. } => Some(server),
                StorageOutcome::Cancelled | StorageOutcome::Expired => None,
            },
        }
    }

    /// Whether the order is closed (nothing more happens to it).
    pub fn is_closed(&self) -> bool {
        matches!(self, StoragePhase::Closed(_))
    }
}

impl StorageAction {
    /// The action's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Take => "take",
            Self::Fund => "fund",
            Self::Challenge(_) => "challenge",
            Self::Answer(_) => "answer",
            Self::Release => "confirm",
        }
    }
}

/// Why a challenge cannot be answered ([`StorageTerms::answer`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError<E> {
    /// A challenged shard could not be read.
    #[error("a challenged shard cannot be read: {0}")]
    Read(E),
    /// The bytes read are not the shard the order names (size or audit root differ).
    #[error("the copy of {} is not the shard the order names (its size or audit root differ): it cannot pass the audit", shard.blob)]
    Mismatch {
        /// The shard as the order names it.
        shard: StoredShard,
    },
}

/// A storage order: its terms, what escrow holds, its phase and how each period went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageOrder {
    terms: StorageTerms,
    /// The buyer's funds in escrow: the price of every period not yet settled (0 before the
    /// order is funded).
    escrow: Amount,
    /// The taking server's bond in escrow.
    bond: Amount,
    phase: StoragePhase,
    settled: Vec<Settled>,
}

impl StorageTerms {
    /// Checks the terms as posted at `now`.
    ///
    /// # Errors
    /// [`TermsError`] naming what is wrong.
    pub fn check(&self, now: Time) -> Result<(), TermsError> {
        crate::check_listed(
            &self.servers,
            &self.buyer,
            "the buyer cannot be one of the servers",
        )?;
        if self.shards.is_empty() || self.shards.len() > MAX_ORDER_SHARDS {
            return Err(TermsError::Conflict {
                what: "a storage order names 1 to 1024 shards",
            });
        }
        for (i, s) in self.shards.iter().enumerate() {
            if !(1..=MAX_SHARD_BYTES).contains(&s.size) {
                return Err(TermsError::Conflict {
                    what: "a shard is 1 byte to 4 GiB",
                });
            }
            if self.shards[..i].iter().any(|o| o.blob == s.blob) {
                return Err(TermsError::Conflict {
                    what: "a shard is named twice",
                });
            }
        }
        if self.price == 0 {
            return Err(TermsError::Zero { what: "price" });
        }
        if !(1..=MAX_PERIODS).contains(&self.periods) {
            return Err(TermsError::Zero {
                what: "number of periods (at most 1000)",
            });
        }
        if !(1..=MAX_CHALLENGES as u64).contains(&self.challenges) {
            return Err(TermsError::Zero {
                what: "number of challenges (at most 8)",
            });
        }
        if self
            .price
            .checked_mul(self.periods)
            .and_then(|p| p.checked_add(self.bond))
            .is_none()
        {
            return Err(TermsError::Overflow);
        }
        crate::check_windows(
            self.take_by,
            now,
            &[
                ("fund_within", self.fund_within),
                ("period", self.period),
                ("answer_within", self.answer_within),
            ],
        )?;
        if self.answer_within >= self.period {
            return Err(TermsError::Deadline {
                what: "answer_within",
                reason: "must be shorter than a period, so that a challenge fits in one",
            });
        }
        if self.period.saturating_mul(self.periods) > MAX_TERM {
            return Err(TermsError::Deadline {
                what: "periods",
                reason: "all periods together must end within ten years",
            });
        }
        Ok(())
    }

    /// The shards' sizes, in the order's order (what [`audit::positions`] draws over).
    pub fn sizes(&self) -> Vec<u64> {
        self.shards.iter().map(|s| s.size).collect()
    }

    /// The positions a challenge with `nonce` asks for in period `period`.
    pub fn positions(&self, nonce: &Digest, period: u64) -> Vec<Position> {
        let count =
            usize::try_from(self.challenges).map_or(MAX_CHALLENGES, |c| c.min(MAX_CHALLENGES));
        audit::positions(nonce, period, &self.sizes(), count)
    }

    /// The openings that answer period `period`'s challenge `nonce`, one per position in
    /// order, proved from the shards `read` gives: each challenged shard is read once, and
    /// only one is held at a time (a server answers from its own copies; the buyer, holding
    /// only roots, checks the answer with [`audit::verify`]).
    ///
    /// `read` is asked for a shard's bytes; what it returns is checked against the shard's
    /// size and audit root before a leaf is proved, so a copy that rotted fails here, not in
    /// the buyer's fold.
    ///
    /// # Errors
    /// [`AnswerError::Read`] with `read`'s error; [`AnswerError::Mismatch`] for bytes that are
    /// not the shard the order names.
    pub fn answer<B: std::ops::Deref<Target = [u8]>, E>(
        &self,
        nonce: &Digest,
        period: u64,
        mut read: impl FnMut(&StoredShard) -> Result<B, E>,
    ) -> Result<Vec<Opening>, AnswerError<E>> {
        let positions = self.positions(nonce, period);
        let mut openings: Vec<Option<Opening>> = vec![None; positions.len()];
        let mut wanted: Vec<usize> = positions.iter().map(|p| p.shard).collect();
        wanted.sort_unstable();
        wanted.dedup();
        for index in wanted {
            let shard = &self.shards[index];
            let bytes = read(shard).map_err(AnswerError::Read)?;
            if bytes.len() as u64 != shard.size || audit::root(&bytes) != shard.root {
                return Err(AnswerError::Mismatch { shard: *shard });
            }
            for (slot, p) in openings.iter_mut().zip(&positions) {
                if p.shard == index {
                    let (bytes, path) = audit::prove(&bytes, p.leaf)
                        .ok_or(AnswerError::Mismatch { shard: *shard })?;
                    *slot = Some(Opening { bytes, path });
                }
            }
        }
        Ok(openings.into_iter().flatten().collect())
    }
}

impl StorageOrder {
    /// The order `terms` posted at `now`. Posting locks nothing: the buyer funds the order
    /// once a server has taken it ([`StorageAction::Fund`]).
    ///
    /// # Errors
    /// [`TermsError`] for terms that could not run to an end.
    pub fn post(terms: StorageTerms, now: Time) -> Result<(Self, Vec<Effect>), TermsError> {
        terms.check(now)?;
        Ok((
            StorageOrder {
                terms,
                escrow: 0,
                bond: 0,
                phase: StoragePhase::Open,
                settled: Vec::new(),
            },
            Vec::new(),
        ))
    }

    /// The terms.
    pub fn terms(&self) -> &StorageTerms {
        &self.terms
    }

    /// Where the order is.
    pub fn phase(&self) -> StoragePhase {
        self.phase
    }

    /// How each period so far was settled, period 0 first.
    pub fn settled(&self) -> &[Settled] {
        &self.settled
    }

    /// What escrow holds for it now (0 once closed).
    pub fn held(&self) -> Amount {
        self.escrow + self.bond
    }

    /// Whether the order is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, StoragePhase::Closed(_))
    }

    /// When period `period` of an order taken at `since` ends.
    fn period_end(&self, since: Time, period: u64) -> Time {
        since.saturating_add(self.terms.period.saturating_mul(period + 1))
    }

    /// The next deadline, if any, and what happens then if nobody acts.
    pub fn next_deadline(&self) -> Option<(Time, &'static str)> {
        let t = &self.terms;
        match self.phase {
            StoragePhase::Open => Some((t.take_by, "expires: nothing was locked")),
            StoragePhase::Taken { at, .. } => Some((
                at.saturating_add(t.fund_within),
                "closes unfunded: the server's bond goes back",
            )),
            StoragePhase::Running {
                audit: Audit::Challenged { at, .. },
                ..
            } => Some((
                at.saturating_add(t.answer_within),
                "the audit fails: the rest is refunded and the bond goes to the buyer",
            )),
            StoragePhase::Running {
                since,
                period,
                audit,
                ..
            } => Some((
                self.period_end(since, period),
                match (audit, t.unaudited) {
                    (Audit::Passed { .. }, _) => "the period ends: the server is paid",
                    (_, Ruling::Pay) => "the period ends unaudited: the server is paid",
                    (_, Ruling::Refund) => "the period ends unaudited: the buyer is refunded",
                },
            )),
            StoragePhase::Closed(_) => None,
        }
    }

    /// The order at `now`: every deadline passed before then taken, in order. What the
    /// timeouts release is returned.
    pub fn tick(&self, now: Time) -> (Self, Vec<Effect>) {
        let mut order = self.clone();
        let mut effects = Vec::new();
        while let Some((deadline, _)) = order.next_deadline() {
            if now < deadline {
                break;
            }
            match order.phase {
                StoragePhase::Open => {
                    effects.extend(order.close(StorageOutcome::Expired));
                }
                StoragePhase::Taken { server, .. } => {
                    effects.extend(order.close(StorageOutcome::Unfunded { server }));
                }
                StoragePhase::Running {
                    server,
                    period,
                    audit: Audit::Challenged { .. },
                    ..
                } => {
                    order.settled.push(Settled::Failed);
                    effects.extend(order.close(StorageOutcome::Failed { server, period }));
                }
                StoragePhase::Running {
                    server,
                    since,
                    period,
                    audit,
                } => {
                    let (settled, to, why) = match (audit, order.terms.unaudited) {
                        (Audit::Passed { .. }, _) => (Settled::Passed, server, Why::Payment),
                        (_, Ruling::Pay) => (Settled::Unaudited(Ruling::Pay), server, Why::Payment),
                        (_, Ruling::Refund) => (
                            Settled::Unaudited(Ruling::Refund),
                            order.terms.buyer,
                            Why::Refund,
                        ),
                    };
                    let amount = order.terms.price;
                    order.escrow -= amount;
                    order.settled.push(settled);
                    effects.push(Effect::Release { to, amount, why });
                    if period + 1 == order.terms.periods {
                        effects.extend(order.close(StorageOutcome::Completed { server }));
                    } else {
                        order.phase = StoragePhase::Running {
                            server,
                            since,
                            period: period + 1,
                            audit: Audit::Waiting,
                        };
                    }
                }
                StoragePhase::Closed(_) => break,
            }
        }
        (order, effects)
    }

    /// `action` by `by` at `now`: first every deadline passed by then
    /// ([`tick`](Self::tick)), then the action, which must be `by`'s to take in the phase the
    /// order is in.
    ///
    /// # Errors
    /// [`Refused`] — the order is unchanged.
    pub fn apply(
        &self,
        by: PublicKey,
        action: &StorageAction,
        now: Time,
    ) -> Result<(Self, Vec<Effect>), Refused> {
        let (mut order, mut effects) = self.tick(now);
        let buyer = by == order.terms.buyer;
        match (action, order.phase) {
            // A release is the buyer's consent to a payment the fold already owes; it may
            // come after the period, or the order, ended.
            (
                StorageAction::Release,
                StoragePhase::Running { .. }
                | StoragePhase::Closed(
                    StorageOutcome::Completed { .. } | StorageOutcome::Failed { .. },
                ),
            ) if buyer => {}
            (_, StoragePhase::Closed(_)) => return Err(Refused::Closed),
            (StorageAction::Cancel, StoragePhase::Open) if buyer => {
                effects.extend(order.close(StorageOutcome::Cancelled));
            }
            (StorageAction::Take, StoragePhase::Open) if order.terms.servers.contains(&by) => {
                order.bond = order.terms.bond;
                order.phase = StoragePhase::Taken {
                    server: by,
                    at: now,
                };
                if order.bond > 0 {
                    effects.push(Effect::Lock {
                        from: by,
                        amount: order.bond,
                    });
                }
            }
            (StorageAction::Fund, StoragePhase::Taken { server, .. }) if buyer => {
                // `check` made sure that price × periods fits.
                order.escrow = order.terms.price * order.terms.periods;
                order.phase = StoragePhase::Running {
                    server,
                    since: now,
                    period: 0,
                    audit: Audit::Waiting,
                };
                effects.push(Effect::Lock {
                    from: by,
                    amount: order.escrow,
                });
            }
            (
                StorageAction::Challenge(nonce),
                StoragePhase::Running {
                    server,
                    since,
                    period,
                    audit: Audit::Waiting,
                },
            ) if buyer => {
                let end = order.period_end(since, period);
                if now.saturating_add(order.terms.answer_within) > end {
                    return Err(Refused::TooLate { period_end: end });
                }
                order.phase = StoragePhase::Running {
                    server,
                    since,
                    period,
                    audit: Audit::Challenged {
                        nonce: *nonce,
                        at: now,
                    },
                };
            }
            (
                StorageAction::Answer(openings),
                StoragePhase::Running {
                    server,
                    since,
                    period,
                    audit: Audit::Challenged { nonce, .. },
                },
            ) if by == server => {
                order.check_answer(&nonce, period, openings)?;
                order.phase = StoragePhase::Running {
                    server,
                    since,
                    period,
                    audit: Audit::Passed { at: now },
                };
            }
            (action, phase) => {
                return Err(Refused::NotYours {
                    action: action.name(),
                    by,
                    phase: phase_name(phase),
                });
            }
        }
        Ok((order, effects))
    }

    /// Checks an answer to the challenge `nonce` of period `period`.
    fn check_answer(
        &self,
        nonce: &Digest,
        period: u64,
        openings: &[Opening],
    ) -> Result<(), Refused> {
        let positions = self.terms.positions(nonce, period);
        if openings.len() != positions.len() {
            return Err(Refused::Openings {
                expected: positions.len(),
                found: openings.len(),
            });
        }
        for (index, (p, o)) in positions.iter().zip(openings).enumerate() {
            let shard = &self.terms.shards[p.shard];
            audit::verify(&shard.root, shard.size, p.leaf, &o.bytes, &o.path)
                .map_err(|reason| Refused::Unproven { index, reason })?;
        }
        Ok(())
    }

    /// Closes the order with `outcome`, releasing everything escrow holds: the unsettled
    /// periods back to the buyer; the bond back to the server, or to the buyer when it failed.
    fn close(&mut self, outcome: StorageOutcome) -> Vec<Effect> {
        let buyer = self.terms.buyer;
        let mut effects = Vec::new();
        if self.escrow > 0 {
            effects.push(Effect::Release {
                to: buyer,
                amount: self.escrow,
                why: Why::Refund,
            });
        }
        if self.bond > 0 {
            match outcome {
                StorageOutcome::Failed { .. } => effects.push(Effect::Release {
                    to: buyer,
                    amount: self.bond,
                    why: Why::BondForfeited,
                }),
                StorageOutcome::Completed { server } | StorageOutcome::Unfunded { server } => {
                    effects.push(Effect::Release {
                        to: server,
                        amount: self.bond,
                        why: Why::BondReturned,
                    });
                }
                // No server took a cancelled or expired order: it locked no bond.
                StorageOutcome::Cancelled | StorageOutcome::Expired => {}
            }
        }
        self.escrow = 0;
        self.bond = 0;
        self.phase = StoragePhase::Closed(outcome);
        effects
    }
}

fn phase_name(phase: StoragePhase) -> &'static str {
    match phase {
        StoragePhase::Open => "open",
        StoragePhase::Taken { .. } => "taken, not yet funded",
        StoragePhase::Running {
            audit: Audit::Waiting,
            ..
        } => "running, not yet audited this period",
        StoragePhase::Running {
            audit: Audit::Challenged { .. },
            ..
        } => "running, challenged",
        StoragePhase::Running {
            audit: Audit::Passed { .. },
            ..
        } => "running, audited this period",
        StoragePhase::Closed(_) => "closed",
    }
}
