//! Events in PostgreSQL, for relays that outgrow one SQLite file (feature `postgres`).
//!
//! The same schema and semantics as the SQLite store, held to the same conformance suite. Writes
//! go through one connection (so replaceable slots never race inside this process); reads use a
//! small pool of their own connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use nostr::prelude::{Event, Filter, Kind, Timestamp};
use postgres::types::ToSql;
use postgres::{Client, NoTls};

use super::{
    Cursor, EventStore, EventStoreError, SaveOutcome, Slot, check_filters, deletion_targets,
    is_expired, merge_results, page_of_json, secs, slot, slot_key, supersedes, verify,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id BYTEA PRIMARY KEY,
    pubkey BYTEA NOT NULL,
    kind BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    d TEXT,
    expiration BIGINT,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events (created_at DESC, id);
CREATE INDEX IF NOT EXISTS events_author ON events (pubkey, kind, created_at DESC);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, created_at DESC);
CREATE UNIQUE INDEX IF NOT EXISTS events_slot ON events (pubkey, kind, d) WHERE d IS NOT NULL;
CREATE TABLE IF NOT EXISTS tags (
    event_id BYTEA NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_lookup ON tags (name, value, event_id);
CREATE INDEX IF NOT EXISTS tags_event ON tags (event_id);
CREATE TABLE IF NOT EXISTS deleted_ids (
    id BYTEA NOT NULL,
    pubkey BYTEA NOT NULL,
    PRIMARY KEY (id, pubkey)
);
CREATE TABLE IF NOT EXISTS deleted_coordinates (
    kind BIGINT NOT NULL,
    pubkey BYTEA NOT NULL,
    d TEXT NOT NULL,
    until BIGINT NOT NULL,
    PRIMARY KEY (kind, pubkey, d)
);
";

/// Read connections per store.
const READERS: usize = 4;

/// Events in a PostgreSQL database.
pub struct PostgresEventStore {
    writer: Mutex<Client>,
    readers: Vec<Mutex<Client>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for PostgresEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresEventStore")
    }
}

/// A connection to `url` with `schema` (created if missing) as its search path; the message
/// says what failed.
pub(crate) fn open_in_schema(url: &str, schema: Option<&str>) -> Result<Client, String> {
    if let Some(s) = schema
        && (s.is_empty()
            || s.len() > 63
            || !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    {
        return Err(format!(
            "schema {s:?}: use 1 to 63 lowercase letters, digits and underscores"
        ));
    }
    let mut c = Client::connect(url, NoTls).map_err(|e| e.to_string())?;
    if let Some(s) = schema {
        c.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s}; SET search_path TO {s}"
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(c)
}

fn pg(e: postgres::Error) -> EventStoreError {
    EventStoreError::Postgres(e.to_string())
}

impl PostgresEventStore {
    /// Connects to `url` (a libpq-style `host=… user=… dbname=…` string or a `postgres://` URL,
    /// no TLS) and creates the tables if needed, in the default schema.
    ///
    /// # Errors
    /// [`EventStoreError::Postgres`] when the server cannot be reached or refuses.
    pub fn connect(url: &str) -> Result<Self, EventStoreError> {
        Self::connect_in_schema(url, None)
    }

    /// As [`connect`](Self::connect), with every table in `schema` (created if missing): several
    /// relays, or tests, can share one database.
    ///
    /// # Errors
    /// [`EventStoreError::Postgres`] when the server cannot be reached or refuses, or the schema
    /// name is not a plain identifier.
    pub fn connect_in_schema(url: &str, schema: Option<&str>) -> Result<Self, EventStoreError> {
        let open = || open_in_schema(url, schema).map_err(EventStoreError::Postgres);
        let mut writer = open()?;
        writer.batch_execute(SCHEMA).map_err(pg)?;
        let readers = (0..READERS)
            .map(|_| open().map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(PostgresEventStore {
            writer: Mutex::new(writer),
            readers,
            next: AtomicUsize::new(0),
        })
    }

    fn reader(&self) -> Result<MutexGuard<'_, Client>, EventStoreError> {
        // Take a free connection if there is one, else wait for the next in turn.
        for r in &self.readers {
            if let Ok(guard) = r.try_lock() {
                return Ok(guard);
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.readers.len().max(1);
        self.readers
            .get(i)
            .ok_or(EventStoreError::Poisoned)?
            .lock()
            .map_err(|_| EventStoreError::Poisoned)
    }

    fn parse(json: &str) -> Result<Event, EventStoreError> {
        Event::from_json(json).map_err(|e| EventStoreError::Corrupt(e.to_string()))
    }
}

impl EventStore for PostgresEventStore {
    fn save(&self, event: &Event) -> Result<SaveOutcome, EventStoreError> {
        verify(event)?;
        let mut client = self.writer.lock().map_err(|_| EventStoreError::Poisoned)?;
        let mut tx = client.transaction().map_err(pg)?;
        let id: &[u8] = event.id.as_bytes();
        let author: &[u8] = event.pubkey.as_bytes();
        let kind = i64::from(event.kind.as_u16());
        if tx
            .query_opt("SELECT 1 FROM events WHERE id = $1", &[&id])
            .map_err(pg)?
            .is_some()
        {
            return Ok(SaveOutcome::Duplicate);
        }
        if is_expired(event, Timestamp::now()) {
            return Ok(SaveOutcome::Expired);
        }
        if tx
            .query_opt(
                "SELECT 1 FROM deleted_ids WHERE id = $1 AND pubkey = $2",
                &[&id, &author],
            )
            .map_err(pg)?
            .is_some()
        {
            return Ok(SaveOutcome::Deleted);
        }
        let slot = slot(event);
        if slot == Slot::Ephemeral {
            return Ok(SaveOutcome::Ephemeral);
        }
        if let Slot::Addressable(d) = &slot {
            let until: Option<i64> = tx
                .query_opt(
                    "SELECT until FROM deleted_coordinates WHERE kind = $1 AND pubkey = $2 AND d = $3",
                    &[&kind, &author, d],
                )
                .map_err(pg)?
                .map(|r| r.get(0));
            if until.is_some_and(|u| secs(event.created_at) <= u) {
                return Ok(SaveOutcome::Deleted);
            }
        }
        let key = slot_key(&slot);
        let mut outcome = SaveOutcome::Stored;
        if let Some(d) = &key {
            let old: Option<String> = tx
                .query_opt(
                    "SELECT json FROM events WHERE pubkey = $1 AND kind = $2 AND d = $3",
                    &[&author, &kind, d],
                )
                .map_err(pg)?
                .map(|r| r.get(0));
            if let Some(old) = old {
                let old = Self::parse(&old)?;
                if !supersedes(event, &old) {
                    return Ok(SaveOutcome::Obsolete);
                }
                let old_id: &[u8] = old.id.as_bytes();
                tx.execute("DELETE FROM events WHERE id = $1", &[&old_id])
                    .map_err(pg)?;
                outcome = SaveOutcome::Replaced;
            }
        }
        if event.kind == Kind::EventDeletion {
            let targets = deletion_targets(event);
            for target in targets.ids {
                let t: &[u8] = target.as_bytes();
                tx.execute(
                    "INSERT INTO deleted_ids (id, pubkey) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&t, &author],
                )
                .map_err(pg)?;
                tx.execute(
                    "DELETE FROM events WHERE id = $1 AND pubkey = $2",
                    &[&t, &author],
                )
                .map_err(pg)?;
            }
            for (k, a, d) in targets.coordinates {
                let (k, a) = (i64::from(k.as_u16()), a.as_bytes().to_vec());
                let until = secs(event.created_at);
                tx.execute(
                    "INSERT INTO deleted_coordinates (kind, pubkey, d, until) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (kind, pubkey, d)
                     DO UPDATE SET until = GREATEST(deleted_coordinates.until, excluded.until)",
                    &[&k, &a, &d, &until],
                )
                .map_err(pg)?;
                tx.execute(
                    "DELETE FROM events WHERE kind = $1 AND pubkey = $2 AND d = $3 AND created_at <= $4",
                    &[&k, &a, &d, &until],
                )
                .map_err(pg)?;
            }
        }
        let expiration = event.tags.expiration().map(secs);
        let json = event
            .try_as_json()
            .map_err(|e| EventStoreError::Corrupt(e.to_string()))?;
        tx.execute(
            "INSERT INTO events (id, pubkey, kind, created_at, d, expiration, json)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &id,
                &author,
                &kind,
                &secs(event.created_at),
                &key,
                &expiration,
                &json,
            ],
        )
        .map_err(pg)?;
        let (mut names, mut values) = (Vec::new(), Vec::new());
        for tag in event.tags.iter() {
            if let (Some(letter), Some(value)) = (tag.single_letter_tag(), tag.content()) {
                names.push(letter.as_str().to_owned());
                values.push(value.to_owned());
            }
        }
        if !names.is_empty() {
            tx.execute(
                "INSERT INTO tags (event_id, name, value)
                 SELECT $1, n, v FROM UNNEST($2::text[], $3::text[]) AS t(n, v)",
                &[&id, &names, &values],
            )
            .map_err(pg)?;
        }
        tx.commit().map_err(pg)?;
        Ok(outcome)
    }

    fn query(&self, filters: &[Filter]) -> Result<Vec<Event>, EventStoreError> {
        check_filters(filters)?;
        let mut client = self.reader()?;
        let mut per_filter = Vec::with_capacity(filters.len());
        for f in filters {
            let (sql, args) = select(f, None, f.limit);
            let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(AsRef::as_ref).collect();
            let rows = client.query(&sql, &params).map_err(pg)?;
            let mut hits = Vec::with_capacity(rows.len());
            for row in rows {
                hits.push(Self::parse(row.get(0))?);
            }
            per_filter.push(hits);
        }
        Ok(merge_results(per_filter))
    }

    fn query_page(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<Event>, EventStoreError> {
        check_filters(std::slice::from_ref(filter))?;
        let mut client = self.reader()?;
        let (sql, args) = select(filter, after, Some(max_events.max(1)));
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(AsRef::as_ref).collect();
        // At most `max_events` rows come back; the page stops at `max_bytes` of them.
        let rows = client.query(&sql, &params).map_err(pg)?;
        page_of_json(
            rows.iter().map(|r| Ok(r.get::<_, &str>(0))),
            max_bytes,
            Self::parse,
        )
    }
}

/// The SQL (and its arguments) selecting `f`'s matches that are not expired, newest first, after
/// `after` in that order, at most `limit`.
fn select(
    f: &Filter,
    after: Option<&Cursor>,
    limit: Option<usize>,
) -> (String, Vec<Box<dyn ToSql + Sync>>) {
    let mut sql =
        String::from("SELECT json FROM events WHERE (expiration IS NULL OR expiration > $1)");
    let mut args: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(secs(Timestamp::now()))];
    let mut push = |sql: &mut String, clause: &str, arg: Box<dyn ToSql + Sync>| {
        args.push(arg);
        sql.push_str(&clause.replace("$?", &format!("${}", args.len())));
    };
    if let Some(ids) = f.ids.as_ref().filter(|s| !s.is_empty()) {
        let ids: Vec<Vec<u8>> = ids.iter().map(|i| i.as_bytes().to_vec()).collect();
        push(&mut sql, " AND id = ANY($?)", Box::new(ids));
    }
    if let Some(authors) = f.authors.as_ref().filter(|s| !s.is_empty()) {
        let authors: Vec<Vec<u8>> = authors.iter().map(|a| a.as_bytes().to_vec()).collect();
        push(&mut sql, " AND pubkey = ANY($?)", Box::new(authors));
    }
    if let Some(kinds) = f.kinds.as_ref().filter(|k| !k.is_empty()) {
        let kinds: Vec<i64> = kinds.iter().map(|k| i64::from(k.as_u16())).collect();
        push(&mut sql, " AND kind = ANY($?)", Box::new(kinds));
    }
    for (letter, values) in &f.generic_tags {
        push(
            &mut sql,
            " AND EXISTS (SELECT 1 FROM tags t WHERE t.event_id = events.id AND t.name = $?",
            Box::new(letter.as_str().to_owned()),
        );
        let values: Vec<String> = values.iter().cloned().collect();
        push(&mut sql, " AND t.value = ANY($?))", Box::new(values));
    }
    if let Some(since) = f.since {
        push(&mut sql, " AND created_at >= $?", Box::new(secs(since)));
    }
    if let Some(until) = f.until {
        push(&mut sql, " AND created_at <= $?", Box::new(secs(until)));
    }
    if let Some(c) = after {
        // Keyset paging in result order: older, or as old with a higher id.
        let at = secs(c.created_at);
        push(&mut sql, " AND (created_at < $?", Box::new(at));
        push(&mut sql, " OR (created_at = $?", Box::new(at));
        push(
            &mut sql,
            " AND id > $?))",
            Box::new(c.id.as_bytes().to_vec()),
        );
    }
    sql.push_str(" ORDER BY created_at DESC, id ASC");
    if let Some(limit) = limit {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        push(&mut sql, " LIMIT $?", Box::new(limit));
    }
    (sql, args)
}
