//! The conformance suite every [`EventStore`] passes; it is the specification of the semantics.
//! Run it with [`event_store_conformance!`](crate::event_store_conformance).

use nostr::prelude::{
    Coordinate, Event, EventId, Filter, Keys, Kind, SignEvent, SingleLetterTag, Tag, Timestamp,
    UnsignedEvent,
};

use super::{Cursor, EventStore, EventStoreError, MAX_FILTER_VALUES, SaveOutcome};

/// A failed check.
pub type Failure = String;

fn check(cond: bool, what: &str) -> Result<(), Failure> {
    if cond { Ok(()) } else { Err(what.to_owned()) }
}

fn err<E: std::fmt::Display>(e: E) -> Failure {
    e.to_string()
}

/// A deterministic key (`n` in 1..=250).
fn keys(n: u8) -> Result<Keys, Failure> {
    let hex: String = std::iter::repeat_n(format!("{n:02x}"), 32).collect();
    Keys::parse(&hex).map_err(err)
}

fn event(keys: &Keys, kind: u16, at: u64, tags: Vec<Tag>, content: &str) -> Result<Event, Failure> {
    let unsigned = UnsignedEvent::new(
        keys.public_key(),
        Timestamp::from_secs(at),
        Kind::from(kind),
        tags,
        content,
    );
    SignEvent::sign_event(keys, unsigned).map_err(err)
}

fn ids(events: &[Event]) -> Vec<EventId> {
    events.iter().map(|e| e.id).collect()
}

/// Runs every check against `store`, which must start empty.
pub fn run<S: EventStore + ?Sized>(store: &S) -> Result<(), Failure> {
    let alice = keys(1)?;
    let bob = keys(2)?;
    let now = Timestamp::now().as_secs();

    // Regular events, duplicates, order, limits.
    let a1 = event(&alice, 1, now - 30, vec![Tag::hashtag("ml")], "one")?;
    let a2 = event(&alice, 1, now - 20, vec![], "two")?;
    let b1 = event(&bob, 1, now - 10, vec![Tag::hashtag("ml")], "three")?;
    for e in [&a1, &a2, &b1] {
        check(
            store.save(e).map_err(err)? == SaveOutcome::Stored,
            "regular event stored",
        )?;
    }
    check(
        store.save(&a1).map_err(err)? == SaveOutcome::Duplicate,
        "duplicate",
    )?;
    let all = store.query(&[Filter::new()]).map_err(err)?;
    check(ids(&all) == vec![b1.id, a2.id, a1.id], "newest first")?;
    let limited = store.query(&[Filter::new().limit(2)]).map_err(err)?;
    check(
        ids(&limited) == vec![b1.id, a2.id],
        "limit keeps the newest",
    )?;
    let by_author = store
        .query(&[Filter::new().author(alice.public_key())])
        .map_err(err)?;
    check(ids(&by_author) == vec![a2.id, a1.id], "authors")?;
    let by_tag = store
        .query(&[Filter::new().custom_tag(SingleLetterTag::from_char('t').map_err(err)?, "ml")])
        .map_err(err)?;
    check(ids(&by_tag) == vec![b1.id, a1.id], "#t tag filter")?;
    let window = store
        .query(&[Filter::new()
            .since(Timestamp::from_secs(now - 25))
            .until(Timestamp::from_secs(now - 15))])
        .map_err(err)?;
    check(ids(&window) == vec![a2.id], "since/until")?;
    let by_id = store.query(&[Filter::new().id(a1.id)]).map_err(err)?;
    check(ids(&by_id) == vec![a1.id], "ids")?;
    // Several filters: union, each result once, each filter's limit its own.
    let union = store
        .query(&[
            Filter::new().author(bob.public_key()),
            Filter::new().limit(1),
        ])
        .map_err(err)?;
    check(ids(&union) == vec![b1.id], "union deduplicates")?;
    let union = store
        .query(&[
            Filter::new().id(a1.id),
            Filter::new().kind(Kind::from(1u16)).limit(1),
        ])
        .map_err(err)?;
    check(
        ids(&union) == vec![b1.id, a1.id],
        "union of limited filters",
    )?;
    check(
        store
            .query(&[Filter::new().kind(Kind::from(7u16))])
            .map_err(err)?
            .is_empty(),
        "no match",
    )?;

    // Replaceable: newest wins; equal time → lowest id.
    let m1 = event(&alice, 0, now - 100, vec![], "profile 1")?;
    let m2 = event(&alice, 0, now - 50, vec![], "profile 2")?;
    check(
        store.save(&m1).map_err(err)? == SaveOutcome::Stored,
        "replaceable stored",
    )?;
    check(
        store.save(&m2).map_err(err)? == SaveOutcome::Replaced,
        "newer replaces",
    )?;
    check(
        store.save(&m1).map_err(err)? == SaveOutcome::Obsolete,
        "older refused",
    )?;
    let meta = store
        .query(&[Filter::new().kind(Kind::Metadata)])
        .map_err(err)?;
    check(
        ids(&meta) == vec![m2.id],
        "one replaceable per author and kind",
    )?;
    let (t1, t2) = (
        event(&alice, 10002, now - 40, vec![], "x")?,
        event(&alice, 10002, now - 40, vec![], "y")?,
    );
    let (low, high) = if t1.id < t2.id { (t1, t2) } else { (t2, t1) };
    store.save(&high).map_err(err)?;
    check(
        store.save(&low).map_err(err)? == SaveOutcome::Replaced,
        "tie: lower id wins",
    )?;
    check(
        store.save(&high).map_err(err)? == SaveOutcome::Obsolete,
        "tie: higher id loses",
    )?;

    // Addressable: one per (author, kind, d).
    let d = |s: &str| Tag::identifier(s);
    let r1 = event(&alice, 30618, now - 30, vec![d("repo")], "state 1")?;
    let r2 = event(&alice, 30618, now - 20, vec![d("repo")], "state 2")?;
    let other = event(&alice, 30618, now - 25, vec![d("other")], "other repo")?;
    store.save(&r1).map_err(err)?;
    check(
        store.save(&r2).map_err(err)? == SaveOutcome::Replaced,
        "addressable replaced",
    )?;
    check(
        store.save(&other).map_err(err)? == SaveOutcome::Stored,
        "other d is another slot",
    )?;
    let states = store
        .query(&[Filter::new().kind(Kind::from(30618u16))])
        .map_err(err)?;
    check(ids(&states) == vec![r2.id, other.id], "addressable slots")?;

    // Ephemeral events are never stored.
    let eph = event(&alice, 20001, now, vec![], "typing")?;
    check(
        store.save(&eph).map_err(err)? == SaveOutcome::Ephemeral,
        "ephemeral",
    )?;
    check(
        store
            .query(&[Filter::new().id(eph.id)])
            .map_err(err)?
            .is_empty(),
        "ephemeral not kept",
    )?;

    // NIP-40 expiration.
    let gone = event(
        &alice,
        1,
        now - 5,
        vec![Tag::expiration(Timestamp::from_secs(now - 1))],
        "old",
    )?;
    check(
        store.save(&gone).map_err(err)? == SaveOutcome::Expired,
        "expired refused",
    )?;
    let soon = event(
        &alice,
        1,
        now - 5,
        vec![Tag::expiration(Timestamp::from_secs(now + 3600))],
        "soon",
    )?;
    check(
        store.save(&soon).map_err(err)?.stored(),
        "not yet expired stored",
    )?;

    // NIP-09: only the author's own events are deleted, and stay deleted.
    let del = event(
        &alice,
        5,
        now - 1,
        vec![Tag::event(a1.id), Tag::event(b1.id)],
        "",
    )?;
    check(
        store.save(&del).map_err(err)?.stored(),
        "deletion request stored",
    )?;
    let left = store
        .query(&[Filter::new().kind(Kind::from(1u16))])
        .map_err(err)?;
    check(!left.iter().any(|e| e.id == a1.id), "own event deleted")?;
    check(
        left.iter().any(|e| e.id == b1.id),
        "another author's event kept",
    )?;
    check(
        store.save(&a1).map_err(err)? == SaveOutcome::Deleted,
        "deleted stays deleted",
    )?;
    let coordinate = Coordinate::new(Kind::from(30618u16), alice.public_key()).identifier("repo");
    let del_a = event(
        &alice,
        5,
        now - 10,
        vec![Tag::coordinate(coordinate, None)],
        "",
    )?;
    store.save(&del_a).map_err(err)?;
    check(
        store
            .query(&[Filter::new().id(r2.id)])
            .map_err(err)?
            .is_empty(),
        "addressable deleted by coordinate",
    )?;
    check(
        store.save(&r1).map_err(err)? == SaveOutcome::Deleted,
        "older version stays deleted",
    )?;
    let r3 = event(&alice, 30618, now, vec![d("repo")], "state 3")?;
    check(
        store.save(&r3).map_err(err)?.stored(),
        "newer than the deletion is stored",
    )?;
    // A replaceable event deleted by its id frees its slot: the next one for it is stored (the
    // fuzz target found the reference store still naming the deleted event there).
    let list1 = event(&bob, 10000, now - 5, vec![], "mute list 1")?;
    check(
        store.save(&list1).map_err(err)? == SaveOutcome::Stored,
        "replaceable stored",
    )?;
    let del_list = event(&bob, 5, now - 4, vec![Tag::event(list1.id)], "")?;
    check(
        store.save(&del_list).map_err(err)?.stored(),
        "deletion stored",
    )?;
    let list2 = event(&bob, 10000, now - 3, vec![], "mute list 2")?;
    check(
        store.save(&list2).map_err(err)?.stored(),
        "a slot whose event was deleted takes a new one",
    )?;
    check(
        ids(&store
            .query(&[Filter::new().kind(Kind::from(10000u16))])
            .map_err(err)?)
            == vec![list2.id],
        "the new one is the slot's",
    )?;

    // Bad input.
    let mut forged = b1.clone();
    forged.content = "changed".into();
    check(
        matches!(store.save(&forged), Err(EventStoreError::Invalid(_))),
        "an event whose id does not match is refused",
    )?;
    let huge = Filter::new().ids((0..=MAX_FILTER_VALUES as u64).map(|i| {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&i.to_le_bytes());
        EventId::from_byte_array(bytes)
    }));
    check(
        matches!(
            store.query(&[huge]),
            Err(EventStoreError::FilterTooLarge { .. })
        ),
        "oversized filter refused",
    )?;

    // A batch behaves like the same saves one by one: a new event, a repeat inside the batch,
    // a forged event, and two versions of one replaceable slot (the older one second).
    let k = keys(9)?;
    let fresh = event(&k, 1, 3000, vec![], "batch")?;
    let newer = event(&k, 10_000, 3002, vec![], "profile v2")?;
    let older = event(&k, 10_000, 3001, vec![], "profile v1")?;
    let batch = [fresh.clone(), fresh.clone(), forged, newer.clone(), older];
    let outcomes = store.save_batch(&batch);
    check(
        outcomes.len() == batch.len(),
        "one result per event in a batch",
    )?;
    check(
        matches!(outcomes[0], Ok(SaveOutcome::Stored))
            && matches!(outcomes[1], Ok(SaveOutcome::Duplicate))
            && matches!(outcomes[2], Err(EventStoreError::Invalid(_)))
            && matches!(outcomes[3], Ok(SaveOutcome::Stored))
            && matches!(outcomes[4], Ok(SaveOutcome::Obsolete)),
        "a batch's outcomes are those of saving one by one",
    )?;
    let stored = store
        .query(&[Filter::new().author(k.public_key())])
        .map_err(err)?;
    check(
        ids(&stored) == vec![newer.id, fresh.id],
        "a batch stores what one-by-one saves would",
    )?;

    // Pages: in query order, each event once, ties at one second broken by id, stopping at the
    // event and byte caps, and ignoring the filter's limit (the caller counts).
    let pager = keys(10)?;
    let mut paged = Vec::new();
    for i in 0..7usize {
        // Three share one second, to page across a tie.
        let at = if i < 3 { 5000 } else { 5000 - i as u64 };
        paged.push(event(&pager, 1, at, vec![], &"x".repeat(100 * (i + 1)))?);
    }
    for e in &paged {
        store.save(e).map_err(err)?;
    }
    let filter = Filter::new().author(pager.public_key()).limit(1);
    let mut whole = filter.clone();
    whole.limit = None;
    let expected = ids(&store.query(&[whole]).map_err(err)?);
    for (max_events, max_bytes) in [(1, usize::MAX), (2, usize::MAX), (3, 1), (100, 900)] {
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .query_page(&filter, after.as_ref(), max_events, max_bytes)
                .map_err(err)?;
            check(page.len() <= max_events, "a page holds at most max_events")?;
            let Some(last) = page.last() else { break };
            after = Some(Cursor::after(last));
            got.extend(ids(&page));
        }
        check(
            got == expected,
            &format!("pages of {max_events} events / {max_bytes} bytes give the query's order"),
        )?;
    }
    Ok(())
}

/// [`run`], then the same for what a relay streams for a REQ ([`super::stored_for_req`]): the
/// events of a query of the same filters, each filter's limit its own, each event once.
pub fn run_shared(store: std::sync::Arc<dyn EventStore>) -> Result<(), Failure> {
    run(store.as_ref())?;
    let a = keys(20)?;
    for i in 0..10u64 {
        store
            .save(&event(&a, 1, 9000 + i % 4, vec![], &format!("req {i}"))?)
            .map_err(err)?;
    }
    let sets = [
        vec![Filter::new().author(a.public_key())],
        vec![
            Filter::new().author(a.public_key()).limit(3),
            Filter::new().author(a.public_key()).limit(5),
        ],
        vec![
            Filter::new().kind(Kind::from(1u16)).limit(2),
            Filter::new().author(a.public_key()),
        ],
    ];
    for filters in sets {
        let mut queried = ids(&store.query(&filters).map_err(err)?);
        for (page_events, page_bytes) in [(1, usize::MAX), (3, 1), (100, 1 << 20)] {
            let mut streamed =
                ids(
                    &super::stored_for_req(&store, &filters, 5000, page_events, page_bytes)
                        .map_err(err)?,
                );
            check(
                streamed.len()
                    == streamed
                        .iter()
                        .collect::<std::collections::BTreeSet<_>>()
                        .len(),
                "a REQ sends each event once",
            )?;
            streamed.sort();
            queried.sort();
            check(
                streamed == queried,
                "a REQ streams what a query of its filters returns",
            )?;
        }
    }
    search(&store)
}

/// NIP-50: a REQ's `search` keeps the stored matches whose content or tag values hold every
/// word, case-insensitively, its `limit` counting those; extensions (`key:value`) are ignored.
fn search(store: &std::sync::Arc<dyn EventStore>) -> Result<(), Failure> {
    let s = keys(21)?;
    let named = |name: &str| Tag::parse(["name", name]).map_err(err);
    let in_tag = event(
        &s,
        30717,
        9500,
        vec![Tag::identifier("m1"), named("Tiny LLaMA")?],
        "",
    )?;
    let in_content = event(&s, 1, 9400, vec![], "a llama in a field")?;
    let older = event(&s, 1, 9300, vec![], "another tiny llama")?;
    store.save(&in_tag).map_err(err)?;
    store.save(&in_content).map_err(err)?;
    store.save(&older).map_err(err)?;
    // Newer events that do not match, more than a page.
    for i in 0..5u64 {
        store
            .save(&event(&s, 1, 9600 + i, vec![], &format!("noise {i}"))?)
            .map_err(err)?;
    }
    let run = |filter: Filter, page_events: usize| {
        super::stored_for_req(store, &[filter], 5000, page_events, 1 << 20)
            .map(|e| ids(&e))
            .map_err(err)
    };
    let by = Filter::new().author(s.public_key());
    for page_events in [1, 2, 100] {
        check(
            run(by.clone().search("LLAMA"), page_events)?
                == vec![in_tag.id, in_content.id, older.id],
            "a search matches content and tag values, any case, newest first",
        )?;
        check(
            run(by.clone().search("tiny llama").limit(1), page_events)? == vec![in_tag.id],
            "every word must match; the limit counts matches",
        )?;
        check(
            run(by.clone().search("lang:en field llama"), page_events)? == vec![in_content.id],
            "extensions are ignored",
        )?;
        check(
            run(by.clone().search("absent"), page_events)?.is_empty(),
            "a word no event has matches nothing",
        )?;
    }
    check(
        super::matches(&by.clone().search("llama tiny"), &older)
            && !super::matches(&by.search("llama field"), &older),
        "a live subscription's search matches the same way",
    )
}

/// Generates a `#[test]` running the suite on a fresh store from `$make`.
#[macro_export]
macro_rules! event_store_conformance {
    ($name:ident, $make:expr) => {
        #[test]
        fn $name() {
            let store = std::sync::Arc::new($make);
            if let Err(failure) = $crate::store::conformance::run_shared(store) {
                panic!(
                    "{} fails the event store conformance suite: {failure}",
                    stringify!($name)
                );
            }
        }
    };
}
