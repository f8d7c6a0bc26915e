//! An order's state as a deterministic fold over its signed events: any party that holds the
//! same events computes the same state, whatever order they arrived in.

use agigit_event::market::{
    DefaultRule, OrderAction, OrderVerb, PullOrderEvent, StorageOrderEvent,
};
use agigit_event::nostr::prelude::{Event, EventId, PublicKey};
use agigit_event::{ParseError, ProtocolEvent, RepoCoordinate, Signed};

use crate::storage::{StorageAction, StorageOrder, StorageTerms};
use crate::{Action, Effect, PullOrder, PullTerms, Refused, Ruling, TermsError, Time};

/// The most action events one fold reads (an order needs a handful; the rest would only be a
/// stranger's noise). Beyond it, the newest are left out.
pub const MAX_ACTIONS: usize = 4096;

/// An order kind the fold can run: its event, its actions, and its state machine.
pub trait Order: Clone + Sized {
    /// The order's event (kind 1721 or 1723).
    type Event: ProtocolEvent;
    /// The actions it knows.
    type Action;

    /// The order as its verified event posts it.
    ///
    /// # Errors
    /// [`TermsError`] for terms that could not run to an end.
    fn post(order: &Signed<Self::Event>) -> Result<(Self, Vec<Effect>), TermsError>;

    /// The repository the event names.
    fn repo(order: &Self::Event) -> &RepoCoordinate;

    /// The action a verb asks of this kind of order; `None` for one it does not know.
    fn action(verb: &OrderVerb) -> Option<Self::Action>;

    /// The action by `by` at `now`, deadlines passed by then first.
    ///
    /// # Errors
    /// [`Refused`]: the order is unchanged.
    fn apply(
        &self,
        by: PublicKey,
        action: &Self::Action,
        now: Time,
    ) -> Result<(Self, Vec<Effect>), Refused>;

    /// The order at `now`, every deadline passed by then applied.
    fn tick(&self, now: Time) -> (Self, Vec<Effect>);
}

/// An order folded from its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folded<O = PullOrder> {
    /// The order event's id.
    pub id: EventId,
    /// The repository it is for.
    pub repo: RepoCoordinate,
    /// The order as the events (and the time given) leave it.
    pub order: O,
    /// Everything the order's escrow did, in order: what a ledger must have done.
    pub effects: Vec<Effect>,
    /// Actions that were valid events but not allowed when they came, and why.
    pub refused: Vec<(EventId, Refused)>,
    /// Events left out before the state machine saw them, and why (by event id).
    pub ignored: Vec<(EventId, String)>,
    /// The time of the latest event the state machine applied (the order's own when no
    /// action was): see [`next_time`](Self::next_time).
    pub latest: Time,
}

impl<O> Folded<O> {
    /// When a new action on the order is to be dated: `now`, or a second after the latest
    /// event the fold applied when that is later. The fold orders actions by their time (ties
    /// by id), so an action dated in the same second as the one it answers could sort before
    /// it. Refused and ignored events do not count: a stranger's event dated far ahead moves
    /// nothing.
    pub fn next_time(&self, now: Time) -> Time {
        now.max(self.latest.saturating_add(1))
    }
}

/// Why an order cannot be folded at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FoldError {
    /// The order event is not a valid, signed order event of the kind asked for.
    #[error("not a valid order event: {0}")]
    Order(#[from] ParseError),
    /// Its terms could not run to an end.
    #[error("the order's terms: {0}")]
    Terms(#[from] TermsError),
}

fn ruling(r: DefaultRule) -> Ruling {
    match r {
        DefaultRule::Pay => Ruling::Pay,
        DefaultRule::Refund => Ruling::Refund,
    }
}

impl Order for PullOrder {
    type Event = PullOrderEvent;
    type Action = Action;

    fn post(order: &Signed<PullOrderEvent>) -> Result<(Self, Vec<Effect>), TermsError> {
        PullOrder::post(terms_of(order), order.created_at().as_secs())
    }

    fn repo(order: &PullOrderEvent) -> &RepoCoordinate {
        &order.repo
    }

    fn action(verb: &OrderVerb) -> Option<Action> {
        Some(match verb {
            OrderVerb::Raise(a) => Action::Raise(*a),
            OrderVerb::Cancel => Action::Cancel,
            OrderVerb::Take => Action::Take,
            OrderVerb::Fund => Action::Fund,
            OrderVerb::Deliver => Action::Deliver,
            OrderVerb::Confirm => Action::Confirm,
            OrderVerb::Dispute => Action::Dispute,
            OrderVerb::Rule(r) => Action::Rule(ruling(*r)),
            OrderVerb::Challenge(_) | OrderVerb::Answer(_) => return None,
        })
    }

    fn apply(
        &self,
        by: PublicKey,
        action: &Action,
        now: Time,
    ) -> Result<(Self, Vec<Effect>), Refused> {
        PullOrder::apply(self, by, *action, now)
    }

    fn tick(&self, now: Time) -> (Self, Vec<Effect>) {
        PullOrder::tick(self, now)
    }
}

impl Order for StorageOrder {
    type Event = StorageOrderEvent;
    type Action = StorageAction;

    fn post(order: &Signed<StorageOrderEvent>) -> Result<(Self, Vec<Effect>), TermsError> {
        StorageOrder::post(storage_terms_of(order), order.created_at().as_secs())
    }

    fn repo(order: &StorageOrderEvent) -> &RepoCoordinate {
        &order.repo
    }

    fn action(verb: &OrderVerb) -> Option<StorageAction> {
        Some(match verb {
            OrderVerb::Cancel => StorageAction::Cancel,
            OrderVerb::Take => StorageAction::Take,
            OrderVerb::Fund => StorageAction::Fund,
            OrderVerb::Challenge(nonce) => StorageAction::Challenge(*nonce),
            OrderVerb::Answer(openings) => StorageAction::Answer(openings.clone()),
            OrderVerb::Confirm => StorageAction::Release,
            _ => return None,
        })
    }

    fn apply(
        &self,
        by: PublicKey,
        action: &StorageAction,
        now: Time,
    ) -> Result<(Self, Vec<Effect>), Refused> {
        StorageOrder::apply(self, by, action, now)
    }

    fn tick(&self, now: Time) -> (Self, Vec<Effect>) {
        StorageOrder::tick(self, now)
    }
}

/// The terms a verified storage order event states: its author is the buyer.
pub fn storage_terms_of(order: &Signed<StorageOrderEvent>) -> StorageTerms {
    let o = order.body();
    StorageTerms {
        buyer: order.author(),
        shards: o.shards.clone(),
        servers: o.servers.clone(),
        price: o.price,
        periods: o.periods,
        period: o.period,
        bond: o.bond,
        take_by: o.take_by,
        fund_within: o.fund_within,
        answer_within: o.answer_within,
        challenges: o.challenges,
        unaudited: ruling(o.unaudited),
    }
}

/// The terms a verified order event states: its author is the buyer.
pub fn terms_of(order: &Signed<PullOrderEvent>) -> PullTerms {
    let o = order.body();
    PullTerms {
        buyer: order.author(),
        model: o.model,
        relays: o.relays.clone(),
        price: o.price,
        tip: o.tip,
        bond: o.bond,
        arbiter: o.arbiter,
        take_by: o.take_by,
        fund_within: o.fund_within,
        deliver_within: o.deliver_within,
        confirm_within: o.confirm_within,
        arbitrate_within: o.arbitrate_within,
        default_rule: ruling(o.default_rule),
    }
}

/// Folds a pull order: [`fold_order`] for kind 1721.
///
/// # Errors
/// [`FoldError`] when `order` is not a valid pull order.
pub fn fold(
    order: &Event,
    actions: impl IntoIterator<Item = Event>,
    now: Option<Time>,
) -> Result<Folded<PullOrder>, FoldError> {
    fold_order(order, actions, now)
}

/// Folds a storage order: [`fold_order`] for kind 1723.
///
/// # Errors
/// [`FoldError`] when `order` is not a valid storage order.
pub fn fold_storage(
    order: &Event,
    actions: impl IntoIterator<Item = Event>,
    now: Option<Time>,
) -> Result<Folded<StorageOrder>, FoldError> {
    fold_order(order, actions, now)
}

/// Folds `order` (an order event of `O`'s kind) and `actions` (kind-1722 events, any order, repeats and
/// strangers' events allowed): each action verified, applied by its author at its `created_at`,
/// earliest first (ties by id); then, with `now`, every deadline passed by then.
///
/// Times are the signers' own: an event's `created_at` is what its author claims. The ledger
/// holds the money and enforces the deadlines on its own clock (a refund path opens at the
/// deadline whatever anyone signs); this fold is the parties' shared view of the order.
///
/// # Errors
/// [`FoldError`] when `order` is not a valid order event of `O`'s kind.
pub fn fold_order<O: Order>(
    order: &Event,
    actions: impl IntoIterator<Item = Event>,
    now: Option<Time>,
) -> Result<Folded<O>, FoldError> {
    let signed = Signed::<O::Event>::from_event(order.clone())?;
    let posted = signed.created_at().as_secs();
    let (mut state, mut effects) = O::post(&signed)?;
    let id = signed.id();
    let mut ignored = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut valid: Vec<Signed<OrderAction>> = Vec::new();
    for event in actions {
        let event_id = event.id;
        if !seen.insert(event_id) {
            continue;
        }
        match Signed::<OrderAction>::from_event(event) {
            Err(e) => ignored.push((event_id, e.to_string())),
            Ok(a) if a.body().order != id => {
                ignored.push((event_id, "an action on another order".to_owned()));
            }
            Ok(a) if a.created_at().as_secs() < posted => {
                ignored.push((event_id, "dated before the order".to_owned()));
            }
            Ok(a) => valid.push(a),
        }
    }
    valid.sort_by_key(|a| (a.created_at(), a.id()));
    for extra in valid.drain(MAX_ACTIONS.min(valid.len())..) {
        ignored.push((extra.id(), format!("past the first {MAX_ACTIONS} actions")));
    }
    let mut refused = Vec::new();
    let mut latest = posted;
    for a in valid {
        let Some(action) = O::action(&a.body().verb) else {
            refused.push((
                a.id(),
                Refused::NotThisKind {
                    action: a.body().verb.as_str(),
                },
            ));
            continue;
        };
        match state.apply(a.author(), &action, a.created_at().as_secs()) {
            Ok((next, done)) => {
                state = next;
                effects.extend(done);
                latest = latest.max(a.created_at().as_secs());
            }
            Err(why) => refused.push((a.id(), why)),
        }
    }
    // Left out in id order, so that the fold is the same whatever order events arrived in.
    ignored.sort();
    if let Some(now) = now {
        let (next, done) = state.tick(now);
        state = next;
        effects.extend(done);
    }
    Ok(Folded {
        id,
        repo: O::repo(signed.body()).clone(),
        order: state,
        effects,
        refused,
        ignored,
        latest,
    })
}
