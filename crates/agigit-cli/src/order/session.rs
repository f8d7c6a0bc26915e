//! What every order command works with: the session (runtime, network, key) and orders
//! loaded from the relays and folded.

use super::*;

/// What a command works with: the runtime, the network, and the user's key.
pub(super) struct Session {
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) net: agigit::net::Network,
    pub(super) keys: Keys,
}

impl Session {
    pub(super) fn new(args: &OrderArgs) -> Result<Self> {
        let keys = keys()?;
        let rt = runtime()?;
        let net = {
            let _entered = rt.enter();
            network(&keys, &relays(args)?)?
        };
        Ok(Self { rt, net, keys })
    }

    pub(super) fn me(&self) -> PublicKey {
        self.keys.public_key()
    }

    pub(super) fn publish(&self, event: &Event) -> Result<usize> {
        let _entered = self.rt.enter();
        let report = self.rt.block_on(self.net.pool.publish(event, 1))?;
        Ok(report.accepted())
    }

    pub(super) fn query(&self, filter: Filter) -> Result<Vec<Event>> {
        self.query_many(std::slice::from_ref(&filter))
    }

    /// The events matching any of `filters`, in one query.
    pub(super) fn query_many(&self, filters: &[Filter]) -> Result<Vec<Event>> {
        let _entered = self.rt.enter();
        Ok(self.rt.block_on(self.net.pool.query(filters))?)
    }

    /// The order event `id`, of either kind, and every action on it the relays hold, folded
    /// at now.
    pub(super) fn load_any(&self, id: EventId) -> Result<AnyOrder> {
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
    pub(super) fn load_many(&self, orders: Vec<Event>) -> Result<Vec<AnyOrder>> {
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
    pub(super) fn load(&self, id: EventId) -> Result<Loaded<PullOrder>> {
        match self.load_any(id)? {
            AnyOrder::Pull(l) => Ok(l),
            AnyOrder::Storage(_) => Err(Failure::invalid(format!(
                "{id} is a storage order: it has no such action (see `agigit order --help`)"
            ))),
        }
    }

    /// The storage order `id`, folded at now.
    pub(super) fn load_storage(&self, id: EventId) -> Result<Loaded<StorageOrder>> {
        match self.load_any(id)? {
            AnyOrder::Storage(l) => Ok(l),
            AnyOrder::Pull(_) => Err(Failure::invalid(format!(
                "{id} is a pull order: it has no such action (see `agigit order --help`)"
            ))),
        }
    }

    /// Signs and publishes an action on `order` at `at`.
    pub(super) fn act(
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
pub(super) const ORDERS_PER_QUERY: usize = 8;

/// The filter for the actions on order `id`.
pub(super) fn actions_on(id: EventId) -> Filter {
    Filter::new()
        .kind(kind(ORDER_ACTION))
        .event(id)
        .limit(MAX_ACTIONS)
}

/// `order` (of either kind) folded with `actions` at now.
pub(super) fn assemble(order: Event, actions: Vec<Event>) -> Result<AnyOrder> {
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
pub(super) struct Loaded<O = PullOrder> {
    pub(super) order: Event,
    pub(super) actions: Vec<Event>,
    pub(super) folded: Folded<O>,
}

/// An order of either kind.
pub(super) enum AnyOrder {
    Pull(Loaded<PullOrder>),
    Storage(Loaded<StorageOrder>),
}

impl<O: Order> Loaded<O> {
    pub(super) fn id(&self) -> EventId {
        self.folded.id
    }

    /// The order's author (the fold verified its signature).
    pub(super) fn buyer(&self) -> PublicKey {
        self.order.pubkey
    }

    /// The events the fold applied: neither refused nor ignored.
    pub(super) fn skipped(&self) -> std::collections::BTreeSet<EventId> {
        self.folded
            .refused
            .iter()
            .map(|(id, _)| *id)
            .chain(self.folded.ignored.iter().map(|(id, _)| *id))
            .collect()
    }

    /// The actions the fold applied (not refused, not ignored) with verb `matching`, earliest
    /// first, by `author`.
    pub(super) fn applied(
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
    pub(super) fn allowed(&self, me: PublicKey, action: &O::Action, now: u64) -> Result<u64> {
        let at = self.folded.next_time(now);
        self.folded
            .order
            .apply(me, action, at)
            .map(|_| at)
            .map_err(|e| not_yours(&format!("the order refuses: {e}")))
    }

    /// The token of the buyer's applied `fund` action, and when it was funded.
    pub(super) fn fund_token(&self) -> Result<(CashuLock, u64)> {
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
    pub(super) fn consents(
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
    pub(super) fn relay(&self) -> Option<PublicKey> {
        self.folded.order.phase().relay()
    }

    /// The funding: its token and the escrow it must be locked under.
    pub(super) fn funding(&self) -> Result<(CashuLock, Escrow)> {
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
    pub(super) fn server(&self) -> Option<PublicKey> {
        self.folded.order.phase().server()
    }

    /// The funding: its token (one escrow per period) and the escrows it must hold.
    pub(super) fn funding(&self) -> Result<(CashuLock, Vec<Escrow>)> {
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
    pub(super) fn earned(&self, p: u64) -> bool {
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
