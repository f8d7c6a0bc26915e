//! `agigit order`: the market's pull orders from the command line — posted, taken, funded,
//! delivered, confirmed, disputed and ruled as signed events on the user's relays, their money
//! on the user's Cashu wallet (`docs/market.md`).
//!
//! Every command first folds the order's events (`agigit_market::fold`) and acts only where the
//! state machine lets the user's key act; the relays are told nothing the fold would refuse.

use std::time::{SystemTime, UNIX_EPOCH};

use agigit::ErrorKind;
use agigit::config::RelayEntry;
use agigit::event::kinds::{ORDER_ACTION, PULL_ORDER, kind};
use agigit::event::market::{DefaultRule, OrderAction, OrderVerb, PullOrderEvent};
use agigit::event::nostr::prelude::{Event, EventId, Filter, Keys, PublicKey, Timestamp};
use agigit::event::{RepoCoordinate, Signed};
use agigit::hash::ObjectId;
use agigit_market::fold::MAX_ACTIONS;
use agigit_market::ledger::{Escrow, Ledger as _};
use agigit_market::{Folded, Outcome, Phase, Ruling};
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
    /// (Relay) Take an open order that lists your key.
    Take {
        /// The order's id.
        id: String,
    },
    /// (Buyer) Fund a taken order: lock price, tip and raises for the taker in your wallet, as a
    /// token only the taker (with your or the arbiter's consent) or you (from the last
    /// deadline) can spend.
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
    /// (Relay) Take the payment of an order paid to you into your wallet.
    Claim {
        /// The order's id.
        id: String,
    },
    /// (Buyer) Take the escrow of an order that did not pay the relay back into your wallet:
    /// with the arbiter's ruling at once, else from its last deadline (the mint's clock).
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
        let _entered = self.rt.enter();
        Ok(self.rt.block_on(self.net.pool.query(&[filter]))?)
    }

    /// The order event `id` and every action on it the relays hold.
    fn load(&self, id: EventId) -> Result<Loaded> {
        let order = self
            .query(Filter::new().id(id).kind(kind(PULL_ORDER)))?
            .into_iter()
            .find(|e| e.id == id)
            .ok_or_else(|| {
                Failure::new(
                    ErrorKind::Network,
                    format!("no relay has the pull order {id}: check the id and --relay-url"),
                )
            })?;
        let actions = self.query(
            Filter::new()
                .kind(kind(ORDER_ACTION))
                .event(id)
                .limit(MAX_ACTIONS),
        )?;
        let folded = agigit_market::fold(&order, actions.clone(), Some(unix_now()))
            .map_err(|e| Failure::new(ErrorKind::Integrity, e.to_string()))?;
        let signed = Signed::<PullOrderEvent>::from_event(order)
            .map_err(|e| Failure::new(ErrorKind::Integrity, e.to_string()))?;
        Ok(Loaded {
            signed,
            actions,
            folded,
        })
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

/// An order as the relays hold it.
struct Loaded {
    signed: Signed<PullOrderEvent>,
    actions: Vec<Event>,
    folded: Folded,
}

impl Loaded {
    fn id(&self) -> EventId {
        self.folded.id
    }

    fn buyer(&self) -> PublicKey {
        self.signed.author()
    }

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

    /// The actions the fold applied (not refused, not ignored) with verb `matching`, earliest
    /// first, by `author`.
    fn applied(
        &self,
        author: PublicKey,
        matching: impl Fn(&OrderVerb) -> bool,
    ) -> Vec<Signed<OrderAction>> {
        let skipped: std::collections::BTreeSet<EventId> = self
            .folded
            .refused
            .iter()
            .map(|(id, _)| *id)
            .chain(self.folded.ignored.iter().map(|(id, _)| *id))
            .collect();
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

    /// When an action on the order is to be dated: now, or a second after the latest action
    /// the order applied when that is later. The fold orders actions by their time (ties by
    /// id), so an action dated in the same second as the one it answers could sort before it.
    /// Refused and ignored events do not count: a stranger's event dated far ahead moves
    /// nothing.
    fn next_time(&self, now: u64) -> u64 {
        let skipped: std::collections::BTreeSet<EventId> = self
            .folded
            .refused
            .iter()
            .map(|(id, _)| *id)
            .chain(self.folded.ignored.iter().map(|(id, _)| *id))
            .collect();
        self.actions
            .iter()
            .filter(|e| !skipped.contains(&e.id))
            .map(|e| e.created_at.as_secs())
            .chain(std::iter::once(self.signed.created_at().as_secs()))
            .max()
            .map_or(now, |latest| now.max(latest.saturating_add(1)))
    }

    /// The funding: its token and the escrow it must be locked under.
    fn funding(&self) -> Result<(CashuLock, Escrow)> {
        let relay = self
            .relay()
            .ok_or_else(|| Failure::invalid("nobody took this order: it was never funded"))?;
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
        let t = self.folded.order.terms();
        let at = fund.created_at().as_secs();
        Ok((
            CashuLock::from_token(token),
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

fn summary(l: &Loaded) -> serde_json::Value {
    let o = &l.folded.order;
    let t = o.terms();
    serde_json::json!({
        "id": l.id().to_hex(),
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

fn summary_text(l: &Loaded) -> String {
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
    if let Some((at, what)) = o.next_deadline() {
        let now = unix_now();
        let when = if at > now {
            format!("in {} s", at - now)
        } else {
            "now".to_owned()
        };
        text.push_str(&format!("\n  next: at {at} ({when}) it {what}"));
    }
    for (id, why) in &l.folded.refused {
        text.push_str(&format!("\n  refused {}: {why}", id.to_hex()));
    }
    text
}

fn wallet(args: &OrderArgs) -> Result<CashuWallet> {
    crate::wallet::open(args.mint.as_deref())
}

fn not_yours(what: &str) -> Failure {
    Failure::new(ErrorKind::Access, what.to_owned())
}

pub(crate) fn order(ctx: &Ctx, args: &OrderArgs) -> Result<()> {
    let json = ctx.json;
    if let OrderCommand::Pull(p) = &args.action {
        return post(json, args, p);
    }
    let s = Session::new(args)?;
    let me = s.me();
    let now = unix_now();
    let reply = |verb: &str, id: EventId, l: &Loaded, extra: serde_json::Value| {
        let mut value = summary(l);
        value["action"] = serde_json::json!(verb);
        value["action_id"] = serde_json::json!(id.to_hex());
        if let (Some(obj), serde_json::Value::Object(more)) = (value.as_object_mut(), extra) {
            obj.extend(more);
        }
        value
    };
    // Applies the verb to the fold first, at the time the action will carry: the relays are
    // told nothing the order refuses.
    let allowed = |l: &Loaded, action: agigit_market::Action| -> Result<u64> {
        let at = l.next_time(now);
        l.folded
            .order
            .apply(me, action, at)
            .map(|_| at)
            .map_err(|e| not_yours(&format!("the order refuses: {e}")))
    };
    // An action that carries nothing for the ledger: checked, published, the order shown.
    let plain = |id: &str,
                 action: agigit_market::Action,
                 verb: OrderVerb,
                 text: &dyn Fn(&Loaded) -> String|
     -> Result<()> {
        let l = s.load(id_arg(id)?)?;
        let at = allowed(&l, action)?;
        let name = verb.as_str();
        let event = s.act(l.id(), verb, None, Vec::new(), at)?;
        let l = s.load(l.id())?;
        print(json, reply(name, event, &l, serde_json::json!({})), || {
            text(&l)
        });
        Ok(())
    };
    match &args.action {
        OrderCommand::Pull(_) => unreachable!("handled above"),
        OrderCommand::Show { id } => {
            let l = s.load(id_arg(id)?)?;
            print(json, summary(&l), || summary_text(&l));
        }
        OrderCommand::List => {
            let mut ids: Vec<EventId> = s
                .query(Filter::new().kind(kind(PULL_ORDER)).author(me).limit(500))?
                .into_iter()
                .chain(s.query(Filter::new().kind(kind(PULL_ORDER)).pubkey(me).limit(500))?)
                .map(|e| e.id)
                .collect();
            ids.sort();
            ids.dedup();
            let mut loaded = Vec::new();
            for id in ids {
                if let Ok(l) = s.load(id) {
                    loaded.push(l);
                }
            }
            print(
                json,
                serde_json::json!({"orders": loaded.iter().map(summary).collect::<Vec<_>>()}),
                || {
                    if loaded.is_empty() {
                        "no orders".to_owned()
                    } else {
                        loaded
                            .iter()
                            .map(summary_text)
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                },
            );
        }
        OrderCommand::Take { id } => {
            let l = s.load(id_arg(id)?)?;
            let at = allowed(&l, agigit_market::Action::Take)?;
            let t = l.folded.order.terms();
            if t.bond > 0 {
                return Err(Failure::invalid(
                    "this order asks a bond; bonds on Cashu are not supported by the command line yet",
                ));
            }
            let action = s.act(l.id(), OrderVerb::Take, None, Vec::new(), at)?;
            let l = s.load(l.id())?;
            print(
                json,
                reply("take", action, &l, serde_json::json!({})),
                || format!("took order {}: wait for the buyer to fund it", l.id()),
            );
        }
        OrderCommand::Fund { id } => {
            let l = s.load(id_arg(id)?)?;
            let at = allowed(&l, agigit_market::Action::Fund)?;
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
            // The locked token is the buyer's money until the relay claims it: kept on disk
            // before it is published, so that a failed publish loses nothing.
            let kept = kept_token(l.id())?;
            if kept.exists() {
                return Err(Failure::new(
                    ErrorKind::WouldLoseWork,
                    format!(
                        "an earlier `order fund` locked escrow for this order ({}) that may not have reached the relays: see `agigit order show {}`; `agigit order refund {}` takes it back from its refund time",
                        kept.display(),
                        l.id(),
                        l.id()
                    ),
                ));
            }
            let w = wallet(args)?;
            let lock = s.rt.block_on(w.lock(&escrow))?;
            keep_token(&kept, lock.token())?;
            let action = s
                .act(
                    l.id(),
                    OrderVerb::Fund,
                    Some(lock.token().to_owned()),
                    Vec::new(),
                    at,
                )
                .map_err(|e| {
                    Failure::new(
                        e.kind,
                        format!(
                            "{}; the escrow is locked in {} and comes back with `agigit order refund {}` from {}",
                            e.message,
                            kept.display(),
                            l.id(),
                            escrow.refund_at
                        ),
                    )
                })?;
            let l = s.load(l.id())?;
            print(
                json,
                reply(
                    "fund",
                    action,
                    &l,
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
        }
        OrderCommand::Deliver { id } => {
            let l = s.load(id_arg(id)?)?;
            let at = allowed(&l, agigit_market::Action::Deliver)?;
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
                    &l,
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
        OrderCommand::Confirm { id } => {
            let l = s.load(id_arg(id)?)?;
            let at = allowed(&l, agigit_market::Action::Confirm)?;
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
                reply("confirm", action, &l, serde_json::json!({})),
                || {
                    format!(
                        "confirmed: the relay can now claim its {} sats",
                        l.folded.order.owed()
                    )
                },
            );
        }
        OrderCommand::Dispute { id } => plain(
            id,
            agigit_market::Action::Dispute,
            OrderVerb::Dispute,
            &|_| "disputed: the arbiter decides".to_owned(),
        )?,
        OrderCommand::Cancel { id } => plain(
            id,
            agigit_market::Action::Cancel,
            OrderVerb::Cancel,
            &|_| "cancelled".to_owned(),
        )?,
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
            let at = allowed(&l, agigit_market::Action::Rule(ruling))?;
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
                reply("rule", action, &l, serde_json::json!({})),
                || "ruled, and signed the escrow over".to_owned(),
            );
        }
        OrderCommand::Claim { id } => {
            let l = s.load(id_arg(id)?)?;
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
        OrderCommand::Refund { id } => {
            let l = s.load(id_arg(id)?)?;
            if l.buyer() != me {
                return Err(not_yours("only the buyer takes an order's escrow back"));
            }
            if matches!(l.folded.order.phase(), Phase::Closed(Outcome::Paid { .. })) {
                return Err(not_yours("this order paid the relay: nothing comes back"));
            }
            // The token from the relays' fund action, else the one kept when funding.
            let (lock, refund_at) = match l.funding() {
                Ok((lock, escrow)) => (lock, Some(escrow.refund_at)),
                Err(e) => {
                    let kept = kept_token(l.id())?;
                    let token = std::fs::read_to_string(&kept).map_err(|_| e)?;
                    (CashuLock::from_token(token.trim()), None)
                }
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
    }
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
fn release_consents(l: &Loaded, ruling: Ruling) -> Vec<CashuConsent> {
    let t = l.folded.order.terms();
    let mut out = Vec::new();
    if ruling == Ruling::Pay {
        out.extend(
            l.applied(l.buyer(), |v| matches!(v, OrderVerb::Confirm))
                .into_iter()
                .map(|a| CashuConsent {
                    by: a.author(),
                    signatures: a.body().release.clone(),
                }),
        );
    }
    if let Some(arbiter) = t.arbiter {
        let wanted = match ruling {
            Ruling::Pay => DefaultRule::Pay,
            Ruling::Refund => DefaultRule::Refund,
        };
        out.extend(
            l.applied(arbiter, |v| *v == OrderVerb::Rule(wanted))
                .into_iter()
                .map(|a| CashuConsent {
                    by: a.author(),
                    signatures: a.body().release.clone(),
                }),
        );
    }
    out.retain(|c| !c.signatures.is_empty());
    out
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
    let event = Signed::sign(body, &s.keys, Timestamp::from_secs(now))
        .map_err(|e| Failure::invalid(e.to_string()))?
        .into_event();
    // The terms must be ones the order can run to an end with: folded before anything is sent.
    let folded =
        agigit_market::fold(&event, [], Some(now)).map_err(|e| Failure::invalid(e.to_string()))?;
    let accepted = s.publish(&event)?;
    let l = Loaded {
        signed: Signed::<PullOrderEvent>::from_event(event.clone())
            .map_err(|e| Failure::new(ErrorKind::Integrity, e.to_string()))?,
        actions: Vec::new(),
        folded,
    };
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
