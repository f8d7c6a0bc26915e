//! What the market holds for a repository, as the explorer shows it: its orders (pull and
//! storage) and its competition rounds with their leaderboards. The host folds the events
//! (every signature checked, [`agigit_market`'s folds](https://docs.rs/agigit-market) and the
//! rounds' fold) and hands the explorer these plain values through
//! [`Remotes::market`](crate::Remotes::market); the explorer only draws them.

/// A repository's orders and rounds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Market {
    /// Its orders, open ones first.
    pub orders: Vec<OrderRow>,
    /// Its rounds, newest first.
    pub rounds: Vec<RoundRow>,
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
