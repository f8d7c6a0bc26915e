//! Storage audits answered by the relay itself (docs/market.md, "Storage orders").
//!
//! A storage order (kind 1723) pays the server that took it period by period, each period only
//! once its audit passed: the buyer challenges with a fresh nonce, and the server must answer
//! within `answer_within` seconds with the challenged leaves of its copies and their Merkle
//! paths. A server is a relay that runs day and night; its operator should not have to. With
//! [`Relay::with_audits`](crate::Relay::with_audits) the relay answers every challenge on an
//! order its own key took, from its own blob store:
//!
//! - **Live**: a challenge event (kind 1722, `action` = `challenge`) stored by this relay is
//!   looked at as soon as it is stored.
//! - **Sweep**: every [`AuditSettings::sweep`], and once at start, the storage orders that
//!   list the relay's key are folded and any challenge still open is answered: one published
//!   to another relay, or missed while the relay was down or its live buffer overflowed.
//!
//! Everything here is blocking work (store queries, reading shards, hashing): the task that
//! drives it hands each pass to the blocking pool, one pass at a time, so a flood of events
//! never queues more than one pass. A challenge is looked at only when its author is the
//! order's buyer (a stranger's event costs one indexed query), an order only when it lists
//! the relay's key, and a shard is read only when its size in the store is the size the order
//! names; one shard is held in memory at a time.
//!
//! The answer is signed with the relay's key, checked against the order's state machine
//! first (nothing the fold would refuse is published), stored, and sent to the relay's
//! subscribers. A shard the relay no longer holds, or holds rotted, cannot be answered: the
//! pass logs it and the period fails at its deadline, as it should.

use std::sync::Arc;
use std::time::Duration;

use agigit_event::Signed;
use agigit_event::kinds::{ORDER_ACTION, STORAGE_ORDER, kind};
use agigit_event::market::{OrderAction, OrderVerb, StoredShard};
use agigit_market::AnswerError;
use agigit_market::fold::MAX_ACTIONS;
use agigit_market::storage::{Audit, StorageAction, StoragePhase};
use nostr::prelude::{Event, EventId, Filter, Keys, PublicKey, Timestamp};

use crate::blobs::{BlobStore, BlobStoreError};
use crate::store::{EventStore, EventStoreError};

/// How the relay answers storage audits.
#[derive(Clone)]
pub struct AuditSettings {
    /// The relay's key: the orders it took, and the key its answers are signed with.
    pub keys: Keys,
    /// How often open challenges on its orders are looked for, besides live events.
    pub sweep: Duration,
}

impl std::fmt::Debug for AuditSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSettings")
            .field("key", &self.keys.public_key())
            .field("sweep", &self.sweep)
            .finish_non_exhaustive()
    }
}

/// How many of the relay's own newest actions, and of the newest orders naming it, one sweep
/// reads (at most the event stores' [`MAX_FILTER_VALUES`](crate::store::MAX_FILTER_VALUES)): a relay with more open orders than this still answers each one's challenges live.
pub const MAX_SWEPT_ORDERS: usize = 1000;

/// Why a challenge was not answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The event store failed.
    #[error("events: {0}")]
    Events(#[from] EventStoreError),
    /// The blob store failed.
    #[error("blobs: {0}")]
    Blobs(#[from] BlobStoreError),
    /// The order's events do not fold (a malformed order, which the relay should not have
    /// taken).
    #[error("order {order}: {reason}")]
    Fold {
        /// The order.
        order: EventId,
        /// Why.
        reason: String,
    },
    /// A challenged shard is not in the blob store.
    #[error("order {order}: the challenged blob {blob} is not stored here: the audit will fail")]
    Lost {
        /// The order.
        order: EventId,
        /// The blob.
        blob: agigit_hash::BlobHash,
    },
    /// The relay's copy of a challenged shard is not the shard the order names.
    #[error("order {order}: {reason}")]
    Mismatch {
        /// The order.
        order: EventId,
        /// Why.
        reason: String,
    },
    /// The state machine refuses the answer (the challenge closed in the meantime).
    #[error("order {order}: the order refuses the answer: {reason}")]
    Refused {
        /// The order.
        order: EventId,
        /// Why.
        reason: String,
    },
    /// The answer cannot be signed.
    #[error("cannot sign an answer: {0}")]
    Sign(String),
}

/// Answers the storage audits of one relay: its key, its events, its blobs.
pub struct Auditor {
    keys: Keys,
    events: Arc<dyn EventStore>,
    blobs: Arc<dyn BlobStore>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("key", &self.keys.public_key())
            .finish_non_exhaustive()
    }
}

/// Whether `event` is a challenge on some order, and on which (a cheap look at its tags,
/// before anything is queried).
pub fn challenged_order(event: &Event) -> Option<EventId> {
    if event.kind != kind(ORDER_ACTION) || tag_value(event, "action") != Some("challenge") {
        return None;
    }
    event.tags.event_ids().next()
}

/// The first value of `event`'s first tag named `name` (for tags nostr has no accessor of).
fn tag_value<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event.tags.iter().find_map(|t| match t.as_slice() {
        [n, value, ..] if n == name => Some(value.as_str()),
        _ => None,
    })
}

impl Auditor {
    /// An auditor signing with `keys`, reading orders from `events` and shards from `blobs`.
    pub fn new(keys: Keys, events: Arc<dyn EventStore>, blobs: Arc<dyn BlobStore>) -> Self {
        Auditor {
            keys,
            events,
            blobs,
        }
    }

    fn me(&self) -> PublicKey {
        self.keys.public_key()
    }

    /// Answers the open challenge on order `order` at `now`, if there is one this relay must
    /// answer: `Ok(Some(answer))` (stored already), `Ok(None)` when there is nothing to
    /// answer — an order that does not list this relay, a challenge by someone other than the
    /// buyer, an order another server took, or no challenge open. Blocking.
    ///
    /// `by`, when given, is the challenge's author: a challenge not by the order's author is
    /// no challenge, and is dropped before the order's actions are read.
    ///
    /// # Errors
    /// [`AuditError`] when a challenge is open and cannot be answered.
    pub fn answer(
        &self,
        order: EventId,
        by: Option<PublicKey>,
        now: u64,
    ) -> Result<Option<Event>, AuditError> {
        let me = self.me();
        let found = self.events.query(&[Filter::new()
            .id(order)
            .kind(kind(STORAGE_ORDER))
            .pubkey(me)
            .limit(1)])?;
        let Some(event) = found.into_iter().find(|e| e.id == order) else {
            return Ok(None);
        };
        if by.is_some_and(|by| by != event.pubkey) {
            return Ok(None);
        }
        self.answer_folded(&event, now)
    }

    fn answer_folded(&self, order: &Event, now: u64) -> Result<Option<Event>, AuditError> {
        let me = self.me();
        let actions = self.events.query(&[Filter::new()
            .kind(kind(ORDER_ACTION))
            .event(order.id)
            .limit(MAX_ACTIONS)])?;
        let folded = agigit_market::fold_storage(order, actions, Some(now)).map_err(|e| {
            AuditError::Fold {
                order: order.id,
                reason: e.to_string(),
            }
        })?;
        let StoragePhase::Running {
            server,
            period,
            audit: Audit::Challenged { nonce, .. },
            ..
        } = folded.order.phase()
        else {
            return Ok(None);
        };
        if server != me {
            return Ok(None);
        }
        let openings = folded
            .order
            .terms()
            .answer(&nonce, period, |shard| self.read(order.id, shard))
            .map_err(|e| match e {
                AnswerError::Read(e) => e,
                other => AuditError::Mismatch {
                    order: order.id,
                    reason: other.to_string(),
                },
            })?;
        let at = folded.next_time(now);
        let refused = |reason: String| AuditError::Refused {
            order: order.id,
            reason,
        };
        folded
            .order
            .apply(me, &StorageAction::Answer(openings.clone()), at)
            .map_err(|e| refused(e.to_string()))?;
        let body = OrderAction {
            order: order.id,
            verb: OrderVerb::Answer(openings),
            token: None,
            release: Vec::new(),
            note: format!("period {} answered by the relay", period + 1),
        };
        let answer = Signed::sign(body, &self.keys, Timestamp::from_secs(at))
            .map_err(|e| AuditError::Sign(e.to_string()))?
            .into_event();
        let outcome = self.events.save(&answer)?;
        if !outcome.stored() {
            return Err(refused(format!(
                "the event store kept no answer: {outcome:?}"
            )));
        }
        Ok(Some(answer))
    }

    /// The shard's bytes from the blob store: only when stored at the size the order names.
    fn read(&self, order: EventId, shard: &StoredShard) -> Result<Vec<u8>, AuditError> {
        let lost = || AuditError::Lost {
            order,
            blob: shard.blob,
        };
        let (mut reader, info) = self.blobs.open(&shard.blob)?.ok_or_else(lost)?;
        if info.size != shard.size {
            return Err(AuditError::Mismatch {
                order,
                reason: format!(
                    "the copy of {} here is {} bytes, the order names {}",
                    shard.blob, info.size, shard.size
                ),
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(info.size).unwrap_or(0));
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut reader, info.size), &mut bytes)
            .map_err(BlobStoreError::Io)?;
        Ok(bytes)
    }

    /// Answers every open challenge at `now` on the storage orders this relay acted on (by
    /// its [`MAX_SWEPT_ORDERS`] newest actions) and the [`MAX_SWEPT_ORDERS`] newest that list
    /// it. Blocking. What could not be answered is
    /// returned beside what was: one order's failure does not stop the others.
    ///
    /// # Errors
    /// [`AuditError::Events`] when the orders cannot be listed.
    pub fn sweep(&self, now: u64) -> Result<Swept, AuditError> {
        let me = self.me();
        // The orders the relay acted on (its takes and answers: only its own key signs those,
        // so strangers' orders naming it cannot crowd them out), and the newest naming it.
        let mine: std::collections::BTreeSet<EventId> = self
            .events
            .query(&[Filter::new()
                .kind(kind(ORDER_ACTION))
                .author(me)
                .limit(MAX_SWEPT_ORDERS)])?
            .iter()
            .flat_map(|e| e.tags.event_ids())
            .collect();
        let mut filters = vec![
            Filter::new()
                .kind(kind(STORAGE_ORDER))
                .pubkey(me)
                .limit(MAX_SWEPT_ORDERS),
        ];
        if !mine.is_empty() {
            filters.push(Filter::new().kind(kind(STORAGE_ORDER)).ids(mine).pubkey(me));
        }
        let orders = self.events.query(&filters)?;
        let mut swept = Swept::default();
        for order in &orders {
            match self.answer_folded(order, now) {
                Ok(Some(answer)) => swept.answered.push(answer),
                Ok(None) => {}
                Err(e) => swept.failed.push((order.id, e)),
            }
        }
        Ok(swept)
    }
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    /// The answers it stored.
    pub answered: Vec<Event>,
    /// The orders whose open challenge it could not answer, and why.
    pub failed: Vec<(EventId, AuditError)>,
}

/// Runs `auditor` until `closing` turns true: each challenge in `live` answered as it comes,
/// a sweep at start and every `sweep`; every answer handed to `publish` (the relay's live
/// fan-out). One pass at a time, on the blocking pool.
pub(crate) async fn run(
    auditor: Arc<Auditor>,
    sweep: Duration,
    mut live: tokio::sync::broadcast::Receiver<Arc<Event>>,
    publish: impl Fn(Event) + Send + 'static,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(sweep.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let job: Option<(EventId, PublicKey)> = tokio::select! {
            _ = closing.wait_for(|c| *c) => return,
            _ = tick.tick() => None,
            got = live.recv() => match got {
                Ok(event) => match challenged_order(&event) {
                    Some(order) => Some((order, event.pubkey)),
                    None => continue,
                },
                // Missed some: the next sweep finds their challenges.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    tick.reset_immediately();
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        };
        let a = auditor.clone();
        let done = tokio::task::spawn_blocking(move || {
            let now = Timestamp::now().as_secs();
            match job {
                Some((order, by)) => match a.answer(order, Some(by), now) {
                    Ok(answer) => Swept {
                        answered: answer.into_iter().collect(),
                        failed: Vec::new(),
                    },
                    Err(e) => Swept {
                        answered: Vec::new(),
                        failed: vec![(order, e)],
                    },
                },
                None => a.sweep(now).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot list the storage orders to audit");
                    Swept::default()
                }),
            }
        })
        .await;
        let Ok(swept) = done else {
            tracing::error!("an audit pass panicked");
            continue;
        };
        for (order, e) in swept.failed {
            tracing::warn!(%order, error = %e, "storage audit not answered");
        }
        for answer in swept.answered {
            tracing::info!(order = ?answer.tags.event_ids().next(), "storage audit answered");
            publish(answer);
        }
    }
}
