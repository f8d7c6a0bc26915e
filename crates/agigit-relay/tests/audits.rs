//! The relay answers the storage audits of the orders its key took, from its own blob store:
//! three periods driven at chosen times through the auditor (the third fails: a challenged
//! shard was deleted), the strangers and orders it must ignore, and then the running relay —
//! a challenge sent over a WebSocket answered live, and one stored while the relay was down
//! answered by the sweep at start. Every wait is bounded.

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test fixtures"
)]

use std::sync::Arc;
use std::time::Duration;

use agigit_event::Signed;
use agigit_event::market::{DefaultRule, OrderAction, OrderVerb, StorageOrderEvent, StoredShard};
use agigit_hash::BlobHash;
use agigit_market::audit::{Digest, root};
use agigit_market::storage::{Audit, Settled, StorageOrder, StorageOutcome, StoragePhase};
use agigit_relay::audits::{AuditError, AuditSettings, Auditor};
use agigit_relay::server::{Info, Limits, Relay, serve};
use agigit_relay::{BlobStore, BlossomConfig, EventStore, FsBlobStore, SqliteEventStore};
use futures_util::{SinkExt as _, StreamExt as _};
use nostr::prelude::{ClientMessage, Event, EventId, Filter, Keys, RelayMessage, Timestamp};
use tokio_tungstenite::tungstenite::Message;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(20);
const PERIOD: u64 = 600;
const ANSWER: u64 = 60;

struct Setup {
    dir: std::path::PathBuf,
    relay: Keys,
    buyer: Keys,
    events: Arc<SqliteEventStore>,
    blobs: Arc<FsBlobStore>,
    shards: Vec<StoredShard>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A relay's stores holding three shards, its key, and a buyer.
fn setup(name: &str) -> TestResult<Setup> {
    let dir = std::env::temp_dir().join(format!("agigit-audits-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let blobs = Arc::new(FsBlobStore::open(&dir)?);
    let buyer = Keys::generate();
    let mut shards = Vec::new();
    for (i, len) in [70_000usize, 1024, 9_000].into_iter().enumerate() {
        let bytes: Vec<u8> = (0..len)
            .map(|j| ((j as u64 * 2_654_435_761 + i as u64 * 97) >> 7) as u8)
            .collect();
        let mut up = blobs.begin(1 << 20)?;
        up.write(&bytes)?;
        up.commit(&buyer.public_key(), "application/octet-stream", None, None)?;
        shards.push(StoredShard {
            blob: BlobHash::digest(&bytes),
            size: bytes.len() as u64,
            root: root(&bytes),
        });
    }
    Ok(Setup {
        dir,
        relay: Keys::generate(),
        buyer,
        events: Arc::new(SqliteEventStore::in_memory()?),
        blobs,
        shards,
    })
}

impl Setup {
    fn auditor(&self) -> Auditor {
        Auditor::new(self.relay.clone(), self.events.clone(), self.blobs.clone())
    }

    /// The buyer's order for the shards, to `servers`, posted at `at`.
    fn order(&self, servers: Vec<nostr::prelude::PublicKey>, at: u64) -> TestResult<Event> {
        let body = StorageOrderEvent {
            repo: format!("30717:{}:model", self.buyer.public_key().to_hex()).parse()?,
            shards: self.shards.clone(),
            servers,
            price: 10,
            periods: 3,
            period: PERIOD,
            bond: 0,
            take_by: at + 100,
            fund_within: 100,
            answer_within: ANSWER,
            challenges: 4,
            unaudited: DefaultRule::Refund,
            note: String::new(),
        };
        let event = Signed::sign(body, &self.buyer, Timestamp::from_secs(at))?.into_event();
        assert!(self.events.save(&event)?.stored());
        Ok(event)
    }

    /// `by`'s action on `order` at `at`, stored.
    fn act(&self, by: &Keys, order: EventId, verb: OrderVerb, at: u64) -> TestResult<Event> {
        let body = OrderAction {
            order,
            verb,
            token: None,
            release: Vec::new(),
            note: String::new(),
        };
        let event = Signed::sign(body, by, Timestamp::from_secs(at))?.into_event();
        assert!(self.events.save(&event)?.stored());
        Ok(event)
    }

    /// The order folded from the store at `now`.
    fn fold(&self, order: &Event, now: u64) -> TestResult<StorageOrder> {
        let actions = self
            .events
            .query(&[Filter::new().event(order.id).limit(4096)])?;
        Ok(agigit_market::fold_storage(order, actions, Some(now))?.order)
    }
}

/// A nonce whose challenge in `period` reaches shard `shard` (most do: four positions over
/// three shards).
fn nonce_reaching(order: &StorageOrder, period: u64, shard: usize) -> Digest {
    (0..=255u8)
        .map(|n| [n; 32])
        .find(|n| {
            order
                .terms()
                .positions(n, period)
                .iter()
                .any(|p| p.shard == shard)
        })
        .expect("some nonce reaches the shard")
}

/// The storage run, with the relay answering: periods 1 and 2 challenged and answered
/// from the relay's blob store (the answers signed by its key, accepted by the fold); the
/// shard a third challenge reaches deleted first: no answer, and the period fails at its
/// deadline, the server unpaid for it.
#[test]
fn the_relay_answers_each_period_from_its_blobs_and_cannot_once_a_shard_is_gone() -> TestResult {
    let s = setup("periods")?;
    let auditor = s.auditor();
    let t0 = 1_000_000;
    let order = s.order(vec![s.relay.public_key()], t0)?;
    // Nothing to answer before anyone took it, nor while it waits for funding.
    assert!(auditor.answer(order.id, None, t0 + 1)?.is_none());
    s.act(&s.relay, order.id, OrderVerb::Take, t0 + 10)?;
    s.act(&s.buyer, order.id, OrderVerb::Fund, t0 + 20)?;
    let since = t0 + 20;
    assert!(
        auditor.answer(order.id, None, since + 1)?.is_none(),
        "no challenge yet"
    );
    for period in 0..3u64 {
        let start = since + period * PERIOD;
        let state = s.fold(&order, start + 5)?;
        let nonce = nonce_reaching(&state, period, 0);
        if period == 2 {
            assert!(matches!(
                s.blobs.delete(&s.shards[0].blob, &s.buyer.public_key())?,
                agigit_relay::blobs::DeleteOutcome::Removed
            ));
        }
        let challenge = s.act(&s.buyer, order.id, OrderVerb::Challenge(nonce), start + 10)?;
        let answered = auditor.answer(order.id, Some(challenge.pubkey), start + 11);
        if period < 2 {
            let answer = answered?.expect("an open challenge on the relay's order is answered");
            assert_eq!(
                answer.pubkey,
                s.relay.public_key(),
                "signed by the relay's key"
            );
            assert!(answer.created_at.as_secs() > challenge.created_at.as_secs());
            assert!(
                matches!(
                    s.fold(&order, start + 12)?.phase(),
                    StoragePhase::Running { audit: Audit::Passed { .. }, period: p, .. } if p == period
                ),
                "the fold accepts the relay's answer"
            );
            // Answered once: asking again finds nothing open.
            assert!(auditor.answer(order.id, None, start + 13)?.is_none());
        } else {
            match answered {
                Err(AuditError::Lost { order: o, blob }) => {
                    assert_eq!((o, blob), (order.id, s.shards[0].blob));
                }
                other => panic!("a deleted shard cannot be answered: {other:?}"),
            }
        }
    }
    let end = s.fold(&order, since + 2 * PERIOD + 10 + ANSWER + 1)?;
    assert_eq!(
        end.phase(),
        StoragePhase::Closed(StorageOutcome::Failed {
            server: s.relay.public_key(),
            period: 2
        })
    );
    assert_eq!(
        end.settled(),
        [Settled::Passed, Settled::Passed, Settled::Failed]
    );
    Ok(())
}

/// What the relay must not answer: a challenge signed by a stranger, an order that does not
/// list it, an order another listed server took; and an order it never heard of.
#[test]
fn the_relay_answers_only_the_buyers_challenges_on_orders_it_took() -> TestResult {
    let s = setup("strangers")?;
    let auditor = s.auditor();
    let t0 = 2_000_000;
    let stranger = Keys::generate();
    let other = Keys::generate();

    // A stranger's "challenge" on the relay's order: dropped before the actions are read, and
    // the fold would refuse it anyway.
    let mine = s.order(vec![s.relay.public_key()], t0)?;
    s.act(&s.relay, mine.id, OrderVerb::Take, t0 + 10)?;
    s.act(&s.buyer, mine.id, OrderVerb::Fund, t0 + 20)?;
    let fake = s.act(&stranger, mine.id, OrderVerb::Challenge([9; 32]), t0 + 30)?;
    assert!(
        auditor
            .answer(mine.id, Some(fake.pubkey), t0 + 31)?
            .is_none()
    );
    assert!(
        auditor.answer(mine.id, None, t0 + 31)?.is_none(),
        "the fold refused it"
    );

    // An order for another server only.
    let theirs = s.order(vec![other.public_key()], t0 + 1)?;
    s.act(&other, theirs.id, OrderVerb::Take, t0 + 10)?;
    s.act(&s.buyer, theirs.id, OrderVerb::Fund, t0 + 20)?;
    let c = s.act(&s.buyer, theirs.id, OrderVerb::Challenge([1; 32]), t0 + 30)?;
    assert!(
        auditor
            .answer(theirs.id, Some(c.pubkey), t0 + 31)?
            .is_none()
    );

    // An order listing both, taken by the other.
    let shared = s.order(vec![other.public_key(), s.relay.public_key()], t0 + 2)?;
    s.act(&other, shared.id, OrderVerb::Take, t0 + 10)?;
    s.act(&s.buyer, shared.id, OrderVerb::Fund, t0 + 20)?;
    let c = s.act(&s.buyer, shared.id, OrderVerb::Challenge([2; 32]), t0 + 30)?;
    assert!(
        auditor
            .answer(shared.id, Some(c.pubkey), t0 + 31)?
            .is_none()
    );

    assert!(
        auditor
            .answer(EventId::from_byte_array([0; 32]), None, t0 + 31)?
            .is_none()
    );
    let swept = auditor.sweep(t0 + 31)?;
    assert!(
        swept.answered.is_empty() && swept.failed.is_empty(),
        "{swept:?}"
    );
    Ok(())
}

/// The relay running: a challenge stored while it was down is answered by the sweep at start,
/// and one sent over a WebSocket is answered live, both before their deadlines; a subscriber
/// sees the answers.
#[tokio::test]
async fn a_running_relay_answers_live_and_after_a_restart() -> TestResult {
    let s = setup("live")?;
    let now = Timestamp::now().as_secs();
    // Two orders funded 10 s ago; the first challenged before the relay starts.
    let mut orders = Vec::new();
    for i in 0..2 {
        let order = s.order(vec![s.relay.public_key()], now - 30 + i)?;
        s.act(&s.relay, order.id, OrderVerb::Take, now - 20)?;
        s.act(&s.buyer, order.id, OrderVerb::Fund, now - 10)?;
        orders.push(order);
    }
    s.act(
        &s.buyer,
        orders[0].id,
        OrderVerb::Challenge([5; 32]),
        now - 5,
    )?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let relay = Relay::new(s.events.clone(), Limits::default(), Info::default())
        .with_blobs(s.blobs.clone(), BlossomConfig::default())
        .with_audits(AuditSettings {
            keys: s.relay.clone(),
            sweep: Duration::from_secs(3600),
        });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, relay, async {
        let _ = stopped.await;
    }));
    let (mut ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/")),
    )
    .await??;
    let send = |msg: ClientMessage<'_>| Message::Text(msg.try_as_json().expect("json").into());
    let answers = Filter::new()
        .author(s.relay.public_key())
        .events(orders.iter().map(|o| o.id));
    ws.send(send(ClientMessage::req(
        nostr::prelude::SubscriptionId::new("answers"),
        vec![answers],
    )))
    .await?;
    let challenge = {
        let body = OrderAction {
            order: orders[1].id,
            verb: OrderVerb::Challenge([6; 32]),
            token: None,
            release: Vec::new(),
            note: String::new(),
        };
        Signed::sign(body, &s.buyer, Timestamp::now())?.into_event()
    };
    ws.send(send(ClientMessage::event(challenge))).await?;

    // Both answers reach the subscriber (the swept one as stored, or live; the other live).
    let mut answered = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while answered.len() < 2 {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| format!("answers seen: {answered:?}"))?
            .ok_or("closed")??;
        let Message::Text(text) = msg else { continue };
        if let RelayMessage::Event { event, .. } = RelayMessage::from_json(text.as_str())? {
            assert_eq!(event.pubkey, s.relay.public_key());
            // The relay's takes match the filter too; its answers are what is waited for.
            if tag(&event, "action").as_deref() == Some("answer") {
                answered.insert(tag(&event, "e").ok_or("an answer names its order")?);
            }
        }
    }
    let later = Timestamp::now().as_secs();
    for order in &orders {
        assert!(
            matches!(
                s.fold(order, later)?.phase(),
                StoragePhase::Running {
                    audit: Audit::Passed { .. },
                    ..
                }
            ),
            "order {} answered and passed",
            order.id
        );
    }
    drop(stop);
    tokio::time::timeout(WAIT, server).await???;
    Ok(())
}

fn tag(event: &Event, name: &str) -> Option<String> {
    event.tags.iter().find_map(|t| match t.as_slice() {
        [n, value, ..] if n == name => Some(value.clone()),
        _ => None,
    })
}

/// Strangers cannot crowd the relay's orders out of its sweep: after more orders naming the
/// relay than a sweep reads by recency, the one it took (and was challenged on while it was
/// down) is still found through the relay's own take, and answered.
#[test]
fn a_flood_of_orders_naming_the_relay_does_not_hide_the_one_it_took() -> TestResult {
    let s = setup("flood")?;
    let t0 = 3_000_000;
    let order = s.order(vec![s.relay.public_key()], t0)?;
    s.act(&s.relay, order.id, OrderVerb::Take, t0 + 10)?;
    s.act(&s.buyer, order.id, OrderVerb::Fund, t0 + 20)?;
    s.act(&s.buyer, order.id, OrderVerb::Challenge([4; 32]), t0 + 30)?;
    let spammer = Keys::generate();
    let spam: Vec<Event> = (0..agigit_relay::audits::MAX_SWEPT_ORDERS as u64)
        .map(|i| {
            let mut body = StorageOrderEvent {
                repo: format!("30717:{}:spam", spammer.public_key().to_hex()).parse()?,
                shards: s.shards.clone(),
                servers: vec![s.relay.public_key()],
                price: 1,
                periods: 1,
                period: PERIOD,
                bond: 0,
                take_by: t0 + 100,
                fund_within: 100,
                answer_within: ANSWER,
                challenges: 1,
                unaudited: DefaultRule::Refund,
                note: String::new(),
            };
            body.note = format!("spam {i}");
            Ok(Signed::sign(body, &spammer, Timestamp::from_secs(t0 + 31))?.into_event())
        })
        .collect::<TestResult<_>>()?;
    for outcome in s.events.save_batch(&spam) {
        assert!(outcome?.stored());
    }
    let swept = s.auditor().sweep(t0 + 35)?;
    assert!(swept.failed.is_empty(), "{swept:?}");
    assert_eq!(swept.answered.len(), 1, "the relay's own order is answered");
    assert_eq!(tag(&swept.answered[0], "e"), Some(order.id.to_hex()));
    Ok(())
}
