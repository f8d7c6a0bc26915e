//! `agigit order`: the market from the command line — pull orders posted, taken, funded,
//! delivered, confirmed, disputed and ruled, and storage orders posted, taken, funded, audited
//! and paid period by period, as signed events on the user's relays, their money on the user's
//! Cashu wallet (`docs/market.md`).
//!
//! Every command first folds the order's events (`agigit_market::fold`) and acts only where the
//! state machine lets the user's key act; the relays are told nothing the fold would refuse.

use std::time::{SystemTime, UNIX_EPOCH};

use agigit::ErrorKind;
use agigit::config::RelayEntry;
use agigit::event::kinds::{ORDER_ACTION, PULL_ORDER, STORAGE_ORDER, kind};
use agigit::event::market::{
    DefaultRule, MAX_ORDER_SHARDS, Opening, OrderAction, OrderVerb, PullOrderEvent,
    StorageOrderEvent, StoredShard,
};
use agigit::event::nostr::prelude::{Event, EventId, Filter, Keys, PublicKey, Timestamp};
use agigit::event::{RepoCoordinate, Signed};
use agigit::hash::ObjectId;
use agigit_market::fold::MAX_ACTIONS;
use agigit_market::ledger::{Escrow, Ledger as _};
use agigit_market::{
    Audit, Folded, Order, Outcome, Phase, PullOrder, Ruling, Settled, StorageAction, StorageOrder,
    StorageOutcome, StoragePhase,
};
use agigit_market_cashu::{CashuConsent, CashuLock, CashuWallet};
use clap::{Args, Subcommand, ValueEnum};

use crate::context::{Ctx, keys, load_user_config, network, npub, open, print, runtime};
use crate::failure::{Failure, Result};

#[derive(Debug, Args)]
pub(crate) struct OrderArgs {
    /// A relay to publish to and read from (repeat; default: the `[[relay]]` list of the
    /// user's config.toml).
    #[arg(long = "relay-url", global = true)]
    relays: Vec<String>,
    /// The Cashu mint the escrow is at (default: `[wallet] mint`).
    #[arg(long, global = true)]
    mint: Option<String>,
    #[command(subcommand)]
    action: OrderCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RuleArg {
    Pay,
    Refund,
}

#[derive(Debug, Subcommand)]
enum OrderCommand {
    /// Post a pull order: one of the listed relays is paid PRICE (+ TIP) for serving the history
    /// of MODEL in REPO, once you confirm you have it. Nothing is locked until a relay takes it
    /// and you fund it.
    Pull(PullArgs),
    /// (In the repository) Post a storage order: one of the listed servers keeps what STORE
    /// holds of this repository's pushed packs (manifests and shards, each downloaded, checked
    /// by hash and its audit root computed) and is paid PRICE per period whose audit passes.
    Storage(StorageArgs),
    /// (Relay, server) Take an open order that lists your key; a storage order only once every
    /// blob it names is at STORE with the hash and audit root the order gives.
    Take {
        /// The order's id.
        id: String,
        /// (Storage orders) Where your copies are: your blob server or relay URL.
        #[arg(long)]
        store: Option<String>,
    },
    /// (Buyer) Fund a taken order: lock price, tip and raises for the taker in your wallet, as a
    /// token only the taker (with your or the arbiter's consent) or you (from the last
    /// deadline) can spend. A storage order: each period's price locked on its own, back to
    /// you from the period's end unless you release it.
    Fund {
        /// The order's id.
        id: String,
    },
    /// (Relay) Say you delivered — after checking, with the mint, that the funding is locked
    /// for you as the order says.
    Deliver {
        /// The order's id.
        id: String,
    },
    /// (Buyer, in the repository you cloned) Confirm you have the model — its commit is here,
    /// every shard checked by hash when it was fetched — and release the payment to the relay.
    /// A storage order: release the current period's payment, once its audit passed.
    Confirm {
        /// The order's id.
        id: String,
    },
    /// (Buyer) Contest a delivery: the arbiter decides.
    Dispute {
        /// The order's id.
        id: String,
    },
    /// (Buyer) Withdraw an order nobody took.
    Cancel {
        /// The order's id.
        id: String,
    },
    /// (Buyer) Add to what you will pay, before you fund.
    Raise {
        /// The order's id.
        id: String,
        /// Sats.
        amount: u64,
    },
    /// (Arbiter) Rule a dispute, and sign the escrow over to whom the ruling gives it.
    Rule {
        /// The order's id.
        id: String,
        /// Who gets the escrow.
        ruling: RuleArg,
    },
    /// (Buyer) Audit the current period of a storage order: a fresh random challenge the
    /// server must answer within the order's `answer_within`.
    Challenge {
        /// The order's id.
        id: String,
    },
    /// (Server) Answer a storage order's pending challenge with the challenged leaves of your
    /// copies at STORE and their Merkle paths.
    Answer {
        /// The order's id.
        id: String,
        /// Where your copies are: your blob server or relay URL.
        #[arg(long)]
        store: String,
    },
    /// (Relay, server) Take the payment of an order paid to you into your wallet (a storage
    /// order: every period paid to you and released by the buyer).
    Claim {
        /// The order's id.
        id: String,
    },
    /// (Buyer) Take the escrow of an order that did not pay the relay back into your wallet:
    /// with the arbiter's ruling at once, else from its last deadline (the mint's clock). A
    /// storage order: every period not paid to the server, each from its period's end.
    Refund {
        /// The order's id.
        id: String,
    },
    /// Your orders (as buyer, or as a listed relay): each one's state, amounts, next deadline
    /// and what happens then if nobody acts.
    List,
    /// One order in full: its terms, state, next deadline, and every action refused.
    Show {
        /// The order's id.
        id: String,
    },
}

#[derive(Debug, Args)]
struct PullArgs {
    /// The repository (`30717:<owner hex>:<id>`).
    repo: String,
    /// The commit whose history is to be served.
    #[arg(long)]
    model: String,
    /// A relay that may take the order (npub or hex; repeat).
    #[arg(long = "relay", required = true)]
    takers: Vec<String>,
    /// Sats paid on confirmation.
    #[arg(long)]
    price: u64,
    /// Sats paid with the price.
    #[arg(long, default_value_t = 0)]
    tip: u64,
    /// Who rules a dispute (npub or hex).
    #[arg(long)]
    arbiter: Option<String>,
    /// What a dispute nobody rules ends in (`pay` needs an arbiter).
    #[arg(long, value_enum, default_value_t = RuleArg::Refund)]
    default: RuleArg,
    /// Seconds a relay has to take it.
    #[arg(long, default_value_t = 3600)]
    take_within: u64,
    /// Seconds you have to fund it once taken.
    #[arg(long, default_value_t = 3600)]
    fund_within: u64,
    /// Seconds the relay has to deliver once funded.
    #[arg(long, default_value_t = 3600)]
    deliver_within: u64,
    /// Seconds you have to confirm or dispute a delivery.
    #[arg(long, default_value_t = 3600)]
    confirm_within: u64,
    /// Seconds the arbiter has to rule.
    #[arg(long, default_value_t = 3600)]
    arbitrate_within: u64,
    /// A note for the relays.
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(Debug, Args)]
struct StorageArgs {
    /// A server that may take the order (npub or hex; repeat).
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
    /// Where the copies to keep are now: a blob server or relay URL. What it holds of this
    /// repository's pushed packs is what the order names.
    #[arg(long)]
    store: String,
    /// Sats per period whose audit passes.
    #[arg(long)]
    price: u64,
    /// How many periods.
    #[arg(long)]
    periods: u64,
    /// A period's length, seconds.
    #[arg(long, default_value_t = 30 * 86_400)]
    period: u64,
    /// Seconds the server has to answer a challenge (less than a period).
    #[arg(long, default_value_t = 3600)]
    answer_within: u64,
    /// Leaves one audit challenges (1 to 8).
    #[arg(long, default_value_t = 8)]
    challenges: u64,
    /// Seconds a server has to take it.
    #[arg(long, default_value_t = 3600)]
    take_within: u64,
    /// Seconds you have to fund it once taken.
    #[arg(long, default_value_t = 3600)]
    fund_within: u64,
    /// A note for the servers.
    #[arg(long, default_value = "")]
    note: String,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn key_arg(text: &str) -> Result<PublicKey> {
    PublicKey::parse(text.trim())
        .map_err(|e| Failure::invalid(format!("{text:?} is not a public key (npub… or hex): {e}")))
}

fn id_arg(text: &str) -> Result<EventId> {
    EventId::from_hex(text.trim())
        .map_err(|_| Failure::invalid(format!("{text:?} is not an order id (64 hex digits)")))
}

/// The order's relays: `--relay-url`, else the user's list; each read from and written to.
fn relays(args: &OrderArgs) -> Result<Vec<RelayEntry>> {
    let list: Vec<RelayEntry> = if args.relays.is_empty() {
        load_user_config()?.relays
    } else {
        args.relays
            .iter()
            .map(|u| RelayEntry::new(u.trim_end_matches('/')))
            .collect()
    };
    if list.is_empty() {
        return Err(Failure::invalid(
            "no relay for orders: give --relay-url, or list relays in ~/.config/agigit/config.toml",
        ));
    }
    Ok(list
        .into_iter()
        .map(|r| RelayEntry {
            fetch: true,
            push: true,
            ..r
        })
        .collect())
}

/// What a command works with: the runtime, the network, and the user's key.
struct Session {
    rt: tokio::runtime::Runtime,
    net: agigit::net::Network,
    keys: Keys,
}

impl Session {
    fn new(args: &OrderArgs) -> Result<Self> {
        let keys = keys()?;
        let rt = runtime()?;
        let net = {
            let _entered = rt.enter();
            network(&keys, &relays(args)?)?
        };
        Ok(Self { rt, net, keys })
    }

    fn me(&self) -> PublicKey {
        self.keys.public_key()
    }

    fn publish(&self, event: &Event) -> Result<usize> {
        let _entered = self.rt.enter();
        let report = self.rt.block_on(self.net.pool.publish(event, 1))?;
        Ok(report.accepted())
    }

    fn query(&self, filter: Filter) -> Result<Vec<Event>> {
        self.query_many(std::slice::from_ref(&filter))
    }

    /// The events matching any of `filters`, in one query.
    fn query_many(&self, filters: &[Filter]) -> Result<Vec<Event>> {
        let _entered = self.rt.enter();
        Ok(self.rt.block_on(self.net.pool.query(filters))?)
    }

    /// The order event `id`, of either kind, and every action on it the relays hold, folded
    /// at now.
    fn load_any(&self, id: EventId) -> Result<AnyOrder> {
        let order = self
            .query(
                Filter::new()
                    .id(id)
                    .kinds([kind(PULL_ORDER), kind(STORAGE_ORDER)]),
            )?
            .into_iter()
            .find(|e| e.id == id)
            .ok_or_else(|| {
                Failure::new(
                    ErrorKind::Network,
                    format!("no relay has the order {id}: check the id and --relay-url"),
                )
            })?;
        let actions = self.query(actions_on(id))?;
        assemble(order, actions)
    }

    /// Every order of `orders` (order events of either kind) folded with its actions at now:
    /// the actions of [`ORDERS_PER_QUERY`] orders asked in one query. Orders whose events do
    /// not fold are left out.
    fn load_many(&self, orders: Vec<Event>) -> Result<Vec<AnyOrder>> {
        let mut loaded = Vec::with_capacity(orders.len());
        for group in orders.chunks(ORDERS_PER_QUERY) {
            let filters: Vec<Filter> = group.iter().map(|o| actions_on(o.id)).collect();
            let mut actions = self.query_many(&filters)?;
            for order in group {
                // An action names one order (its one `e` tag): each goes to its own.
                let (mine, rest): (Vec<Event>, Vec<Event>) = actions
                    .into_iter()
                    .partition(|a| a.tags.event_ids().any(|e| e == order.id));
                actions = rest;
                if let Ok(l) = assemble(order.clone(), mine) {
                    loaded.push(l);
                }
            }
        }
        Ok(loaded)
    }

    /// The pull order `id`, folded at now.
    fn load(&self, id: EventId) -> Result<Loaded<PullOrder>> {
        match self.load_any(id)? {
            AnyOrder::Pull(l) => Ok(l),
            AnyOrder::Storage(_) => Err(Failure::invalid(format!(
                "{id} is a storage order: it has no such action (see `agigit order --help`)"
            ))),
        }
    }

    /// The storage order `id`, folded at now.
    fn load_storage(&self, id: EventId) -> Result<Loaded<StorageOrder>> {
        match self.load_any(id)? {
            AnyOrder::Storage(l) => Ok(l),
            AnyOrder::Pull(_) => Err(Failure::invalid(format!(
                "{id} is a pull order: it has no such action (see `agigit order --help`)"
            ))),
        }
    }

    /// Signs and publishes an action on `order` at `at`.
    fn act(
        &self,
        order: EventId,
        verb: OrderVerb,
        token: Option<String>,
        release: Vec<String>,
        at: u64,
    ) -> Result<EventId> {
        let body = OrderAction {
            order,
            verb,
            token,
            release,
            note: String::new(),
        };
        let event = Signed::sign(body, &self.keys, Timestamp::from_secs(at))
            .map_err(|e| Failure::invalid(e.to_string()))?
            .into_event();
        self.publish(&event)?;
        Ok(event.id)
    }
}

/// How many orders' actions `order list` asks in one query (one filter each: well under the
/// filters a relay takes in one subscription).
const ORDERS_PER_QUERY: usize = 8;

/// The filter for the actions on order `id`.
fn actions_on(id: EventId) -> Filter {
    Filter::new()
        .kind(kind(ORDER_ACTION))
        .event(id)
        .limit(MAX_ACTIONS)
}

/// `order` (of either kind) folded with `actions` at now.
fn assemble(order: Event, actions: Vec<Event>) -> Result<AnyOrder> {
    let integrity = |e: agigit_market::FoldError| Failure::new(ErrorKind::Integrity, e.to_string());
    let now = Some(unix_now());
    Ok(if order.kind == kind(STORAGE_ORDER) {
        AnyOrder::Storage(Loaded {
            folded: agigit_market::fold_storage(&order, actions.clone(), now).map_err(integrity)?,
            order,
            actions,
        })
    } else {
        AnyOrder::Pull(Loaded {
            folded: agigit_market::fold(&order, actions.clone(), now).map_err(integrity)?,
            order,
            actions,
        })
    })
}

/// An order as the relays hold it: its event, the actions on it, and their fold.
struct Loaded<O = PullOrder> {
    order: Event,
    actions: Vec<Event>,
    folded: Folded<O>,
}

/// An order of either kind.
enum AnyOrder {
    Pull(Loaded<PullOrder>),
    Storage(Loaded<StorageOrder>),
}

impl<O: Order> Loaded<O> {
    fn id(&self) -> EventId {
        self.folded.id
    }

    /// The order's author (the fold verified its signature).
    fn buyer(&self) -> PublicKey {
        self.order.pubkey
    }

    /// The events the fold applied: neither refused nor ignored.
    fn skipped(&self) -> std::collections::BTreeSet<EventId> {
        self.folded
            .refused
            .iter()
            .map(|(id, _)| *id)
            .chain(self.folded.ignored.iter().map(|(id, _)| *id))
            .collect()
    }

    /// The actions the fold applied (not refused, not ignored) with verb `matching`, earliest
    /// first, by `author`.
    fn applied(
        &self,
        author: PublicKey,
        matching: impl Fn(&OrderVerb) -> bool,
    ) -> Vec<Signed<OrderAction>> {
        let skipped = self.skipped();
        let mut found: Vec<Signed<OrderAction>> = self
            .actions
            .iter()
            .filter(|e| !skipped.contains(&e.id) && e.pubkey == author)
            .filter_map(|e| Signed::<OrderAction>::from_event(e.clone()).ok())
            .filter(|a| a.body().order == self.id() && matching(&a.body().verb))
            .collect();
        found.sort_by_key(|a| (a.created_at(), a.id()));
        found.dedup_by_key(|a| a.id());
        found
    }

    /// The time `me` may do `action` at ([`Folded::next_time`]), once the fold accepts it
    /// there: the relays are told nothing the order refuses.
    fn allowed(&self, me: PublicKey, action: &O::Action, now: u64) -> Result<u64> {
        let at = self.folded.next_time(now);
        self.folded
            .order
            .apply(me, action, at)
            .map(|_| at)
            .map_err(|e| not_yours(&format!("the order refuses: {e}")))
    }

    /// The token of the buyer's applied `fund` action, and when it was funded.
    fn fund_token(&self) -> Result<(CashuLock, u64)> {
        let fund = self
            .applied(self.buyer(), |v| matches!(v, OrderVerb::Fund))
            .into_iter()
            .next()
            .ok_or_else(|| Failure::invalid("this order was never funded"))?;
        let token = fund.body().token.clone().ok_or_else(|| {
            Failure::new(
                ErrorKind::Integrity,
                "the buyer's fund action carries no token: nothing is locked",
            )
        })?;
        Ok((CashuLock::from_token(token), fund.created_at().as_secs()))
    }

    /// The release signatures in the applied actions of `author` with verb `matching`.
    fn consents(
        &self,
        author: PublicKey,
        matching: impl Fn(&OrderVerb) -> bool,
    ) -> Vec<CashuConsent> {
        self.applied(author, matching)
            .into_iter()
            .map(|a| CashuConsent {
                by: a.author(),
                signatures: a.body().release.clone(),
            })
            .filter(|c| !c.signatures.is_empty())
            .collect()
    }
}

impl Loaded<PullOrder> {
    /// The relay an order is taken by, in any phase after the take.
    fn relay(&self) -> Option<PublicKey> {
        match self.folded.order.phase() {
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

    /// The funding: its token and the escrow it must be locked under.
    fn funding(&self) -> Result<(CashuLock, Escrow)> {
        let relay = self
            .relay()
            .ok_or_else(|| Failure::invalid("nobody took this order: it was never funded"))?;
        let (lock, at) = self.fund_token()?;
        let t = self.folded.order.terms();
        Ok((
            lock,
            Escrow {
                amount: self.folded.order.owed(),
                payer: self.buyer(),
                payee: relay,
                arbiter: t.arbiter,
                refund_at: refund_time(at, t),
            },
        ))
    }
}

impl Loaded<StorageOrder> {
    /// The server that took the order, in any phase after the take.
    fn server(&self) -> Option<PublicKey> {
        match self.folded.order.phase() {
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

    /// The funding: its token (one escrow per period) and the escrows it must hold.
    fn funding(&self) -> Result<(CashuLock, Vec<Escrow>)> {
        let server = self
            .server()
            .ok_or_else(|| Failure::invalid("nobody took this order: it was never funded"))?;
        let (lock, since) = self.fund_token()?;
        Ok((
            lock,
            period_escrows(self.folded.order.terms(), server, since),
        ))
    }

    /// Whether period `p` is the server's: settled as passed (or unaudited under a paying
    /// rule), or the current period with its audit passed.
    fn earned(&self, p: u64) -> bool {
        let o = &self.folded.order;
        let settled = usize::try_from(p).ok().and_then(|i| o.settled().get(i));
        match settled {
            Some(Settled::Passed | Settled::Unaudited(Ruling::Pay)) => true,
            Some(_) => false,
            None => matches!(
                o.phase(),
                StoragePhase::Running { period, audit: Audit::Passed { .. }, .. } if period == p
            ),
        }
    }
}

/// The escrows of a storage order funded at `since`: period `p` pays `price` to `server`,
/// refundable to the buyer from the period's end (`since + (p + 1) × period`).
fn period_escrows(t: &agigit_market::StorageTerms, server: PublicKey, since: u64) -> Vec<Escrow> {
    (0..t.periods)
        .map(|p| Escrow {
            amount: t.price,
            payer: t.buyer,
            payee: server,
            arbiter: None,
            refund_at: since.saturating_add(t.period.saturating_mul(p + 1)),
        })
        .collect()
}

/// When a funded order's escrow returns to the buyer on the ledger's clock alone: the last
/// deadline a funded order can reach (delivery, confirmation, arbitration).
fn refund_time(funded_at: u64, t: &agigit_market::PullTerms) -> u64 {
    funded_at
        .saturating_add(t.deliver_within)
        .saturating_add(t.confirm_within)
        .saturating_add(t.arbitrate_within)
}

fn phase_text(phase: Phase) -> String {
    match phase {
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

fn summary(l: &Loaded<PullOrder>) -> serde_json::Value {
    let o = &l.folded.order;
    let t = o.terms();
    serde_json::json!({
        "id": l.id().to_hex(),
        "kind": "pull",
        "repo": l.folded.repo.to_string(),
        "model": t.model.to_string(),
        "buyer": l.buyer().to_hex(),
        "relay": l.relay().map(|r| r.to_hex()),
        "state": phase_text(o.phase()),
        "owed": o.owed(),
        "held": o.held(),
        "price": t.price,
        "tip": t.tip,
        "next_deadline": o.next_deadline().map(|(at, what)| serde_json::json!({"at": at, "then": what})),
        "refused": l.folded.refused.iter().map(|(id, why)| serde_json::json!({"action": id.to_hex(), "why": why.to_string()})).collect::<Vec<_>>(),
    })
}

fn summary_text(l: &Loaded<PullOrder>) -> String {
    let o = &l.folded.order;
    let t = o.terms();
    let mut text = format!(
        "order {}\n  {} at {} for {} + {} sats: {}",
        l.id(),
        t.model,
        l.folded.repo,
        t.price,
        t.tip,
        phase_text(o.phase())
    );
    text.push_str(&deadline_text(o.next_deadline()));
    text.push_str(&refused_text(&l.folded.refused));
    text
}

fn storage_phase_text(phase: StoragePhase) -> String {
    match phase {
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

fn settled_text(s: Settled) -> &'static str {
    match s {
        Settled::Passed => "passed: paid to the server",
        Settled::Unaudited(Ruling::Pay) => "not audited: paid to the server",
        Settled::Unaudited(Ruling::Refund) => "not audited: back to the buyer",
        Settled::Failed => "failed: back to the buyer",
    }
}

/// The blobs a challenge with `nonce` in period `period` reaches, sorted, each once.
fn reached(t: &agigit_market::StorageTerms, nonce: &[u8; 32], period: u64) -> Vec<String> {
    let mut blobs: Vec<String> = t
        .positions(nonce, period)
        .iter()
        .map(|p| t.shards[p.shard].blob.to_string())
        .collect();
    blobs.sort();
    blobs.dedup();
    blobs
}

fn storage_summary(l: &Loaded<StorageOrder>) -> serde_json::Value {
    let o = &l.folded.order;
    let t = o.terms();
    let (funded_at, current, challenged) = match o.phase() {
        StoragePhase::Running {
            since,
            period,
            audit,
            ..
        } => {
            // What the server must prove now: the blobs the pending challenge reaches.
            let challenged = match audit {
                Audit::Challenged { nonce, .. } => reached(t, &nonce, period),
                _ => Vec::new(),
            };
            (Some(since), Some(period + 1), challenged)
        }
        _ => (None, None, Vec::new()),
    };
    serde_json::json!({
        "funded_at": funded_at,
        "current_period": current,
        "challenged": challenged,
        "id": l.id().to_hex(),
        "kind": "storage",
        "repo": l.folded.repo.to_string(),
        "buyer": l.buyer().to_hex(),
        "server": l.server().map(|r| r.to_hex()),
        "blobs": t.shards.len(),
        "bytes": t.shards.iter().map(|s| s.size).sum::<u64>(),
        "state": storage_phase_text(o.phase()),
        "price": t.price,
        "periods": t.periods,
        "period": t.period,
        "held": o.held(),
        "settled": o.settled().iter().map(|s| settled_text(*s)).collect::<Vec<_>>(),
        "next_deadline": o.next_deadline().map(|(at, what)| serde_json::json!({"at": at, "then": what})),
        "refused": l.folded.refused.iter().map(|(id, why)| serde_json::json!({"action": id.to_hex(), "why": why.to_string()})).collect::<Vec<_>>(),
    })
}

/// "at T (in N s) it …", or nothing.
fn deadline_text(next: Option<(u64, &str)>) -> String {
    let Some((at, what)) = next else {
        return String::new();
    };
    let now = unix_now();
    let when = if at > now {
        format!("in {} s", at - now)
    } else {
        "now".to_owned()
    };
    format!("\n  next: at {at} ({when}) it {what}")
}

fn refused_text(refused: &[(EventId, agigit_market::Refused)]) -> String {
    refused
        .iter()
        .map(|(id, why)| format!("\n  refused {}: {why}", id.to_hex()))
        .collect()
}

fn storage_summary_text(l: &Loaded<StorageOrder>) -> String {
    let o = &l.folded.order;
    let t = o.terms();
    let mut text = format!(
        "order {} (storage)\n  {} blobs ({} bytes) of {}, {} periods of {} s at {} sats: {}",
        l.id(),
        t.shards.len(),
        t.shards.iter().map(|s| s.size).sum::<u64>(),
        l.folded.repo,
        t.periods,
        t.period,
        t.price,
        storage_phase_text(o.phase())
    );
    for (p, s) in o.settled().iter().enumerate() {
        text.push_str(&format!("\n  period {}: {}", p + 1, settled_text(*s)));
    }
    text.push_str(&deadline_text(o.next_deadline()));
    text.push_str(&refused_text(&l.folded.refused));
    text
}

fn any_summary(o: &AnyOrder) -> serde_json::Value {
    match o {
        AnyOrder::Pull(l) => summary(l),
        AnyOrder::Storage(l) => storage_summary(l),
    }
}

fn any_summary_text(o: &AnyOrder) -> String {
    match o {
        AnyOrder::Pull(l) => summary_text(l),
        AnyOrder::Storage(l) => storage_summary_text(l),
    }
}

fn wallet(args: &OrderArgs) -> Result<CashuWallet> {
    crate::wallet::open(args.mint.as_deref())
}

fn not_yours(what: &str) -> Failure {
    Failure::new(ErrorKind::Access, what.to_owned())
}

pub(crate) fn order(ctx: &Ctx, args: &OrderArgs) -> Result<()> {
    let json = ctx.json;
    match &args.action {
        OrderCommand::Pull(p) => return post(json, args, p),
        OrderCommand::Storage(p) => return post_storage(ctx, args, p),
        _ => {}
    }
    let s = Session::new(args)?;
    let me = s.me();
    let now = unix_now();
    // An action that carries nothing for the ledger: checked, published, the order shown.
    let plain = |id: &str,
                 action: agigit_market::Action,
                 verb: OrderVerb,
                 text: &dyn Fn(&Loaded<PullOrder>) -> String|
     -> Result<()> {
        let l = s.load(id_arg(id)?)?;
        let at = l.allowed(me, &action, now)?;
        let name = verb.as_str();
        let event = s.act(l.id(), verb, None, Vec::new(), at)?;
        let l = s.load(l.id())?;
        print(
            json,
            reply(name, event, summary(&l), serde_json::json!({})),
            || text(&l),
        );
        Ok(())
    };
    match &args.action {
        OrderCommand::Pull(_) | OrderCommand::Storage(_) => unreachable!("handled above"),
        OrderCommand::Show { id } => {
            let l = s.load_any(id_arg(id)?)?;
            print(json, any_summary(&l), || any_summary_text(&l));
        }
        OrderCommand::List => {
            let kinds = [kind(PULL_ORDER), kind(STORAGE_ORDER)];
            // Orders this key posted, and those naming it (as a relay or server), in one query.
            let mut orders = s.query_many(&[
                Filter::new().kinds(kinds).author(me).limit(500),
                Filter::new().kinds(kinds).pubkey(me).limit(500),
            ])?;
            orders.sort_by_key(|e| e.id);
            orders.dedup_by_key(|e| e.id);
            let loaded = s.load_many(orders)?;
            print(
                json,
                serde_json::json!({"orders": loaded.iter().map(any_summary).collect::<Vec<_>>()}),
                || {
                    if loaded.is_empty() {
                        "no orders".to_owned()
                    } else {
                        loaded
                            .iter()
                            .map(any_summary_text)
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                },
            );
        }
        OrderCommand::Take { id, store } => match s.load_any(id_arg(id)?)? {
            AnyOrder::Pull(l) => {
                let at = l.allowed(me, &agigit_market::Action::Take, now)?;
                if l.folded.order.terms().bond > 0 {
                    return Err(Failure::invalid(
                        "this order asks a bond; bonds on Cashu are not supported by the command line yet",
                    ));
                }
                let action = s.act(l.id(), OrderVerb::Take, None, Vec::new(), at)?;
                let l = s.load(l.id())?;
                print(
                    json,
                    reply("take", action, summary(&l), serde_json::json!({})),
                    || format!("took order {}: wait for the buyer to fund it", l.id()),
                );
            }
            AnyOrder::Storage(l) => {
                let at = l.allowed(me, &StorageAction::Take, now)?;
                if l.folded.order.terms().bond > 0 {
                    return Err(Failure::invalid(
                        "this order asks a bond; bonds on Cashu are not supported by the command line yet",
                    ));
                }
                let store = store.as_deref().ok_or_else(|| {
                    Failure::invalid(
                        "a storage order is taken only with your copies checked: give --store <your blob server or relay URL>",
                    )
                })?;
                let store = store_url(store);
                let shards = &l.folded.order.terms().shards;
                let checked = check_copies(&s, &store, shards)?;
                let action = s.act(l.id(), OrderVerb::Take, None, Vec::new(), at)?;
                let l = s.load_storage(l.id())?;
                print(
                    json,
                    reply(
                        "take",
                        action,
                        storage_summary(&l),
                        serde_json::json!({"checked_bytes": checked}),
                    ),
                    || {
                        format!(
                            "checked {} blobs ({checked} bytes) at {store} against the order's hashes and roots; took order {}: wait for the buyer to fund it",
                            shards.len(),
                            l.id()
                        )
                    },
                );
            }
        },
        OrderCommand::Fund { id } => match s.load_any(id_arg(id)?)? {
            AnyOrder::Pull(l) => fund_pull(json, args, &s, &l, now)?,
            AnyOrder::Storage(l) => fund_storage(json, args, &s, &l, now)?,
        },
        OrderCommand::Deliver { id } => {
            let l = s.load(id_arg(id)?)?;
            let at = l.allowed(me, &agigit_market::Action::Deliver, now)?;
            let (lock, escrow) = l.funding()?;
            let w = wallet(args)?;
            s.rt.block_on(w.verify(&lock, &escrow))?;
            let action = s.act(l.id(), OrderVerb::Deliver, None, Vec::new(), at)?;
            let l = s.load(l.id())?;
            print(
                json,
                reply(
                    "deliver",
                    action,
                    summary(&l),
                    serde_json::json!({"verified": escrow.amount}),
                ),
                || {
                    format!(
                        "the funding checks out ({} sats locked for you at the mint); told the buyer it is delivered",
                        escrow.amount
                    )
                },
            );
        }
        OrderCommand::Confirm { id } => match s.load_any(id_arg(id)?)? {
            AnyOrder::Pull(l) => {
                let at = l.allowed(me, &agigit_market::Action::Confirm, now)?;
                // The model must be here: fetched, every shard and object checked by its hash.
                let model = l.folded.order.terms().model;
                let repo = open(ctx)?;
                let here = repo.resolve(&model.to_string()).is_ok_and(|c| c == model);
                if !here {
                    return Err(Failure::invalid(format!(
                        "commit {model} is not in this repository: clone or pull it from the relay first (its shards are checked by hash as they arrive), then confirm"
                    )));
                }
                let (lock, _) = l.funding()?;
                let w = wallet(args)?;
                let consent = s.rt.block_on(w.consent(&lock))?;
                let action = s.act(l.id(), OrderVerb::Confirm, None, consent.signatures, at)?;
                let l = s.load(l.id())?;
                print(
                    json,
                    reply("confirm", action, summary(&l), serde_json::json!({})),
                    || {
                        format!(
                            "confirmed: the relay can now claim its {} sats",
                            l.folded.order.owed()
                        )
                    },
                );
            }
            AnyOrder::Storage(l) => {
                let at = l.allowed(me, &StorageAction::Release, now)?;
                let StoragePhase::Running {
                    period,
                    audit: Audit::Passed { .. },
                    ..
                } = l.folded.order.phase()
                else {
                    return Err(Failure::invalid(format!(
                        "nothing to release: a period's payment is released once its audit passed, and this order is {}",
                        storage_phase_text(l.folded.order.phase())
                    )));
                };
                let (lock, escrows) = l.funding()?;
                let escrow = period_escrow(&escrows, period)?;
                let w = wallet(args)?;
                let part = s.rt.block_on(w.part(&lock, escrow.refund_at))?;
                let consent = s.rt.block_on(w.consent(&part))?;
                let action = s.act(l.id(), OrderVerb::Confirm, None, consent.signatures, at)?;
                let l = s.load_storage(l.id())?;
                print(
                    json,
                    reply(
                        "confirm",
                        action,
                        storage_summary(&l),
                        serde_json::json!({"period": period + 1, "released": escrow.amount}),
                    ),
                    || {
                        format!(
                            "released period {}'s {} sats: the server can claim them",
                            period + 1,
                            escrow.amount
                        )
                    },
                );
            }
        },
        OrderCommand::Challenge { id } => {
            let l = s.load_storage(id_arg(id)?)?;
            let mut nonce = [0u8; 32];
            getrandom::fill(&mut nonce).map_err(|e| {
                Failure::new(ErrorKind::Io, format!("no randomness for a challenge: {e}"))
            })?;
            let at = l.allowed(me, &StorageAction::Challenge(nonce), now)?;
            let action = s.act(l.id(), OrderVerb::Challenge(nonce), None, Vec::new(), at)?;
            // The blobs this challenge reaches, whether or not the server answered already.
            let period = match l.folded.order.tick(at).0.phase() {
                StoragePhase::Running { period, .. } => period,
                _ => 0,
            };
            let l = s.load_storage(l.id())?;
            let t = l.folded.order.terms();
            print(
                json,
                reply(
                    "challenge",
                    action,
                    storage_summary(&l),
                    serde_json::json!({"challenged": reached(t, &nonce, period)}),
                ),
                || {
                    format!(
                        "challenged {} leaves: the server must answer by {}",
                        t.challenges,
                        at + t.answer_within
                    )
                },
            );
        }
        OrderCommand::Answer { id, store } => {
            let l = s.load_storage(id_arg(id)?)?;
            let StoragePhase::Running {
                server,
                period,
                audit: Audit::Challenged { nonce, .. },
                ..
            } = l.folded.order.phase()
            else {
                return Err(Failure::invalid(format!(
                    "no challenge to answer: the order is {}",
                    storage_phase_text(l.folded.order.phase())
                )));
            };
            if server != me {
                return Err(not_yours(
                    "only the server that took the order answers its audits",
                ));
            }
            let store = store_url(store);
            let openings = open_leaves(&s, &store, &l.folded.order, &nonce, period)?;
            let answer = StorageAction::Answer(openings.clone());
            let at = l.allowed(me, &answer, now)?;
            let action = s.act(l.id(), OrderVerb::Answer(openings), None, Vec::new(), at)?;
            let l = s.load_storage(l.id())?;
            print(
                json,
                reply(
                    "answer",
                    action,
                    storage_summary(&l),
                    serde_json::json!({"period": period + 1}),
                ),
                || format!("answered period {}'s audit", period + 1),
            );
        }
        OrderCommand::Dispute { id } => plain(
            id,
            agigit_market::Action::Dispute,
            OrderVerb::Dispute,
            &|_| "disputed: the arbiter decides".to_owned(),
        )?,
        OrderCommand::Cancel { id } => match s.load_any(id_arg(id)?)? {
            AnyOrder::Pull(_) => plain(
                id,
                agigit_market::Action::Cancel,
                OrderVerb::Cancel,
                &|_| "cancelled".to_owned(),
            )?,
            AnyOrder::Storage(l) => {
                let at = l.allowed(me, &StorageAction::Cancel, now)?;
                let action = s.act(l.id(), OrderVerb::Cancel, None, Vec::new(), at)?;
                let l = s.load_storage(l.id())?;
                print(
                    json,
                    reply("cancel", action, storage_summary(&l), serde_json::json!({})),
                    || "cancelled".to_owned(),
                );
            }
        },
        OrderCommand::Raise { id, amount } => plain(
            id,
            agigit_market::Action::Raise(*amount),
            OrderVerb::Raise(*amount),
            &|l| format!("raised: the order now pays {}", l.folded.order.owed()),
        )?,
        OrderCommand::Rule { id, ruling } => {
            let l = s.load(id_arg(id)?)?;
            let ruling = match ruling {
                RuleArg::Pay => Ruling::Pay,
                RuleArg::Refund => Ruling::Refund,
            };
            let at = l.allowed(me, &agigit_market::Action::Rule(ruling), now)?;
            let (lock, _) = l.funding()?;
            let w = wallet(args)?;
            let consent = s.rt.block_on(w.consent(&lock))?;
            let verb = OrderVerb::Rule(match ruling {
                Ruling::Pay => DefaultRule::Pay,
                Ruling::Refund => DefaultRule::Refund,
            });
            let action = s.act(l.id(), verb, None, consent.signatures, at)?;
            let l = s.load(l.id())?;
            print(
                json,
                reply("rule", action, summary(&l), serde_json::json!({})),
                || "ruled, and signed the escrow over".to_owned(),
            );
        }
        OrderCommand::Claim { id } => match s.load_any(id_arg(id)?)? {
            AnyOrder::Pull(l) => {
                if l.folded.order.phase() != Phase::Closed(Outcome::Paid { relay: me }) {
                    return Err(not_yours(&format!(
                        "this order is not paid to you: it is {}",
                        phase_text(l.folded.order.phase())
                    )));
                }
                let (lock, _) = l.funding()?;
                let consents = release_consents(&l, Ruling::Pay);
                let w = wallet(args)?;
                let got = s.rt.block_on(w.claim(&lock, &consents))?;
                let balance = s.rt.block_on(w.balance())?;
                print(
                    json,
                    serde_json::json!({"id": l.id().to_hex(), "claimed": got, "balance": balance}),
                    || format!("claimed {got} sats; the wallet holds {balance}"),
                );
            }
            AnyOrder::Storage(l) => claim_storage(json, args, &s, &l)?,
        },
        OrderCommand::Refund { id } => match s.load_any(id_arg(id)?)? {
            AnyOrder::Pull(l) => {
                if l.buyer() != me {
                    return Err(not_yours("only the buyer takes an order's escrow back"));
                }
                if matches!(l.folded.order.phase(), Phase::Closed(Outcome::Paid { .. })) {
                    return Err(not_yours("this order paid the relay: nothing comes back"));
                }
                // The token from the relays' fund action, else the one kept when funding.
                let (lock, refund_at) = match l.funding() {
                    Ok((lock, escrow)) => (lock, Some(escrow.refund_at)),
                    Err(e) => (kept_lock(l.id(), e)?, None),
                };
                let w = wallet(args)?;
                let ruled = release_consents(&l, Ruling::Refund);
                let got = if ruled.is_empty() {
                    s.rt.block_on(w.refund(&lock))?
                } else {
                    s.rt.block_on(w.claim(&lock, &ruled))?
                };
                let balance = s.rt.block_on(w.balance())?;
                print(
                    json,
                    serde_json::json!({"id": l.id().to_hex(), "refunded": got, "balance": balance, "refund_at": refund_at}),
                    || format!("took back {got} sats; the wallet holds {balance}"),
                );
            }
            AnyOrder::Storage(l) => refund_storage(json, args, &s, &l)?,
        },
    }
    Ok(())
}

/// An action's reply: the order's summary, what was done, and `extra`.
fn reply(
    verb: &str,
    id: EventId,
    mut value: serde_json::Value,
    extra: serde_json::Value,
) -> serde_json::Value {
    value["action"] = serde_json::json!(verb);
    value["action_id"] = serde_json::json!(id.to_hex());
    if let (Some(obj), serde_json::Value::Object(more)) = (value.as_object_mut(), extra) {
        obj.extend(more);
    }
    value
}

/// A store given as a relay (`ws(s)://`) or blob server URL, as the blob server's URL.
fn store_url(store: &str) -> String {
    agigit::net::info::http_url(store.trim())
        .trim_end_matches('/')
        .to_owned()
}

/// The token this user kept when funding order `id`, or `missing` when there is none.
fn kept_lock(id: EventId, missing: Failure) -> Result<CashuLock> {
    let kept = kept_token(id)?;
    let token = std::fs::read_to_string(&kept).map_err(|_| missing)?;
    Ok(CashuLock::from_token(token.trim()))
}

/// Period `p`'s escrow.
fn period_escrow(escrows: &[Escrow], p: u64) -> Result<Escrow> {
    usize::try_from(p)
        .ok()
        .and_then(|i| escrows.get(i))
        .copied()
        .ok_or_else(|| {
            Failure::new(
                ErrorKind::Integrity,
                format!("the order has no period {}", p + 1),
            )
        })
}

/// The copy of `shard` at `store`, checked against its hash as it downloads (at most its
/// size); a failure says `why` it mattered.
fn copy(
    s: &Session,
    store: &str,
    shard: &StoredShard,
    why: &str,
) -> Result<impl std::ops::Deref<Target = [u8]> + use<>> {
    s.rt.block_on(s.net.blobs.download(store, &shard.blob, shard.size))
        .map_err(|e| {
            Failure::new(
                ErrorKind::Network,
                format!("{store} cannot give {} ({e}), {why}", shard.blob),
            )
        })
}

/// Downloads every blob `shards` names from `store` (each checked against its hash by the
/// download, one in memory at a time) and checks its length and audit root. Returns the bytes
/// checked.
fn check_copies(s: &Session, store: &str, shards: &[StoredShard]) -> Result<u64> {
    let mut bytes = 0u64;
    for shard in shards {
        let got = copy(
            s,
            store,
            shard,
            "as the order names it; take only what you hold",
        )?;
        if got.len() as u64 != shard.size || agigit_market::audit::root(&got) != shard.root {
            return Err(Failure::new(
                ErrorKind::Integrity,
                format!(
                    "{} is not the size or audit root the order gives: the buyer's order is wrong; do not take it",
                    shard.blob
                ),
            ));
        }
        bytes += shard.size;
    }
    Ok(bytes)
}

/// The openings of period `period`'s challenge `nonce`, from the copies at `store`: each
/// challenged shard downloaded once (checked against its hash and audit root), its leaves
/// proved.
fn open_leaves(
    s: &Session,
    store: &str,
    order: &StorageOrder,
    nonce: &[u8; 32],
    period: u64,
) -> Result<Vec<Opening>> {
    order
        .terms()
        .answer(nonce, period, |shard| {
            copy(s, store, shard, "which the audit challenges: cannot answer")
        })
        .map_err(|e| match e {
            agigit_market::AnswerError::Read(failure) => failure,
            other => Failure::new(ErrorKind::Integrity, other.to_string()),
        })
}

/// `order fund` of a pull order: `owed` locked for the taker.
fn fund_pull(
    json: bool,
    args: &OrderArgs,
    s: &Session,
    l: &Loaded<PullOrder>,
    now: u64,
) -> Result<()> {
    let me = s.me();
    let at = l.allowed(me, &agigit_market::Action::Fund, now)?;
    let relay = l
        .relay()
        .ok_or_else(|| Failure::invalid("nobody took this order yet"))?;
    let t = l.folded.order.terms();
    let escrow = Escrow {
        amount: l.folded.order.owed(),
        payer: me,
        payee: relay,
        arbiter: t.arbiter,
        refund_at: refund_time(at, t),
    };
    let w = wallet(args)?;
    let kept = unfunded(l.id())?;
    let lock = s.rt.block_on(w.lock(&escrow))?;
    let action = publish_fund(s, l.id(), &kept, &lock, at, escrow.refund_at)?;
    let l = s.load(l.id())?;
    print(
        json,
        reply(
            "fund",
            action,
            summary(&l),
            serde_json::json!({"locked": escrow.amount, "refund_at": escrow.refund_at}),
        ),
        || {
            format!(
                "locked {} sats for {}: theirs once you confirm, yours again from {} if not",
                escrow.amount,
                npub(&relay).unwrap_or_else(|_| relay.to_hex()),
                escrow.refund_at
            )
        },
    );
    Ok(())
}

/// `order fund` of a storage order: each period's price locked for the server on its own,
/// refundable from the period's end, all in one token.
fn fund_storage(
    json: bool,
    args: &OrderArgs,
    s: &Session,
    l: &Loaded<StorageOrder>,
    now: u64,
) -> Result<()> {
    let me = s.me();
    let at = l.allowed(me, &StorageAction::Fund, now)?;
    let server = l
        .server()
        .ok_or_else(|| Failure::invalid("nobody took this order yet"))?;
    let escrows = period_escrows(l.folded.order.terms(), server, at);
    let total: u64 = escrows.iter().map(|e| e.amount).sum();
    let last = escrows.last().map_or(at, |e| e.refund_at);
    let w = wallet(args)?;
    let kept = unfunded(l.id())?;
    let lock = match s.rt.block_on(w.lock_schedule(&escrows)) {
        Ok(lock) => lock,
        Err(agigit_market_cashu::CashuError::Partly { token, message }) => {
            keep_token(&kept, &token)?;
            return Err(Failure::new(
                ErrorKind::Network,
                format!(
                    "{message}; the periods locked so far are kept in {} and come back with `agigit order refund {}` from each period's end",
                    kept.display(),
                    l.id()
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let action = publish_fund(s, l.id(), &kept, &lock, at, last)?;
    let l = s.load_storage(l.id())?;
    print(
        json,
        reply(
            "fund",
            action,
            storage_summary(&l),
            serde_json::json!({"locked": total, "periods": escrows.len()}),
        ),
        || {
            format!(
                "locked {total} sats for {}, one period's price at a time: each released by you once its audit passes, yours again from its period's end if not",
                npub(&server).unwrap_or_else(|_| server.to_hex())
            )
        },
    );
    Ok(())
}

/// Where the token for order `id` will be kept, refused when an earlier fund kept one.
fn unfunded(id: EventId) -> Result<std::path::PathBuf> {
    let kept = kept_token(id)?;
    if kept.exists() {
        return Err(Failure::new(
            ErrorKind::WouldLoseWork,
            format!(
                "an earlier `order fund` locked escrow for this order ({}) that may not have reached the relays: see `agigit order show {id}`; `agigit order refund {id}` takes it back from its refund time",
                kept.display(),
            ),
        ));
    }
    Ok(kept)
}

/// Keeps `lock`'s token at `kept`, then publishes the fund action carrying it. The locked
/// token is the buyer's money until the payee claims it: kept on disk before it is published,
/// so that a failed publish loses nothing.
fn publish_fund(
    s: &Session,
    id: EventId,
    kept: &std::path::Path,
    lock: &CashuLock,
    at: u64,
    refund_at: u64,
) -> Result<EventId> {
    keep_token(kept, lock.token())?;
    s.act(id, OrderVerb::Fund, Some(lock.token().to_owned()), Vec::new(), at)
        .map_err(|e| {
            Failure::new(
                e.kind,
                format!(
                    "{}; the escrow is locked in {} and comes back with `agigit order refund {id}` from {refund_at}",
                    e.message,
                    kept.display(),
                ),
            )
        })
}

/// `order claim` of a storage order: every period the fold gives the server, with the
/// buyer's release of it.
fn claim_storage(
    json: bool,
    args: &OrderArgs,
    s: &Session,
    l: &Loaded<StorageOrder>,
) -> Result<()> {
    let me = s.me();
    if l.server() != Some(me) {
        return Err(not_yours(
            "only the server that took a storage order is paid by it",
        ));
    }
    let (lock, escrows) = l.funding()?;
    let releases = l.consents(l.buyer(), |v| matches!(v, OrderVerb::Confirm));
    let w = wallet(args)?;
    let mut claimed = Vec::new();
    let mut waiting = Vec::new();
    let mut got = 0u64;
    let parts = split(s, &w, &lock)?;
    for (p, escrow) in (0u64..).zip(&escrows) {
        if !l.earned(p) {
            continue;
        }
        let part = part_of(&parts, escrow)?;
        match s.rt.block_on(w.claim(part, &releases)) {
            Ok(amount) => {
                got += amount;
                claimed.push(p + 1);
            }
            // Claimed before: nothing twice.
            Err(agigit_market_cashu::CashuError::Spent) => {}
            Err(agigit_market_cashu::CashuError::Consents) => waiting.push(p + 1),
            Err(e) => return Err(e.into()),
        }
    }
    let balance = s.rt.block_on(w.balance())?;
    print(
        json,
        serde_json::json!({"id": l.id().to_hex(), "claimed": got, "periods": claimed, "unreleased": waiting, "balance": balance}),
        || {
            let mut text =
                format!("claimed {got} sats (periods {claimed:?}); the wallet holds {balance}");
            if !waiting.is_empty() {
                text.push_str(&format!(
                    "\n  periods {waiting:?} are yours but the buyer has not released them yet"
                ));
            }
            text
        },
    );
    Ok(())
}

/// A schedule token split into its escrows, once per command.
fn split(s: &Session, w: &CashuWallet, lock: &CashuLock) -> Result<Vec<(u64, CashuLock)>> {
    Ok(s.rt.block_on(w.parts(lock))?)
}

/// The part of `parts` that is `escrow`'s (by its refund time).
fn part_of<'p>(parts: &'p [(u64, CashuLock)], escrow: &Escrow) -> Result<&'p CashuLock> {
    parts
        .iter()
        .find(|(at, _)| *at == escrow.refund_at)
        .map(|(_, part)| part)
        .ok_or_else(|| {
            Failure::new(
                ErrorKind::Integrity,
                format!(
                    "the funding token holds no escrow refundable at {}: it is not the order's",
                    escrow.refund_at
                ),
            )
        })
}

/// `order refund` of a storage order: every period not the server's, each from its end.
fn refund_storage(
    json: bool,
    args: &OrderArgs,
    s: &Session,
    l: &Loaded<StorageOrder>,
) -> Result<()> {
    let me = s.me();
    if l.buyer() != me {
        return Err(not_yours("only the buyer takes an order's escrow back"));
    }
    let w = wallet(args)?;
    let (lock, escrows) = match l.funding() {
        Ok(found) => found,
        Err(e) => {
            // Funded, but the fund action never reached the relays: every part of the kept
            // token is the buyer's, each from its own time.
            let lock = kept_lock(l.id(), e)?;
            let (mut got, mut later) = (0u64, Vec::new());
            for (_, part) in s.rt.block_on(w.parts(&lock))? {
                match s.rt.block_on(w.refund(&part)) {
                    Ok(amount) => got += amount,
                    Err(agigit_market_cashu::CashuError::NotYetRefundable { refund_at }) => {
                        later.push(refund_at);
                    }
                    Err(agigit_market_cashu::CashuError::Spent) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let balance = s.rt.block_on(w.balance())?;
            print(
                json,
                serde_json::json!({"id": l.id().to_hex(), "refunded": got, "balance": balance, "later": later}),
                || format!("took back {got} sats; the wallet holds {balance}; more from {later:?}"),
            );
            return Ok(());
        }
    };
    let closed = l.folded.order.is_closed();
    let current = match l.folded.order.phase() {
        StoragePhase::Running { period, .. } => Some(period),
        _ => None,
    };
    let settled = l.folded.order.settled().len() as u64;
    let (mut got, mut refunded, mut later) = (0u64, Vec::new(), Vec::new());
    let parts = split(s, &w, &lock)?;
    for (p, escrow) in (0u64..).zip(&escrows) {
        // The buyer's: settled against the server, or left when the order closed.
        let buyers = !l.earned(p) && (p < settled || closed) && current != Some(p);
        if !buyers {
            continue;
        }
        let part = part_of(&parts, escrow)?;
        match s.rt.block_on(w.refund(part)) {
            Ok(amount) => {
                got += amount;
                refunded.push(p + 1);
            }
            Err(agigit_market_cashu::CashuError::NotYetRefundable { refund_at }) => {
                later.push((p + 1, refund_at));
            }
            Err(agigit_market_cashu::CashuError::Spent) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let balance = s.rt.block_on(w.balance())?;
    print(
        json,
        serde_json::json!({
            "id": l.id().to_hex(), "refunded": got, "periods": refunded, "balance": balance,
            "later": later.iter().map(|(p, at)| serde_json::json!({"period": p, "at": at})).collect::<Vec<_>>(),
        }),
        || {
            let mut text =
                format!("took back {got} sats (periods {refunded:?}); the wallet holds {balance}");
            for (p, at) in &later {
                text.push_str(&format!("\n  period {p} comes back from {at}"));
            }
            text
        },
    );
    Ok(())
}

/// Where the buyer keeps the token it locked for order `id`: `<agigit home>/wallet/orders`.
fn kept_token(id: EventId) -> Result<std::path::PathBuf> {
    Ok(crate::context::home()?
        .join("wallet")
        .join("orders")
        .join(format!("{}.token", id.to_hex())))
}

/// Writes `token` to `path`, owner-only, synced before the fund action is published.
fn keep_token(path: &std::path::Path, token: &str) -> Result<()> {
    let io = |e: std::io::Error| {
        Failure::new(
            ErrorKind::Io,
            format!(
                "{}: {e}; the escrow was locked: its token is {token}",
                path.display()
            ),
        )
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// The consents the order's actions give toward `ruling`: the buyer's confirmation and the
/// arbiter's pay ruling for the relay; the arbiter's refund ruling for the buyer.
fn release_consents(l: &Loaded<PullOrder>, ruling: Ruling) -> Vec<CashuConsent> {
    let mut out = Vec::new();
    if ruling == Ruling::Pay {
        out.extend(l.consents(l.buyer(), |v| matches!(v, OrderVerb::Confirm)));
    }
    if let Some(arbiter) = l.folded.order.terms().arbiter {
        let wanted = match ruling {
            Ruling::Pay => DefaultRule::Pay,
            Ruling::Refund => DefaultRule::Refund,
        };
        out.extend(l.consents(arbiter, |v| *v == OrderVerb::Rule(wanted)));
    }
    out
}

/// Signs the order `body` at `now` and publishes it — once the fold accepts its terms (ones
/// the order can run to an end with): nothing the fold refuses is sent.
fn post_order<O: Order>(s: &Session, body: O::Event, now: u64) -> Result<(Loaded<O>, usize)> {
    let event = Signed::sign(body, &s.keys, Timestamp::from_secs(now))
        .map_err(|e| Failure::invalid(e.to_string()))?
        .into_event();
    let folded = agigit_market::fold_order::<O>(&event, [], Some(now))
        .map_err(|e| Failure::invalid(e.to_string()))?;
    let accepted = s.publish(&event)?;
    Ok((
        Loaded {
            order: event,
            actions: Vec::new(),
            folded,
        },
        accepted,
    ))
}

fn post(json: bool, args: &OrderArgs, p: &PullArgs) -> Result<()> {
    let s = Session::new(args)?;
    let now = unix_now();
    let repo: RepoCoordinate = p.repo.parse().map_err(|e| {
        Failure::invalid(format!("{:?} is not a repository coordinate: {e}", p.repo))
    })?;
    let model: ObjectId = p
        .model
        .parse()
        .map_err(|e| Failure::invalid(format!("{:?} is not a commit id: {e}", p.model)))?;
    let relays = p
        .takers
        .iter()
        .map(|t| key_arg(t))
        .collect::<Result<Vec<_>>>()?;
    let body = PullOrderEvent {
        repo,
        model,
        relays,
        price: p.price,
        tip: p.tip,
        bond: 0,
        arbiter: p.arbiter.as_deref().map(key_arg).transpose()?,
        take_by: now.saturating_add(p.take_within),
        fund_within: p.fund_within,
        deliver_within: p.deliver_within,
        confirm_within: p.confirm_within,
        arbitrate_within: p.arbitrate_within,
        default_rule: match p.default {
            RuleArg::Pay => DefaultRule::Pay,
            RuleArg::Refund => DefaultRule::Refund,
        },
        note: p.note.clone(),
    };
    let (l, accepted) = post_order::<PullOrder>(&s, body, now)?;
    let event = &l.order;
    let mut value = summary(&l);
    value["accepted"] = serde_json::json!(accepted);
    print(json, value, || {
        format!(
            "posted order {} to {accepted} relays: waiting for a listed relay to take it",
            event.id
        )
    });
    Ok(())
}

fn post_storage(ctx: &Ctx, args: &OrderArgs, p: &StorageArgs) -> Result<()> {
    let store = store_url(&p.store);
    let (repo, blobs) = crate::remote::stored_blobs(ctx, &store)?;
    if blobs.is_empty() {
        return Err(Failure::invalid(format!(
            "{store} holds nothing of {repo}'s pushed packs: push first, or name the server that holds them"
        )));
    }
    if blobs.len() > MAX_ORDER_SHARDS {
        return Err(Failure::invalid(format!(
            "{store} holds {} blobs of {repo}; one order names at most {MAX_ORDER_SHARDS}",
            blobs.len()
        )));
    }
    let s = Session::new(args)?;
    let now = unix_now();
    let servers = p
        .servers
        .iter()
        .map(|t| key_arg(t))
        .collect::<Result<Vec<_>>>()?;
    let body = StorageOrderEvent {
        repo,
        shards: blobs
            .iter()
            .map(|b| StoredShard {
                blob: b.hash,
                size: b.len,
                root: b.root,
            })
            .collect(),
        servers,
        price: p.price,
        periods: p.periods,
        period: p.period,
        bond: 0,
        take_by: now.saturating_add(p.take_within),
        fund_within: p.fund_within,
        answer_within: p.answer_within,
        challenges: p.challenges,
        // On Cashu a period's payment moves only with the buyer's release: one nobody
        // audited goes back to the buyer.
        unaudited: DefaultRule::Refund,
        note: p.note.clone(),
    };
    let (l, accepted) = post_order::<StorageOrder>(&s, body, now)?;
    let event = &l.order;
    let mut value = storage_summary(&l);
    value["accepted"] = serde_json::json!(accepted);
    print(ctx.json, value, || {
        format!(
            "posted storage order {} for {} blobs at {store} to {accepted} relays: waiting for a listed server to take it",
            event.id,
            blobs.len()
        )
    });
    Ok(())
}
