//! An order's state as a deterministic fold over its signed events: any party that holds the
//! same events computes the same state, whatever order they arrived in.

use agigit_event::market::{DefaultRule, OrderAction, OrderVerb, PullOrderEvent};
use agigit_event::nostr::prelude::{Event, EventId};
use agigit_event::{ParseError, RepoCoordinate, Signed};

use crate::{Action, Effect, PullOrder, PullTerms, Refused, Ruling, TermsError, Time};

/// The most action events one fold reads (an order needs a handful; the rest would only be a
/// stranger's noise). Beyond it, the newest are left out.
pub const MAX_ACTIONS: usize = 4096;

/// An order folded from its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folded {
    /// The order event's id.
    pub id: EventId,
    /// The repository it is for.
    pub repo: RepoCoordinate,
    /// The order as the events (and the time given) leave it.
    pub order: PullOrder,
    /// Everything the order's escrow did, in order: what a ledger must have done.
    pub effects: Vec<Effect>,
    /// Actions that were valid events but not allowed when they came, and why.
    pub refused: Vec<(EventId, Refused)>,
    /// Events left out before the state machine saw them, and why (by event id).
    pub ignored: Vec<(EventId, String)>,
}

/// Why an order cannot be folded at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FoldError {
    /// The order event is not a valid, signed kind-1721 event.
    #[error("not a pull order: {0}")]
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

fn action(verb: OrderVerb) -> Action {
    match verb {
        OrderVerb::Raise(a) => Action::Raise(a),
        OrderVerb::Cancel => Action::Cancel,
        OrderVerb::Take => Action::Take,
        OrderVerb::Deliver => Action::Deliver,
        OrderVerb::Confirm => Action::Confirm,
        OrderVerb::Dispute => Action::Dispute,
        OrderVerb::Rule(r) => Action::Rule(ruling(r)),
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
        deliver_within: o.deliver_within,
        confirm_within: o.confirm_within,
        arbitrate_within: o.arbitrate_within,
        default_rule: ruling(o.default_rule),
    }
}

/// Folds `order` (a kind-1721 event) and `actions` (kind-1722 events, any order, repeats and
/// strangers' events allowed): each action verified, applied by its author at its `created_at`,
/// earliest first (ties by id); then, with `now`, every deadline passed by then.
///
/// Times are the signers' own: an event's `created_at` is what its author claims. The ledger
/// holds the money and enforces the deadlines on its own clock (a refund path opens at the
/// deadline whatever anyone signs); this fold is the parties' shared view of the order.
///
/// # Errors
/// [`FoldError`] when `order` is not a valid pull order.
pub fn fold(
    order: &Event,
    actions: impl IntoIterator<Item = Event>,
    now: Option<Time>,
) -> Result<Folded, FoldError> {
    let signed = Signed::<PullOrderEvent>::from_event(order.clone())?;
    let posted = signed.created_at().as_secs();
    let (mut state, mut effects) = PullOrder::post(terms_of(&signed), posted)?;
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
    for a in valid {
        match state.apply(a.author(), action(a.body().verb), a.created_at().as_secs()) {
            Ok((next, done)) => {
                state = next;
                effects.extend(done);
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
        repo: signed.body().repo.clone(),
        order: state,
        effects,
        refused,
        ignored,
    })
}
