//! Pull orders: a buyer pays one of the relays it lists to serve a model, and the price leaves
//! escrow only after delivery is confirmed by the buyer or ruled by the order's arbiter.
//!
//! The buyer's funds are locked when it funds a taken order — escrow on a real ledger names its
//! payee, which is known only once a relay takes — and the relay serves only a funded order.

use agigit_hash::ObjectId;
use nostr::prelude::PublicKey;

use crate::{Amount, Effect, Refused, TermsError, Time, Why};

/// The most relays a pull order may list.
pub const MAX_RELAYS: usize = 64;

/// The longest any deadline of an order may be (a year): a window cannot be used to keep funds
/// out of reach for good.
pub const MAX_WINDOW: Time = 366 * 24 * 3600;

/// What a dispute's timeout does when the arbiter has not ruled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ruling {
    /// The relay is paid (its delivery stands).
    Pay,
    /// The buyer gets its escrow back (the relay's bond is returned: it did not abandon).
    Refund,
}

/// What a buyer posts: signed by it, fixed for the order's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullTerms {
    /// Who pays, and the only key that may raise, cancel, confirm or dispute.
    pub buyer: PublicKey,
    /// What is to be served: the commit whose history the buyer wants.
    pub model: ObjectId,
    /// The relays that may take the order (the taker is the key that signs the take — never a
    /// key named in it).
    pub relays: Vec<PublicKey>,
    /// Paid to the relay once delivery is confirmed or ruled.
    pub price: Amount,
    /// Paid with the price.
    pub tip: Amount,
    /// What the relay locks when it takes the order; the buyer's if the relay abandons it.
    pub bond: Amount,
    /// Who decides a dispute; `None`: the default rule decides at the dispute's timeout.
    pub arbiter: Option<PublicKey>,
    /// An order nobody takes by then expires (nothing was locked).
    pub take_by: Time,
    /// A taken order the buyer has not funded within this long closes unfunded: the relay's
    /// bond goes back.
    pub fund_within: Time,
    /// A relay that has not delivered within this long of the funding abandons the order.
    pub deliver_within: Time,
    /// A buyer that neither confirms nor disputes within this long of the delivery: the order
    /// goes to dispute (a buyer's silence pays no one by itself).
    pub confirm_within: Time,
    /// A dispute the arbiter has not ruled within this long is settled by `default_rule`.
    pub arbitrate_within: Time,
    /// What a dispute's timeout does; `Pay` needs an arbiter (on a ledger, someone must sign
    /// the payment the rule decides).
    pub default_rule: Ruling,
}

/// Where an order is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Posted; any listed relay may take it until `take_by`.
    Open,
    /// Taken by `relay` at `at`; the buyer funds it within `fund_within`.
    Taken {
        /// The relay that signed the take.
        relay: PublicKey,
        /// When.
        at: Time,
    },
    /// Funded by the buyer at `at`: the price is in escrow for `relay`, which must deliver
    /// within `deliver_within`.
    Funded {
        /// The relay.
        relay: PublicKey,
        /// When the buyer funded it.
        at: Time,
    },
    /// The relay says it delivered at `at`; the buyer confirms or disputes.
    Delivered {
        /// The relay.
        relay: PublicKey,
        /// When it said so.
        at: Time,
    },
    /// Delivery contested (or the buyer silent) since `at`; the arbiter rules.
    Disputed {
        /// The relay.
        relay: PublicKey,
        /// When the dispute began.
        at: Time,
    },
    /// Over; no action changes it.
    Closed(Outcome),
}

/// How an order ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The buyer confirmed, or the arbiter (or the default rule) ruled for the relay: it was paid.
    Paid {
        /// The relay paid.
        relay: PublicKey,
    },
    /// The buyer cancelled before anyone took it (nothing was locked).
    Cancelled,
    /// Nobody took it by `take_by` (nothing was locked).
    Expired,
    /// The buyer did not fund the taken order in time: the relay's bond went back.
    Unfunded {
        /// The relay that took it.
        relay: PublicKey,
    },
    /// The relay did not deliver in time: refunded, and the relay's bond went to the buyer.
    Abandoned {
        /// The relay that took it.
        relay: PublicKey,
    },
    /// The arbiter (or the default rule) ruled for the buyer: refunded, the bond returned.
    Refunded {
        /// The relay that took it.
        relay: PublicKey,
    },
}

/// Something a party asks of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The buyer adds to what it will pay (the seed's `raise_payment`), before it funds.
    Raise(Amount),
    /// The buyer withdraws an order nobody took.
    Cancel,
    /// A listed relay takes the order (the seed's `take_order`).
    Take,
    /// The buyer locks price, tip and raises into escrow for the taking relay.
    Fund,
    /// The taking relay says it has served the model.
    Deliver,
    /// The buyer confirms it received the model, every shard checked by its hash (the seed's
    /// `confirm_received`).
    Confirm,
    /// The buyer contests the delivery.
    Dispute,
    /// The arbiter rules a dispute.
    Rule(Ruling),
}

impl Phase {
    /// Where the order stands, in words (what a person reading a list wants to know).
    pub fn describe(&self) -> String {
        match self {
            Phase::Open => "open".to_owned(),
            Phase::Taken { .. } => "taken, waiting for the buyer to fund it".to_owned(),
            Phase::Funded { .. } => "funded, waiting for the relay to deliver".to_owned(),
            Phase::Delivered { .. } => "delivered, waiting for the buyer to confirm".to_owned(),
            Phase::Disputed { .. } => "disputed, waiting for the arbiter".to_owned(),
            Phase::Closed(o) => match o {
                Outcome::Paid { .. } => "closed: the relay is paid".to_owned(),
                Outcome::Cancelled => "closed: cancelled".to_owned(),
                Outcome::Expired => "closed: nobody took it".to_owned(),
                Outcome::Unfunded { .. } => "closed: never funded".to_owned(),
                Outcome::Abandoned { .. } => "closed: abandoned, the buyer is refunded".to_owned(),
                Outcome::Refunded { .. } => "closed: ruled for the buyer".to_owned(),
            },
        }
    }

    /// The relay that took the order, in any phase after the take.
    pub fn relay(&self) -> Option<PublicKey> {
        match *self {
            Phase::Open => None,
            Phase::Taken { relay, .. }
            | Phase::Funded { relay, .. }
            | Phase::Delivered { relay, .. }
            | Phase::Disputed { relay, .. } => Some(relay),
            Phase::Closed(o) => match o {
                Outcome::Paid { relay }
                | Outcome::Unfunded { relay }
                | Outcome::Abandoned { relay }
                | Outcome::Refunded { relay } => Some(relay),
                Outcome::Cancelled | Outcome::Expired => None,
            },
        }
    }

    /// Whether the order is closed (nothing more happens to it).
    pub fn is_closed(&self) -> bool {
        matches!(self, Phase::Closed(_))
    }
}

impl Action {
    /// The action's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Raise(_) => "raise",
            Self::Cancel => "cancel",
            Self::Take => "take",
            Self::Fund => "fund",
            Self::Deliver => "deliver",
            Self::Confirm => "confirm",
            Self::Dispute => "dispute",
            Self::Rule(_) => "rule",
        }
    }
}

/// A pull order: its terms, what escrow holds, and its phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullOrder {
    terms: PullTerms,
    /// What the buyer will pay: price, tip and raises.
    owed: Amount,
    /// The buyer's funds in escrow: `owed` once funded, 0 before.
    escrow: Amount,
    /// The taking relay's bond in escrow.
    bond: Amount,
    phase: Phase,
}

impl PullTerms {
    /// Checks the terms as posted at `now`.
    ///
    /// # Errors
    /// [`TermsError`] naming what is wrong.
    pub fn check(&self, now: Time) -> Result<(), TermsError> {
        crate::check_listed(
            &self.relays,
            &self.buyer,
            "the buyer cannot be one of the relays",
        )?;
        if let Some(a) = self.arbiter
            && (a == self.buyer || self.relays.contains(&a))
        {
            return Err(TermsError::Conflict {
                what: "the arbiter must be neither the buyer nor a relay",
            });
        }
        if self.default_rule == Ruling::Pay && self.arbiter.is_none() {
            return Err(TermsError::Conflict {
                what: "a default rule that pays needs an arbiter to sign the payment",
            });
        }
        if self.price == 0 {
            return Err(TermsError::Zero { what: "price" });
        }
        if self.price.checked_add(self.tip).is_none() {
            return Err(TermsError::Overflow);
        }
        crate::check_windows(
            self.take_by,
            now,
            &[
                ("fund_within", self.fund_within),
                ("deliver_within", self.deliver_within),
                ("confirm_within", self.confirm_within),
                ("arbitrate_within", self.arbitrate_within),
            ],
        )?;
        Ok(())
    }
}

impl PullOrder {
    /// The order `terms` posted at `now`. Posting locks nothing: the buyer funds the order
    /// once a relay has taken it ([`Action::Fund`]).
    ///
    /// # Errors
    /// [`TermsError`] for terms that could not run to an end.
    pub fn post(terms: PullTerms, now: Time) -> Result<(Self, Vec<Effect>), TermsError> {
        terms.check(now)?;
        let owed = terms.price + terms.tip;
        Ok((
            PullOrder {
                terms,
                owed,
                escrow: 0,
                bond: 0,
                phase: Phase::Open,
            },
            Vec::new(),
        ))
    }

    /// What the buyer will pay (price, tip and raises); in escrow once funded.
    pub fn owed(&self) -> Amount {
        self.owed
    }

    /// The terms.
    pub fn terms(&self) -> &PullTerms {
        &self.terms
    }

    /// Where the order is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// What escrow holds for it now (the buyer's funds and the relay's bond; 0 once closed).
    pub fn held(&self) -> Amount {
        self.escrow + self.bond
    }

    /// Whether the order is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed(_))
    }

    /// The next deadline, if any, and the action it stands for: what happens at that time if
    /// nobody acts.
    pub fn next_deadline(&self) -> Option<(Time, &'static str)> {
        let t = &self.terms;
        match self.phase {
            Phase::Open => Some((t.take_by, "expires: nothing was locked")),
            Phase::Taken { at, .. } => Some((
                at.saturating_add(t.fund_within),
                "closes unfunded: the relay's bond goes back",
            )),
            Phase::Funded { at, .. } => Some((
                at.saturating_add(t.deliver_within),
                "abandoned: the buyer is refunded and gets the relay's bond",
            )),
            Phase::Delivered { at, .. } => Some((
                at.saturating_add(t.confirm_within),
                "goes to dispute: the buyer neither confirmed nor disputed",
            )),
            Phase::Disputed { at, .. } => Some((
                at.saturating_add(t.arbitrate_within),
                match t.default_rule {
                    Ruling::Pay => "the default rule pays the relay",
                    Ruling::Refund => "the default rule refunds the buyer",
                },
            )),
            Phase::Closed(_) => None,
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
            let t = &order.terms;
            match order.phase {
                Phase::Open => {
                    effects.extend(order.close(Outcome::Expired, None));
                }
                Phase::Taken { relay, .. } => {
                    effects.extend(order.close(Outcome::Unfunded { relay }, Some(relay)));
                }
                Phase::Funded { relay, .. } => {
                    effects.extend(order.close(Outcome::Abandoned { relay }, Some(relay)));
                }
                Phase::Delivered { relay, .. } => {
                    order.phase = Phase::Disputed {
                        relay,
                        at: deadline,
                    };
                }
                Phase::Disputed { relay, .. } => {
                    let outcome = match t.default_rule {
                        Ruling::Pay => Outcome::Paid { relay },
                        Ruling::Refund => Outcome::Refunded { relay },
                    };
                    effects.extend(order.close(outcome, Some(relay)));
                }
                Phase::Closed(_) => break,
            }
        }
        (order, effects)
    }

    /// `action` by `by` at `now`: first every deadline passed by then ([`tick`](Self::tick)),
    /// then the action, which must be `by`'s to take in the phase the order is in.
    ///
    /// # Errors
    /// [`Refused`] — the order is unchanged (deadlines passed are still not applied: call
    /// [`tick`](Self::tick) for them).
    pub fn apply(
        &self,
        by: PublicKey,
        action: Action,
        now: Time,
    ) -> Result<(Self, Vec<Effect>), Refused> {
        let (mut order, mut effects) = self.tick(now);
        let t = &order.terms;
        let buyer = by == t.buyer;
        match (action, order.phase) {
            (_, Phase::Closed(_)) => return Err(Refused::Closed),
            (Action::Raise(amount), Phase::Open | Phase::Taken { .. }) if buyer => {
                if amount == 0 {
                    return Err(Refused::Zero);
                }
                order.owed = order
                    .owed
                    .checked_add(amount)
                    .filter(|e| e.checked_add(t.bond).is_some())
                    .ok_or(Refused::Overflow)?;
            }
            (Action::Cancel, Phase::Open) if buyer => {
                effects.extend(order.close(Outcome::Cancelled, None));
            }
            (Action::Take, Phase::Open) if t.relays.contains(&by) => {
                if order.owed.checked_add(t.bond).is_none() {
                    return Err(Refused::Overflow);
                }
                order.bond = t.bond;
                order.phase = Phase::Taken { relay: by, at: now };
                if t.bond > 0 {
                    effects.push(Effect::Lock {
                        from: by,
                        amount: t.bond,
                    });
                }
            }
            (Action::Fund, Phase::Taken { relay, .. }) if buyer => {
                order.escrow = order.owed;
                order.phase = Phase::Funded { relay, at: now };
                effects.push(Effect::Lock {
                    from: by,
                    amount: order.escrow,
                });
            }
            (Action::Deliver, Phase::Funded { relay, .. }) if by == relay => {
                order.phase = Phase::Delivered { relay, at: now };
            }
            (Action::Confirm, Phase::Funded { relay, .. } | Phase::Delivered { relay, .. })
                if buyer =>
            {
                effects.extend(order.close(Outcome::Paid { relay }, Some(relay)));
            }
            (Action::Dispute, Phase::Delivered { relay, .. }) if buyer => {
                order.phase = Phase::Disputed { relay, at: now };
            }
            (Action::Rule(ruling), Phase::Disputed { relay, .. }) if t.arbiter == Some(by) => {
                let outcome = match ruling {
                    Ruling::Pay => Outcome::Paid { relay },
                    Ruling::Refund => Outcome::Refunded { relay },
                };
                effects.extend(order.close(outcome, Some(relay)));
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

    /// Closes the order with `outcome`, releasing everything escrow holds for it: to the
    /// relay when it is paid, to the buyer otherwise; the bond back to `relay`, or to the
    /// buyer when it abandoned.
    fn close(&mut self, outcome: Outcome, relay: Option<PublicKey>) -> Vec<Effect> {
        let buyer = self.terms.buyer;
        let mut effects = Vec::new();
        let (to, why) = match outcome {
            Outcome::Paid { relay } => (relay, Why::Payment),
            _ => (buyer, Why::Refund),
        };
        if self.escrow > 0 {
            effects.push(Effect::Release {
                to,
                amount: self.escrow,
                why,
            });
        }
        if self.bond > 0
            && let Some(relay) = relay
        {
            let (to, why) = match outcome {
                Outcome::Abandoned { .. } => (buyer, Why::BondForfeited),
                _ => (relay, Why::BondReturned),
            };
            effects.push(Effect::Release {
                to,
                amount: self.bond,
                why,
            });
        }
        self.escrow = 0;
        self.bond = 0;
        self.phase = Phase::Closed(outcome);
        effects
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Open => "open",
        Phase::Taken { .. } => "taken, not yet funded",
        Phase::Funded { .. } => "funded",
        Phase::Delivered { .. } => "delivered",
        Phase::Disputed { .. } => "disputed",
        Phase::Closed(_) => "closed",
    }
}
