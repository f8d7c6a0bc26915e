//! Events in SQLite: the relay's embedded default (one file, WAL, no set-up).

use std::path::Path;
use std::sync::Mutex;

use nostr::prelude::{Event, Filter, Kind, Timestamp};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter, types::Value};

use super::{
    Cursor, EventStore, EventStoreError, SaveOutcome, Slot, check_filters, deletion_targets,
    is_expired, merge_results, page_of_json, secs, slot, slot_key, supersedes, verify,
};

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS events (
    id BLOB PRIMARY KEY,
    pubkey BLOB NOT NULL,
    kind INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    d TEXT,
    expiration INTEGER,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events (created_at DESC, id);
CREATE INDEX IF NOT EXISTS events_author ON events (pubkey, kind, created_at DESC);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, created_at DESC);
CREATE UNIQUE INDEX IF NOT EXISTS events_slot ON events (pubkey, kind, d) WHERE d IS NOT NULL;
CREATE TABLE IF NOT EXISTS tags (
    event_id BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_lookup ON tags (name, value, event_id);
CREATE INDEX IF NOT EXISTS tags_event ON tags (event_id);
CREATE TABLE IF NOT EXISTS deleted_ids (
    id BLOB NOT NULL,
    pubkey BLOB NOT NULL,
    PRIMARY KEY (id, pubkey)
);
CREATE TABLE IF NOT EXISTS deleted_coordinates (
    kind INTEGER NOT NULL,
    pubkey BLOB NOT NULL,
    d TEXT NOT NULL,
    until INTEGER NOT NULL,
    PRIMARY KEY (kind, pubkey, d)
);
";

/// Events in an SQLite database: WAL, one connection behind a mutex (the relay calls it from
/// blocking tasks).
pub struct SqliteEventStore {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteEventStore")
    }
}

impl SqliteEventStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EventStoreError> {
        Self::from_connection(Connection::open(path)?)
    }

    /// A private in-memory database.
    pub fn in_memory() -> Result<Self, EventStoreError> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(conn: Connection) -> Result<Self, EventStoreError> {
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteEventStore {
            conn: Mutex::new(conn),
        })
    }

    fn parse(json: &str) -> Result<Event, EventStoreError> {
        Event::from_json(json).map_err(|e| EventStoreError::Corrupt(e.to_string()))
    }
}

/// Saves one verified event inside the caller's transaction (or savepoint). Every early return
/// comes before the first write.
fn save_in(tx: &Connection, event: &Event) -> Result<SaveOutcome, EventStoreError> {
    let id = event.id.as_bytes().as_slice();
    let author = event.pubkey.as_bytes().as_slice();
    let kind = i64::from(event.kind.as_u16());
    let exists: Option<i64> = tx
        .query_row("SELECT 1 FROM events WHERE id = ?1", [id], |r| r.get(0))
        .optional()?;
    if exists.is_some() {
        return Ok(SaveOutcome::Duplicate);
    }
    if is_expired(event, Timestamp::now()) {
        return Ok(SaveOutcome::Expired);
    }
    let deleted: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM deleted_ids WHERE id = ?1 AND pubkey = ?2",
            params![id, author],
            |r| r.get(0),
        )
        .optional()?;
    if deleted.is_some() {
        return Ok(SaveOutcome::Deleted);
    }
    let slot = slot(event);
    if slot == Slot::Ephemeral {
        return Ok(SaveOutcome::Ephemeral);
    }
    if let Slot::Addressable(d) = &slot {
        let until: Option<i64> = tx
            .query_row(
                "SELECT until FROM deleted_coordinates WHERE kind = ?1 AND pubkey = ?2 AND d = ?3",
                params![kind, author, d],
                |r| r.get(0),
            )
            .optional()?;
        if until.is_some_and(|u| secs(event.created_at) <= u) {
            return Ok(SaveOutcome::Deleted);
        }
    }
    let key = slot_key(&slot);
    let mut outcome = SaveOutcome::Stored;
    if let Some(d) = &key {
        let old: Option<String> = tx
            .query_row(
                "SELECT json FROM events WHERE pubkey = ?1 AND kind = ?2 AND d = ?3",
                params![author, kind, d],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(old) = old {
            let old = SqliteEventStore::parse(&old)?;
            if !supersedes(event, &old) {
                return Ok(SaveOutcome::Obsolete);
            }
            tx.execute(
                "DELETE FROM events WHERE id = ?1",
                [old.id.as_bytes().as_slice()],
            )?;
            outcome = SaveOutcome::Replaced;
        }
    }
    if event.kind == Kind::EventDeletion {
        let targets = deletion_targets(event);
        for target in targets.ids {
            let t = target.as_bytes().as_slice();
            tx.execute(
                "INSERT OR IGNORE INTO deleted_ids (id, pubkey) VALUES (?1, ?2)",
                params![t, author],
            )?;
            tx.execute(
                "DELETE FROM events WHERE id = ?1 AND pubkey = ?2",
                params![t, author],
            )?;
        }
        for (k, a, d) in targets.coordinates {
            let (k, a) = (i64::from(k.as_u16()), a.as_bytes().to_vec());
            let until = secs(event.created_at);
            tx.execute(
                    "INSERT INTO deleted_coordinates (kind, pubkey, d, until) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, pubkey, d) DO UPDATE SET until = max(until, excluded.until)",
                    params![k, a, d, until],
                )?;
            tx.execute(
                    "DELETE FROM events WHERE kind = ?1 AND pubkey = ?2 AND d = ?3 AND created_at <= ?4",
                    params![k, a, d, until],
                )?;
        }
    }
    let expiration = event.tags.expiration().map(secs);
    tx.execute(
        "INSERT INTO events (id, pubkey, kind, created_at, d, expiration, json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            id,
            author,
            kind,
            secs(event.created_at),
            key,
            expiration,
            event.as_json()
        ],
    )?;
    {
        let mut insert =
            tx.prepare("INSERT INTO tags (event_id, name, value) VALUES (?1, ?2, ?3)")?;
        for tag in event.tags.iter() {
            if let (Some(letter), Some(value)) = (tag.single_letter_tag(), tag.content()) {
                insert.execute(params![id, letter.as_str(), value])?;
            }
        }
    }
    Ok(outcome)
}

impl EventStore for SqliteEventStore {
    fn save(&self, event: &Event) -> Result<SaveOutcome, EventStoreError> {
        verify(event)?;
        let mut conn = self.conn.lock().map_err(|_| EventStoreError::Poisoned)?;
        let tx = conn.transaction()?;
        let outcome = save_in(&tx, event)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// One transaction for the batch (one WAL commit), a savepoint per event so that one
    /// event's failure leaves the others stored.
    fn save_batch(&self, events: &[Event]) -> Vec<Result<SaveOutcome, EventStoreError>> {
        let verified: Vec<Result<(), EventStoreError>> = events.iter().map(verify).collect();
        let run = || -> Result<Vec<Result<SaveOutcome, EventStoreError>>, EventStoreError> {
            let mut conn = self.conn.lock().map_err(|_| EventStoreError::Poisoned)?;
            let mut tx = conn.transaction()?;
            let mut out = Vec::with_capacity(events.len());
            for (event, ok) in events.iter().zip(verified.iter()) {
                if let Err(EventStoreError::Invalid(id)) = ok {
                    out.push(Err(EventStoreError::Invalid(*id)));
                    continue;
                }
                let sp = tx.savepoint()?;
                let result = save_in(&sp, event);
                if result.is_ok() {
                    sp.commit()?;
                }
                out.push(result);
            }
            tx.commit()?;
            Ok(out)
        };
        match run() {
            Ok(out) => out,
            // The batch as a whole failed (lock, begin or commit): say so for each event.
            Err(e) => {
                let reason = e.to_string();
                events
                    .iter()
                    .map(|_| Err(EventStoreError::Batch(reason.clone())))
                    .collect()
            }
        }
    }

    fn query(&self, filters: &[Filter]) -> Result<Vec<Event>, EventStoreError> {
        check_filters(filters)?;
        let conn = self.conn.lock().map_err(|_| EventStoreError::Poisoned)?;
        let mut per_filter = Vec::with_capacity(filters.len());
        for f in filters {
            let (sql, args) = select(f, None, f.limit);
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(0))?;
            let mut hits = Vec::new();
            for json in rows {
                hits.push(Self::parse(&json?)?);
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
        let conn = self.conn.lock().map_err(|_| EventStoreError::Poisoned)?;
        let (sql, args) = select(filter, after, Some(max_events.max(1)));
        let mut stmt = conn.prepare(&sql)?;
        // Rows are read one at a time: the page stops at `max_bytes` without loading the rest.
        let rows = stmt
            .query_map(params_from_iter(args), |r| r.get::<_, String>(0))?
            .map(|r| r.map_err(EventStoreError::from));
        page_of_json(rows, max_bytes, Self::parse)
    }
}

/// The SQL (and its arguments) selecting `f`'s matches that are not expired, newest first, after
/// `after` in that order, at most `limit`.
fn select(f: &Filter, after: Option<&Cursor>, limit: Option<usize>) -> (String, Vec<Value>) {
    let mut sql =
        String::from("SELECT json FROM events WHERE (expiration IS NULL OR expiration > ?)");
    let mut args: Vec<Value> = vec![Value::Integer(secs(Timestamp::now()))];
    let mut any_of = |sql: &mut String, column: &str, values: Vec<Value>| {
        sql.push_str(&format!(" AND {column} IN ("));
        sql.push_str(&vec!["?"; values.len()].join(","));
        sql.push(')');
        args.extend(values);
    };
    if let Some(ids) = f.ids.as_ref().filter(|s| !s.is_empty()) {
        any_of(
            &mut sql,
            "id",
            ids.iter()
                .map(|i| Value::Blob(i.as_bytes().to_vec()))
                .collect(),
        );
    }
    if let Some(authors) = f.authors.as_ref().filter(|s| !s.is_empty()) {
        any_of(
            &mut sql,
            "pubkey",
            authors
                .iter()
                .map(|a| Value::Blob(a.as_bytes().to_vec()))
                .collect(),
        );
    }
    if let Some(kinds) = f.kinds.as_ref().filter(|k| !k.is_empty()) {
        any_of(
            &mut sql,
            "kind",
            kinds
                .iter()
                .map(|k| Value::Integer(i64::from(k.as_u16())))
                .collect(),
        );
    }
    for (letter, values) in &f.generic_tags {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM tags t WHERE t.event_id = events.id AND t.name = ?",
        );
        args.push(Value::Text(letter.as_str().to_owned()));
        sql.push_str(" AND t.value IN (");
        sql.push_str(&vec!["?"; values.len()].join(","));
        sql.push_str("))");
        args.extend(values.iter().map(|v| Value::Text(v.clone())));
    }
    if let Some(since) = f.since {
        sql.push_str(" AND created_at >= ?");
        args.push(Value::Integer(secs(since)));
    }
    if let Some(until) = f.until {
        sql.push_str(" AND created_at <= ?");
        args.push(Value::Integer(secs(until)));
    }
    if let Some(c) = after {
        // Keyset paging in result order: older, or as old with a higher id.
        sql.push_str(" AND (created_at < ? OR (created_at = ? AND id > ?))");
        let at = secs(c.created_at);
        args.push(Value::Integer(at));
        args.push(Value::Integer(at));
        args.push(Value::Blob(c.id.as_bytes().to_vec()));
    }
    sql.push_str(" ORDER BY created_at DESC, id ASC");
    if let Some(limit) = limit {
        sql.push_str(" LIMIT ?");
        args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    }
    (sql, args)
}
