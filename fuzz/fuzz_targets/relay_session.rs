//! A stateful target for the relay's message → filter → store path: byte-driven sequences of
//! EVENT and REQ messages (well-formed ones built from the bytes and signed, and raw text frames)
//! go through the NIP-01 parser into two stores — the SQLite store under test and the in-memory
//! store as the reference model — whose every answer must agree; each REQ's stored events, as the
//! relay streams them page by page, must be what a query of the same filters returns.
#![no_main]

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use agigit_event::nostr::prelude::{
    ClientMessage, Event, EventId, Filter, Keys, Kind, SecretKey, SignEvent, SingleLetterTag,
    SubscriptionId, Tag, Timestamp, UnsignedEvent,
};
use agigit_relay::store::{EventStore, MemoryEventStore, SqliteEventStore, stored_for_req};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static [Keys; 3] {
    static KEYS: OnceLock<[Keys; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [1u8, 2, 3].map(|n| Keys::new(SecretKey::from_slice(&[n; 32]).expect("a valid secret")))
    })
}

/// The bytes of the input, a few at a time.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

const KINDS: [u16; 6] = [1, 0, 30718, 5, 20001, 7];

/// An event built from the input: author, kind, time, `d` tag, an `e` tag at an earlier event
/// (what a deletion names), maybe an expiration.
fn build(input: &mut Input<'_>, seen: &[EventId]) -> Option<Event> {
    let (a, k, t, x) = (input.byte()?, input.byte()?, input.byte()?, input.byte()?);
    let keys = &keys()[usize::from(a) % 3];
    let kind = KINDS[usize::from(k) % KINDS.len()];
    let mut tags = Vec::new();
    if kind == 30718 || x & 1 == 1 {
        tags.push(Tag::identifier(format!("d{}", x % 3)));
    }
    if (kind == 5 || x & 2 == 2)
        && let Some(target) = seen.get(usize::from(x) % seen.len().max(1))
    {
        tags.push(Tag::event(*target));
    }
    if x & 4 == 4 {
        tags.push(Tag::expiration(Timestamp::from_secs(1000 + u64::from(x))));
    }
    let unsigned = UnsignedEvent::new(
        keys.public_key(),
        Timestamp::from_secs(1000 + u64::from(t)),
        Kind::from(kind),
        tags,
        format!("{a}-{k}-{t}-{x}"),
    );
    SignEvent::sign_event(keys, unsigned).ok()
}

/// Filters built from the input: some authors, kinds, a time window, a `d` tag, a limit.
fn filters(input: &mut Input<'_>) -> Vec<Filter> {
    let count = usize::from(input.byte().unwrap_or(0) % 3) + 1;
    (0..count)
        .map(|_| {
            let (a, k, w, l) = (
                input.byte().unwrap_or(0),
                input.byte().unwrap_or(0),
                input.byte().unwrap_or(0),
                input.byte().unwrap_or(0),
            );
            let mut f = Filter::new();
            if a & 0x80 != 0 {
                f = f.authors(
                    keys()
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| a & (1 << i) != 0)
                        .map(|(_, k)| k.public_key()),
                );
            }
            if k & 0x80 != 0 {
                f = f.kinds(
                    KINDS
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| k & (1 << i) != 0)
                        .map(|(_, k)| Kind::from(*k)),
                );
            }
            if w & 1 == 1 {
                f = f.since(Timestamp::from_secs(1000 + u64::from(w >> 1)));
            }
            if w & 2 == 2 {
                f = f.until(Timestamp::from_secs(1100 + u64::from(w)));
            }
            if w & 4 == 4
                && let Ok(letter) = SingleLetterTag::from_char('d')
            {
                f = f.custom_tag(letter, format!("d{}", w % 3));
            }
            if l & 1 == 1 {
                f = f.limit(usize::from(l >> 1));
            }
            f
        })
        .collect()
}

fn ids(events: &[Event]) -> BTreeSet<EventId> {
    events.iter().map(|e| e.id).collect()
}

fuzz_target!(|data: &[u8]| {
    let sqlite: Arc<dyn EventStore> = Arc::new(SqliteEventStore::in_memory().expect("sqlite"));
    let model = MemoryEventStore::new();
    let mut input = Input(data);
    let mut seen: Vec<EventId> = Vec::new();
    while let Some(op) = input.byte() {
        // What arrives on the socket: text, parsed as NIP-01.
        let text = match op % 4 {
            0 | 1 => match build(&mut input, &seen) {
                Some(e) => ClientMessage::event(e).as_json(),
                None => break,
            },
            2 => {
                let f = filters(&mut input);
                ClientMessage::req(SubscriptionId::new("s"), f).as_json()
            }
            _ => {
                let n = usize::from(input.byte().unwrap_or(0));
                String::from_utf8_lossy(input.take(n)).into_owned()
            }
        };
        let Ok(message) = ClientMessage::from_json(&text) else {
            continue;
        };
        match message {
            ClientMessage::Event(event) => {
                let event = event.into_owned();
                let (a, b) = (sqlite.save(&event), model.save(&event));
                match (&a, &b) {
                    (Ok(x), Ok(y)) => assert_eq!(x, y, "the stores disagree on {event:?}"),
                    (Err(_), Err(_)) => {}
                    _ => panic!("the stores disagree on {event:?}: {a:?} / {b:?}"),
                }
                if a.is_ok() {
                    seen.push(event.id);
                }
            }
            ClientMessage::Req { filters, .. } => {
                let filters: Vec<Filter> = filters
                    .into_iter()
                    .map(std::borrow::Cow::into_owned)
                    .collect();
                let (a, b) = (sqlite.query(&filters), model.query(&filters));
                let (Ok(a), Ok(b)) = (a, b) else {
                    continue;
                };
                assert_eq!(
                    a.iter().map(|e| e.id).collect::<Vec<_>>(),
                    b.iter().map(|e| e.id).collect::<Vec<_>>(),
                    "the stores answer {filters:?} differently"
                );
                let page = usize::from(op >> 2) % 5 + 1;
                let streamed = stored_for_req(&sqlite, &filters, 5000, page, usize::from(op) * 40)
                    .expect("stream");
                assert_eq!(
                    streamed.len(),
                    ids(&streamed).len(),
                    "a REQ sends each event once"
                );
                assert_eq!(
                    ids(&streamed),
                    ids(&a),
                    "what a REQ streams is what a query returns"
                );
            }
            _ => {}
        }
    }
});
