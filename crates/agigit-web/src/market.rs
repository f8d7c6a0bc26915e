//! What the market holds for a repository, as the explorer shows it: its orders (pull and
//! storage) and its competition rounds with their leaderboards. The host gathers the events and
//! folds them — [`fold_orders`] for the orders (every signature checked, `agigit-market`'s
//! folds), the rounds' fold for the rounds — and hands the explorer these plain values through
//! [`Remotes::market`](crate::Remotes::market); the explorer only draws them.

use std::collections::{HashMap, HashSet};

use agigit::event::RepoCoordinate;
use agigit::event::kinds::{ORDER_ACTION, PULL_ORDER, STORAGE_ORDER, kind};
use agigit::event::nostr::prelude::{Event, EventId};
use agigit_market::{Folded, PullOrder, StorageOrder};

/// A repository's orders and rounds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Market {
    /// Its orders, open ones first.
    pub orders: Vec<OrderRow>,
    /// Its rounds, newest first; `None` where the host does not fold rounds (the page says so).
    pub rounds: Option<Vec<RoundRow>>,
}

/// One order, folded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderRow {
    /// The order event's id (hex).
    pub id: String,
    /// `pull` or `storage`.
    pub kind: String,
    /// Who posted it (hex public key).
    pub buyer: String,
    /// The relay or server that took it, if one did.
    pub provider: Option<String>,
    /// What it pays in all (sats): price and tip, or price times periods.
    pub amount: u64,
    /// What it is about: the commit served, or the blobs kept.
    pub subject: String,
    /// Where it stands, in words.
    pub state: String,
    /// Whether it is still open to act on (not closed).
    pub open: bool,
    /// Its next deadline (Unix seconds) and what happens then if nobody acts.
    pub next: Option<(u64, String)>,
    /// When it was posted (Unix seconds).
    pub created: u64,
}

/// One round and its leaderboard.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoundRow {
    /// The round event's id (hex).
    pub id: String,
    /// Who announced it (hex public key).
    pub organizer: String,
    /// Where it stands: `submissions`, `reveal`, `evaluation`, `challenges`, `settled`, `void`.
    pub phase: String,
    /// The commit to beat.
    pub foundation: String,
    /// The metric (`bits_per_byte`).
    pub metric: String,
    /// The foundation's value on the revealed test set, where a receipt that stands says so.
    pub foundation_value: Option<f64>,
    /// The pool (sats) and how it pays: `one prize`, or `N sats per 1000 bits saved`.
    pub pool: u64,
    /// How the pool pays, in words.
    pub payout: String,
    /// Whether the pool was locked.
    pub funded: bool,
    /// Submissions that count.
    pub submissions: usize,
    /// Deadlines (Unix seconds): submissions close, the test set is revealed, evaluation ends.
    pub submit_by: u64,
    /// See [`submit_by`](Self::submit_by).
    pub reveal_by: u64,
    /// See [`submit_by`](Self::submit_by).
    pub evaluate_by: u64,
    /// Each submission with the value its standing receipts give it, best (lowest) first;
    /// those not evaluated yet last.
    pub leaderboard: Vec<Entry>,
    /// When settled: the champion's commit (`None`: the foundation stays).
    pub champion: Option<String>,
}

/// A submission on a round's leaderboard.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    /// The commit submitted.
    pub commit: String,
    /// Its author (hex public key).
    pub author: String,
    /// Its value on the test set (the metric; lower is better), when evaluated.
    pub value: Option<f64>,
    /// Whether a receipt on it is disputed.
    pub disputed: bool,
    /// When settled: whether it took the lead in its turn, and what it is owed (sats).
    pub lead: bool,
    /// See [`lead`](Self::lead).
    pub reward: u64,
}

/// The pull and storage orders for `repo` among `events`, each folded at `now` with the
/// actions among `events` that name it (an action names one order, its `e` tag); events that
/// are neither, orders for another repository and orders that do not fold (a bad signature,
/// say) are left out. Open orders first, then the newest.
pub fn fold_orders(events: &[Event], repo: &RepoCoordinate, now: u64) -> Vec<OrderRow> {
    // Each action under the orders it names, in one pass.
    let mut actions: HashMap<EventId, Vec<&Event>> = HashMap::new();
    for a in events.iter().filter(|a| a.kind == kind(ORDER_ACTION)) {
        for order in a.tags.event_ids() {
            actions.entry(order).or_default().push(a);
        }
    }
    let mut seen = HashSet::new();
    let mut rows: Vec<OrderRow> = Vec::new();
    for order in events.iter().filter(|e| {
        (e.kind == kind(PULL_ORDER) || e.kind == kind(STORAGE_ORDER)) && seen.insert(e.id)
    }) {
        let mine = actions
            .get(&order.id)
            .into_iter()
            .flatten()
            .map(|a| (*a).clone());
        let created = order.created_at.as_secs();
        let buyer = order.pubkey.to_hex();
        let row = if order.kind == kind(PULL_ORDER) {
            agigit_market::fold(order, mine, Some(now))
                .ok()
                .filter(|f| f.repo == *repo)
                .map(|f| pull_row(&f, buyer, created))
        } else {
            agigit_market::fold_storage(order, mine, Some(now))
                .ok()
                .filter(|f| f.repo == *repo)
                .map(|f| storage_row(&f, buyer, created))
        };
        rows.extend(row);
    }
    rows.sort_by_key(|r| (!r.open, std::cmp::Reverse(r.created)));
    rows
}

fn pull_row(f: &Folded<PullOrder>, buyer: String, created: u64) -> OrderRow {
    let o = &f.order;
    let t = o.terms();
    OrderRow {
        id: f.id.to_hex(),
        kind: "pull".into(),
        buyer,
        provider: o.phase().relay().map(|k| k.to_hex()),
        amount: t.price.saturating_add(t.tip),
        subject: format!("serve commit {}", t.model.short()),
        state: o.phase().describe(),
        open: !o.phase().is_closed(),
        next: o.next_deadline().map(|(at, what)| (at, what.to_owned())),
        created,
    }
}

fn storage_row(f: &Folded<StorageOrder>, buyer: String, created: u64) -> OrderRow {
    let o = &f.order;
    let t = o.terms();
    OrderRow {
        id: f.id.to_hex(),
        kind: "storage".into(),
        buyer,
        provider: o.phase().server().map(|k| k.to_hex()),
        amount: t.price.saturating_mul(t.periods),
        subject: format!(
            "keep {} blobs ({}) for {} periods",
            t.shards.len(),
            agigit::display::bytes(t.shards.iter().map(|s| s.size).sum::<u64>()),
            t.periods
        ),
        state: o.phase().describe(),
        open: !o.phase().is_closed(),
        next: o.next_deadline().map(|(at, what)| (at, what.to_owned())),
        created,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use agigit::event::Signed;
    use agigit::event::market::{DefaultRule, OrderAction, OrderVerb, PullOrderEvent};
    use agigit::event::nostr::prelude::{Keys, Timestamp};

    fn order(buyer: &Keys, repo: &RepoCoordinate, relay: &Keys, at: u64) -> Event {
        let body = PullOrderEvent {
            repo: repo.clone(),
            model: agigit::hash::ObjectId::digest(b"commit"),
            relays: vec![relay.public_key()],
            price: 300,
            tip: 20,
            bond: 0,
            arbiter: None,
            take_by: at + 3_600,
            fund_within: 600,
            deliver_within: 600,
            confirm_within: 600,
            arbitrate_within: 600,
            default_rule: DefaultRule::Refund,
            note: String::new(),
        };
        Signed::sign(body, buyer, Timestamp::from_secs(at))
            .unwrap()
            .into_event()
    }

    fn act(by: &Keys, order: &Event, verb: OrderVerb, at: u64) -> Event {
        let body = OrderAction {
            order: order.id,
            verb,
            token: None,
            release: Vec::new(),
            note: String::new(),
        };
        Signed::sign(body, by, Timestamp::from_secs(at))
            .unwrap()
            .into_event()
    }

    /// Each order folds with its own actions only; a forged order, another repository's and a
    /// repeat are left out; open orders come first.
    #[test]
    fn orders_fold_with_their_own_actions() {
        let (buyer, relay) = (Keys::generate(), Keys::generate());
        let repo: RepoCoordinate = format!("30717:{}:model", buyer.public_key().to_hex())
            .parse()
            .unwrap();
        let other: RepoCoordinate = format!("30717:{}:other", buyer.public_key().to_hex())
            .parse()
            .unwrap();
        let (taken, open, elsewhere) = (
            order(&buyer, &repo, &relay, 1_000),
            order(&buyer, &repo, &relay, 1_100),
            order(&buyer, &other, &relay, 1_200),
        );
        let mut forged = order(&buyer, &repo, &relay, 1_300);
        forged.content = "changed after signing".into();
        let cancelled = order(&buyer, &repo, &relay, 900);
        let events = vec![
            taken.clone(),
            open.clone(),
            elsewhere,
            forged,
            cancelled.clone(),
            taken.clone(),
            act(&relay, &taken, OrderVerb::Take, 1_010),
            act(&buyer, &cancelled, OrderVerb::Cancel, 950),
        ];
        let rows = fold_orders(&events, &repo, 1_500);
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [open.id.to_hex(), taken.id.to_hex(), cancelled.id.to_hex()]
        );
        assert_eq!(rows[0].state, "open");
        assert_eq!(rows[0].provider, None);
        assert_eq!(rows[1].state, "taken, waiting for the buyer to fund it");
        assert_eq!(rows[1].provider, Some(relay.public_key().to_hex()));
        assert_eq!(rows[1].amount, 320);
        assert!(!rows[2].open, "{:?}", rows[2]);
        assert!(rows[0].next.is_some());
    }
}
