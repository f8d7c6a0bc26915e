//! Event storage: the [`EventStore`] trait, the NIP-01 semantics every backend shares
//! (replaceable and addressable events, NIP-09 deletion, NIP-40 expiration), an in-memory
//! backend and the embedded SQLite default, all held to one [`conformance`] suite.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use nostr::prelude::{Event, EventId, Filter, Kind, MatchEventOptions, PublicKey, Timestamp};

pub mod conformance;
mod memory;
#[cfg(feature = "postgres")]
mod pg;
mod sqlite;

pub use memory::MemoryEventStore;
#[cfg(feature = "postgres")]
pub use pg::PostgresEventStore;
#[cfg(feature = "postgres")]
pub(crate) use pg::open_in_schema;
pub use sqlite::SqliteEventStore;

/// The most ids, authors, kinds or tag values one filter may name (SQLite binds at most 32 766
/// parameters per statement; the relay refuses larger filters before they get here).
pub const MAX_FILTER_VALUES: usize = 1000;

/// What saving an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Stored.
    Stored,
    /// Stored, and it replaced an older replaceable or addressable event.
    Replaced,
    /// Already stored.
    Duplicate,
    /// A newer replaceable or addressable event with the same key is stored.
    Obsolete,
    /// A deletion request from its author covers it.
    Deleted,
    /// An ephemeral event (kinds 20000–29999): delivered, never stored.
    Ephemeral,
    /// Its NIP-40 expiration has passed.
    Expired,
}

impl SaveOutcome {
    /// Whether the event is now stored.
    pub fn stored(self) -> bool {
        matches!(self, SaveOutcome::Stored | SaveOutcome::Replaced)
    }
}

/// An event store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventStoreError {
    /// The event's id or signature does not verify.
    #[error("invalid: event {0} does not verify")]
    Invalid(EventId),
    /// A filter names more values than a store accepts.
    #[error("filter names {count} values in one field; at most {MAX_FILTER_VALUES}")]
    FilterTooLarge {
        /// The values named.
        count: usize,
    },
    /// The SQLite database failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL server failed or refused.
    #[error("postgres: {0}")]
    Postgres(String),
    /// A stored event does not parse (the database was changed behind the store's back).
    #[error("stored event does not parse: {0}")]
    Corrupt(String),
    /// A batch of saves failed as a whole (nothing of it was stored).
    #[error("the batch failed: {0}")]
    Batch(String),
    /// A lock was poisoned by a panicking writer.
    #[error("the store's lock is poisoned")]
    Poisoned,
}

/// A store of Nostr events with relay semantics.
///
/// Implementations verify every event (id and signature) before storing it, and agree on every
/// outcome: the [`conformance`] suite is the specification.
pub trait EventStore: Send + Sync {
    /// Saves `event` (verifying it first) and says what happened.
    fn save(&self, event: &Event) -> Result<SaveOutcome, EventStoreError>;

    /// Saves several events in order, as [`save`](EventStore::save) would one by one (a backend
    /// may commit them together); one result per event.
    fn save_batch(&self, events: &[Event]) -> Vec<Result<SaveOutcome, EventStoreError>> {
        events.iter().map(|e| self.save(e)).collect()
    }

    /// The stored events matching any of `filters`, newest first (ties: lowest id first), each
    /// once; each filter's `limit` caps that filter's own matches. Expired events are left out.
    fn query(&self, filters: &[Filter]) -> Result<Vec<Event>, EventStoreError>;

    /// One page of the stored events matching `filter` (its `limit` ignored: the caller counts),
    /// in [`query`](EventStore::query)'s order, strictly after `after` in that order; at most
    /// `max_events`, and no more once their JSON reaches `max_bytes` (one event at least, when
    /// any is left). A relay streams a subscription's stored events page by page, so memory
    /// holds one page, never a whole result. The default filters a full query; the backends
    /// here read only the page.
    fn query_page(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<Event>, EventStoreError> {
        let mut f = filter.clone();
        f.limit = None;
        let all = self.query(std::slice::from_ref(&f))?;
        let start = match after {
            Some(c) => all.iter().position(|e| c.precedes(e)).unwrap_or(all.len()),
            None => 0,
        };
        Ok(take_page(
            all.into_iter().skip(start),
            max_events,
            max_bytes,
        ))
    }
}

/// Where a page of results ended: the last event's time and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Its `created_at`.
    pub created_at: Timestamp,
    /// Its id.
    pub id: EventId,
}

impl Cursor {
    /// The cursor just past `event`.
    pub fn after(event: &Event) -> Self {
        Cursor {
            created_at: event.created_at,
            id: event.id,
        }
    }

    /// Whether `event` comes after this cursor in result order (older, or as old with a higher
    /// id).
    pub fn precedes(&self, event: &Event) -> bool {
        event.created_at < self.created_at
            || (event.created_at == self.created_at && event.id > self.id)
    }
}

/// A filter's stored matches, page by page, as a relay streams a subscription's stored events:
/// newest first, at most the filter's `limit` (capped by the relay's), each page at most
/// `page_events` events and about `page_bytes` bytes. Holds the store, so a page can be read off
/// the async threads (move it into `spawn_blocking` and back).
pub struct Pages {
    store: std::sync::Arc<dyn EventStore>,
    /// The filter the store is asked (without `search`, which no store reads).
    filter: Filter,
    /// A NIP-50 search's words, matched here on each stored match ([`search_matches`]).
    search: Option<Vec<String>>,
    left: usize,
    /// Stored matches a search may still read before it stops: it scans, it has no index.
    scan_left: usize,
    after: Option<Cursor>,
    page_events: usize,
    page_bytes: usize,
}

/// How many stored matches of its other fields one NIP-50 search filter reads at most, newest
/// first, to find its results: a search is a bounded scan, not an index.
pub const SEARCH_SCAN: usize = 20_000;

/// The words of a NIP-50 search query, lowercase; `key:value` extensions (which this relay
/// does not implement) are left out, as NIP-50 asks of a relay that does not know them.
fn search_words(query: &str) -> Vec<String> {
    query
        .split_whitespace()
        .filter(|w| !w.contains(':'))
        .map(str::to_lowercase)
        .collect()
}

/// Whether `event` matches a NIP-50 search for `query`: every word (case-insensitively) is in
/// its content or in one of its tag values (where kinds such as 30717 keep their text: name,
/// description, topics). A query of no words matches everything.
pub fn search_matches(query: &str, event: &Event) -> bool {
    words_match(&search_words(query), event)
}

fn words_match(words: &[String], event: &Event) -> bool {
    if words.is_empty() {
        return true;
    }
    let content = event.content.to_lowercase();
    let values: Vec<String> = event
        .tags
        .iter()
        .flat_map(|t| t.as_slice().iter().skip(1))
        .map(|v| v.to_lowercase())
        .collect();
    words
        .iter()
        .all(|w| content.contains(w.as_str()) || values.iter().any(|v| v.contains(w.as_str())))
}

impl Pages {
    /// The pages of `filter`'s matches in `store`; `max_limit` caps its `limit` (and stands in
    /// for a missing one).
    pub fn new(
        store: std::sync::Arc<dyn EventStore>,
        filter: Filter,
        max_limit: usize,
        page_events: usize,
        page_bytes: usize,
    ) -> Self {
        let left = filter.limit.unwrap_or(max_limit).min(max_limit);
        let search = filter.search.as_deref().map(search_words);
        let filter = filter.remove_search();
        Pages {
            store,
            filter,
            search,
            left,
            scan_left: SEARCH_SCAN,
            after: None,
            page_events: page_events.max(1),
            page_bytes,
        }
    }

    /// The next page; `None` once the matches (or the limit) are exhausted.
    ///
    /// # Errors
    /// The store's.
    pub fn next_page(&mut self) -> Result<Option<Vec<Event>>, EventStoreError> {
        if self.left == 0 {
            return Ok(None);
        }
        let want = match &self.search {
            // A search reads whole pages (most stored matches may not hold its words), up to
            // its scan budget.
            Some(_) => self.page_events.min(self.scan_left),
            None => self.left.min(self.page_events),
        };
        if want == 0 {
            return Ok(None);
        }
        let page =
            self.store
                .query_page(&self.filter, self.after.as_ref(), want, self.page_bytes)?;
        let Some(last) = page.last() else {
            self.left = 0;
            return Ok(None);
        };
        self.after = Some(Cursor::after(last));
        let page = match &self.search {
            Some(words) => {
                self.scan_left -= page.len().min(self.scan_left);
                let mut found: Vec<Event> =
                    page.into_iter().filter(|e| words_match(words, e)).collect();
                found.truncate(self.left);
                found
            }
            None => page,
        };
        // A short page may be short for its bytes: only an empty one ends the matches.
        self.left -= page.len().min(self.left);
        Ok(Some(page))
    }
}

/// What a relay sends for a REQ's stored events: each filter's pages in turn, each event once.
/// (The relay streams the same sequence page by page; this collects it, for tests and fuzzing.)
///
/// # Errors
/// The store's.
pub fn stored_for_req(
    store: &std::sync::Arc<dyn EventStore>,
    filters: &[Filter],
    max_limit: usize,
    page_events: usize,
    page_bytes: usize,
) -> Result<Vec<Event>, EventStoreError> {
    check_filters(filters)?;
    let mut sent = std::collections::HashSet::new();
    let mut out = Vec::new();
    for f in filters {
        let mut pages = Pages::new(store.clone(), f.clone(), max_limit, page_events, page_bytes);
        while let Some(page) = pages.next_page()? {
            out.extend(page.into_iter().filter(|e| sent.insert(e.id)));
        }
    }
    Ok(out)
}

/// About how many bytes an event's JSON takes.
pub fn json_len(event: &Event) -> usize {
    let tags: usize = event
        .tags
        .iter()
        .map(|t| t.as_slice().iter().map(|v| v.len() + 3).sum::<usize>() + 2)
        .sum();
    event.content.len() + tags + 256
}

/// A page of stored events from rows of event JSON (at most the page's count, which the query
/// limited): parsed one at a time, stopping once `max_bytes` of JSON are in (one at least), so
/// the rows after are never read.
pub(crate) fn page_of_json<S: AsRef<str>>(
    rows: impl Iterator<Item = Result<S, EventStoreError>>,
    max_bytes: usize,
    parse: impl Fn(&str) -> Result<Event, EventStoreError>,
) -> Result<Vec<Event>, EventStoreError> {
    let mut page = Vec::new();
    let mut bytes = 0usize;
    for json in rows {
        if !page.is_empty() && bytes >= max_bytes {
            break;
        }
        let json = json?;
        bytes = bytes.saturating_add(json.as_ref().len());
        page.push(parse(json.as_ref())?);
    }
    Ok(page)
}

/// The first events of `events` that make a page: at most `max_events`, stopping once
/// `max_bytes` are reached (one at least).
pub(crate) fn take_page(
    events: impl Iterator<Item = Event>,
    max_events: usize,
    max_bytes: usize,
) -> Vec<Event> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for e in events.take(max_events.max(1)) {
        if !out.is_empty() && bytes >= max_bytes {
            break;
        }
        bytes = bytes.saturating_add(json_len(&e));
        out.push(e);
    }
    out
}

/// What kind of storage slot an event takes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Slot {
    /// Regular: every event kept.
    Regular,
    /// Replaceable: one per (author, kind).
    Replaceable,
    /// Addressable: one per (author, kind, `d` tag).
    Addressable(String),
    /// Ephemeral: none kept.
    Ephemeral,
}

pub(crate) fn slot(event: &Event) -> Slot {
    if event.kind.is_ephemeral() {
        Slot::Ephemeral
    } else if event.kind.is_replaceable() {
        Slot::Replaceable
    } else if event.kind.is_addressable() {
        Slot::Addressable(event.tags.identifier().unwrap_or_default())
    } else {
        Slot::Regular
    }
}

/// The slot key column of the SQL backends: `""` for replaceable events (one per author and
/// kind), the `d` tag for addressable ones, NULL for regular events.
pub(crate) fn slot_key(slot: &Slot) -> Option<String> {
    match slot {
        Slot::Replaceable => Some(String::new()),
        Slot::Addressable(d) => Some(d.clone()),
        Slot::Regular | Slot::Ephemeral => None,
    }
}

/// A timestamp as the SQL backends store it.
pub(crate) fn secs(t: Timestamp) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

/// The order of results and the tie-break for replaceable events: newer first, then lower id.
pub(crate) fn newest_first(a: &Event, b: &Event) -> Ordering {
    b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id))
}

/// Whether `a` wins over `b` for the same replaceable slot.
pub(crate) fn supersedes(a: &Event, b: &Event) -> bool {
    newest_first(a, b) == Ordering::Less
}

/// The NIP-09 targets of a deletion request: event ids, and addressable coordinates
/// `(kind, author, d)`, only those of the request's own author.
pub(crate) struct DeletionTargets {
    pub(crate) ids: Vec<EventId>,
    pub(crate) coordinates: Vec<(Kind, PublicKey, String)>,
}

pub(crate) fn deletion_targets(event: &Event) -> DeletionTargets {
    DeletionTargets {
        ids: event.tags.event_ids().collect(),
        coordinates: event
            .tags
            .coordinates()
            .filter(|c| c.public_key == event.pubkey)
            .map(|c| (c.kind, c.public_key, c.identifier.clone()))
            .collect(),
    }
}

pub(crate) fn is_expired(event: &Event, now: Timestamp) -> bool {
    event.tags.expiration().is_some_and(|t| t <= now)
}

/// Verifies an event and checks the filters' sizes: what every backend does first.
pub(crate) fn verify(event: &Event) -> Result<(), EventStoreError> {
    event
        .verify()
        .map_err(|_| EventStoreError::Invalid(event.id))
}

pub(crate) fn check_filters(filters: &[Filter]) -> Result<(), EventStoreError> {
    for f in filters {
        let sizes = [
            f.ids.as_ref().map_or(0, BTreeSet::len),
            f.authors.as_ref().map_or(0, BTreeSet::len),
            f.kinds.as_ref().map_or(0, BTreeSet::len),
        ];
        let tags = f.generic_tags.values().map(BTreeSet::len);
        if let Some(count) = sizes
            .into_iter()
            .chain(tags)
            .find(|&n| n > MAX_FILTER_VALUES)
        {
            return Err(EventStoreError::FilterTooLarge { count });
        }
    }
    Ok(())
}

/// Merges per-filter results: each filter's matches (already newest first, limited), deduplicated
/// by id, in result order.
pub(crate) fn merge_results(per_filter: Vec<Vec<Event>>) -> Vec<Event> {
    let mut seen = BTreeSet::new();
    let mut out: Vec<Event> = per_filter
        .into_iter()
        .flatten()
        .filter(|e| seen.insert(e.id))
        .collect();
    out.sort_by(newest_first);
    out
}

/// Whether `event` matches `filter` on every NIP-01 field (`limit` aside) and its NIP-50
/// `search` ([`search_matches`]).
pub fn matches(filter: &Filter, event: &Event) -> bool {
    filter.match_event(event, MatchEventOptions::new().nip50(false))
        && filter
            .search
            .as_deref()
            .is_none_or(|q| search_matches(q, event))
}
