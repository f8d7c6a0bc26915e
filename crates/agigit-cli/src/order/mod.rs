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
    StoragePhase,
};
use agigit_market_cashu::{CashuConsent, CashuLock, CashuWallet};
use clap::{Args, Subcommand, ValueEnum};

use self::money::*;
use self::post::*;
use self::session::*;
use self::view::*;

use crate::context::{Ctx, given_or_user_relays, keys, network, npub, open, print, runtime};
use crate::failure::{Failure, Result};

mod commands;
mod money;
mod post;
mod session;
mod view;

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

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn key_arg(text: &str) -> Result<PublicKey> {
    PublicKey::parse(text.trim())
        .map_err(|e| Failure::invalid(format!("{text:?} is not a public key (npub… or hex): {e}")))
}

pub(crate) fn id_arg(text: &str) -> Result<EventId> {
    EventId::from_hex(text.trim())
        .map_err(|_| Failure::invalid(format!("{text:?} is not an order id (64 hex digits)")))
}

/// The order's relays: `--relay-url`, else the user's list; each read from and written to.
fn relays(args: &OrderArgs) -> Result<Vec<RelayEntry>> {
    let list = given_or_user_relays(&args.relays)?;
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

/// What an order command acts with: the session, the user's key, and the time it runs at.
struct Act<'a> {
    ctx: &'a Ctx,
    args: &'a OrderArgs,
    s: Session,
    me: PublicKey,
    now: u64,
    json: bool,
}

pub(crate) fn order(ctx: &Ctx, args: &OrderArgs) -> Result<()> {
    let json = ctx.json;
    match &args.action {
        OrderCommand::Pull(p) => return post(json, args, p),
        OrderCommand::Storage(p) => return post_storage(ctx, args, p),
        _ => {}
    }
    let s = Session::new(args)?;
    let a = Act {
        ctx,
        args,
        me: s.me(),
        s,
        now: unix_now(),
        json,
    };
    match &args.action {
        OrderCommand::Pull(_) | OrderCommand::Storage(_) => unreachable!("handled above"),
        OrderCommand::Show { id } => commands::show(&a, id),
        OrderCommand::List => commands::list(&a),
        OrderCommand::Take { id, store } => commands::take(&a, id, store.as_deref()),
        OrderCommand::Fund { id } => commands::fund(&a, id),
        OrderCommand::Deliver { id } => commands::deliver(&a, id),
        OrderCommand::Confirm { id } => commands::confirm(&a, id),
        OrderCommand::Challenge { id } => commands::challenge(&a, id),
        OrderCommand::Answer { id, store } => commands::answer(&a, id, store),
        OrderCommand::Dispute { id } => commands::dispute(&a, id),
        OrderCommand::Cancel { id } => commands::cancel(&a, id),
        OrderCommand::Raise { id, amount } => commands::raise(&a, id, *amount),
        OrderCommand::Rule { id, ruling } => commands::rule(&a, id, *ruling),
        OrderCommand::Claim { id } => commands::claim(&a, id),
        OrderCommand::Refund { id } => commands::refund(&a, id),
    }
}
