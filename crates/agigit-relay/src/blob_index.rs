//! The owner index every blob store keeps beside its bytes: which blobs exist (size, type),
//! who claims each (and since when), and which lost their last claim and wait out the
//! retention. In SQLite (one file beside the store) or in the relay's PostgreSQL database, where
//! several relay processes that share one object store also share one index; the bytes live
//! wherever the store puts them, and the index asks the store to place or remove them inside its
//! transactions.
//!
//! The index's logic is written once, against [`Tx`]: statements use `$1`-style parameters,
//! numbered in the order they first appear, and only SQL both databases read the same way.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use agigit_hash::BlobHash;
use nostr::prelude::PublicKey;

use crate::blobs::{BlobInfo, BlobStoreError, DeleteOutcome};

const OCTET_STREAM: &str = "application/octet-stream";

/// The tables, in both databases (SQLite reads `BIGINT` as an integer column).
const TABLES: &str = "CREATE TABLE IF NOT EXISTS blobs (
    hash TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    type TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS owners (
    hash TEXT NOT NULL REFERENCES blobs(hash),
    pubkey TEXT NOT NULL,
    uploaded BIGINT NOT NULL,
    PRIMARY KEY (pubkey, hash)
);
CREATE INDEX IF NOT EXISTS owners_by_hash ON owners(hash);
CREATE TABLE IF NOT EXISTS unclaimed (
    hash TEXT PRIMARY KEY REFERENCES blobs(hash),
    since BIGINT NOT NULL
);";

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A statement's parameter.
#[derive(Clone, Copy, Debug)]
enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

/// A result's cell.
#[derive(Debug)]
enum Cell {
    Text(String),
    Int(i64),
    Null,
}

impl Cell {
    fn int(&self) -> Result<i64, BlobStoreError> {
        match self {
            Cell::Int(v) => Ok(*v),
            other => Err(BlobStoreError::IndexDb(format!(
                "expected an integer, read {other:?}"
            ))),
        }
    }

    fn text(self) -> Result<String, BlobStoreError> {
        match self {
            Cell::Text(v) => Ok(v),
            other => Err(BlobStoreError::IndexDb(format!(
                "expected text, read {other:?}"
            ))),
        }
    }
}

/// One open transaction; dropped without [`Tx::commit`], it rolls back.
trait Tx {
    /// Runs a statement; returns the rows it changed.
    fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, BlobStoreError>;
    /// Runs a query; returns its rows.
    fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Vec<Cell>>, BlobStoreError>;
    fn commit(self: Box<Self>) -> Result<(), BlobStoreError>;
}

/// Whether the query returns a row.
fn exists(tx: &mut dyn Tx, sql: &str, args: &[Arg<'_>]) -> Result<bool, BlobStoreError> {
    Ok(!tx.rows(sql, args)?.is_empty())
}

/// The query's one integer.
fn scalar(tx: &mut dyn Tx, sql: &str, args: &[Arg<'_>]) -> Result<i64, BlobStoreError> {
    tx.rows(sql, args)?
        .first()
        .and_then(|row| row.first())
        .ok_or_else(|| BlobStoreError::IndexDb(format!("no value from {sql}")))?
        .int()
}

impl Tx for rusqlite::Transaction<'_> {
    fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, BlobStoreError> {
        let n = self.execute(&sqlite_sql(sql), sqlite_args(args).as_slice())?;
        Ok(n as u64)
    }

    fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Vec<Cell>>, BlobStoreError> {
        use rusqlite::types::ValueRef;
        let mut stmt = self.prepare(&sqlite_sql(sql))?;
        let width = stmt.column_count();
        let mut rows = stmt.query(sqlite_args(args).as_slice())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(match row.get_ref(i)? {
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Null => Cell::Null,
                    other => {
                        return Err(BlobStoreError::IndexDb(format!(
                            "unexpected {:?} in the index",
                            other.data_type()
                        )));
                    }
                });
            }
            out.push(cells);
        }
        Ok(out)
    }

    fn commit(self: Box<Self>) -> Result<(), BlobStoreError> {
        (*self).commit()?;
        Ok(())
    }
}

/// SQLite numbers `?N` parameters exactly as PostgreSQL numbers `$N`.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

fn sqlite_args<'a>(args: &'a [Arg<'a>]) -> Vec<&'a dyn rusqlite::ToSql> {
    args.iter()
        .map(|a| match a {
            Arg::Text(t) => t as &dyn rusqlite::ToSql,
            Arg::Int(v) => v as &dyn rusqlite::ToSql,
        })
        .collect()
}

#[cfg(feature = "postgres")]
fn pg_err(e: postgres::Error) -> BlobStoreError {
    BlobStoreError::IndexDb(e.to_string())
}

#[cfg(feature = "postgres")]
fn pg_args<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    args.iter()
        .map(|a| match a {
            Arg::Text(t) => t as &(dyn postgres::types::ToSql + Sync),
            Arg::Int(v) => v as &(dyn postgres::types::ToSql + Sync),
        })
        .collect()
}

#[cfg(feature = "postgres")]
impl Tx for postgres::Transaction<'_> {
    fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, BlobStoreError> {
        self.execute(sql, pg_args(args).as_slice()).map_err(pg_err)
    }

    fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Vec<Cell>>, BlobStoreError> {
        use postgres::types::Type;
        let rows = self.query(sql, pg_args(args).as_slice()).map_err(pg_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cells = Vec::with_capacity(row.len());
            for (i, column) in row.columns().iter().enumerate() {
                let ty = column.type_();
                let cell = if *ty == Type::INT8 {
                    row.try_get::<_, Option<i64>>(i).map(|v| v.map(Cell::Int))
                } else if *ty == Type::INT4 {
                    row.try_get::<_, Option<i32>>(i)
                        .map(|v| v.map(|v| Cell::Int(i64::from(v))))
                } else if *ty == Type::TEXT || *ty == Type::VARCHAR {
                    row.try_get::<_, Option<String>>(i)
                        .map(|v| v.map(Cell::Text))
                } else {
                    return Err(BlobStoreError::IndexDb(format!(
                        "unexpected column type {ty} in the index"
                    )));
                };
                cells.push(cell.map_err(pg_err)?.unwrap_or(Cell::Null));
            }
            out.push(cells);
        }
        Ok(out)
    }

    fn commit(self: Box<Self>) -> Result<(), BlobStoreError> {
        (*self).commit().map_err(pg_err)
    }
}

/// Where the index lives.
enum Db {
    Sqlite(Mutex<rusqlite::Connection>),
    #[cfg(feature = "postgres")]
    Postgres(Box<Mutex<postgres::Client>>),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Sqlite(_) => "Sqlite",
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => "Postgres",
        })
    }
}

/// Where a blob store keeps its owner index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexDb {
    /// An SQLite file beside the store (`index.sqlite` in its local directory).
    #[default]
    Local,
    /// Tables `blobs`, `owners` and `unclaimed` in a PostgreSQL database (feature `postgres`),
    /// in `schema` when given (created if missing): where the relay's events are, and where
    /// several relay processes sharing one object store share their index. Two relays with
    /// blobs on their own disks must not share one.
    Postgres {
        /// A libpq-style connection string or `postgres://` URL (no TLS).
        url: String,
        /// A schema of 1 to 63 lowercase letters, digits and underscores.
        schema: Option<String>,
    },
}

/// The owner index of a blob store.
#[derive(Debug)]
pub(crate) struct BlobIndex {
    db: Db,
    /// Seconds a blob stays after its last claim goes (0: it goes at once).
    retention: AtomicU64,
}

impl BlobIndex {
    /// Opens (creating the tables if needed) the index `at` says; a local one at `local`.
    pub(crate) fn open(at: &IndexDb, local: &Path) -> Result<Self, BlobStoreError> {
        let db = match at {
            IndexDb::Local => {
                let conn = rusqlite::Connection::open(local)?;
                conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
                conn.execute_batch(TABLES)?;
                Db::Sqlite(Mutex::new(conn))
            }
            #[cfg(feature = "postgres")]
            IndexDb::Postgres { url, schema } => {
                let mut client = crate::store::open_in_schema(url, schema.as_deref())
                    .map_err(BlobStoreError::IndexDb)?;
                client.batch_execute(TABLES).map_err(pg_err)?;
                Db::Postgres(Box::new(Mutex::new(client)))
            }
            #[cfg(not(feature = "postgres"))]
            IndexDb::Postgres { .. } => {
                return Err(BlobStoreError::IndexDb(
                    "the index is configured in PostgreSQL, but this build has no PostgreSQL support: build agigit-relay with the `postgres` feature".into(),
                ));
            }
        };
        Ok(BlobIndex {
            db,
            retention: AtomicU64::new(0),
        })
    }

    /// Runs `f` in one transaction, committed when it returns `Ok`.
    fn in_tx<R>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<R, BlobStoreError>,
    ) -> Result<R, BlobStoreError> {
        match &self.db {
            Db::Sqlite(conn) => {
                let mut conn = conn.lock().map_err(|_| BlobStoreError::Poisoned)?;
                let mut tx = Box::new(conn.transaction()?);
                let out = f(&mut *tx)?;
                tx.commit()?;
                Ok(out)
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(client) => {
                let mut client = client.lock().map_err(|_| BlobStoreError::Poisoned)?;
                let mut tx = Box::new(client.transaction().map_err(pg_err)?);
                let out = f(&mut *tx)?;
                Tx::commit(tx)?;
                Ok(out)
            }
        }
    }

    pub(crate) fn set_retention(&self, secs: u64) {
        self.retention.store(secs, Ordering::Relaxed);
    }

    pub(crate) fn retention(&self) -> u64 {
        self.retention.load(Ordering::Relaxed)
    }

    /// Whether the blob is in the index (claimed or waiting out the retention).
    #[cfg_attr(not(feature = "s3"), allow(dead_code, reason = "the S3 store's"))]
    pub(crate) fn contains(&self, hash: &BlobHash) -> Result<bool, BlobStoreError> {
        let hex = hash.to_hex();
        self.in_tx(|tx| {
            exists(
                tx,
                "SELECT 1 FROM blobs WHERE hash = $1",
                &[Arg::Text(&hex)],
            )
        })
    }

    /// Fails with [`BlobStoreError::Quota`] when `owner` claiming `size` more bytes of a blob it
    /// does not claim yet would pass `quota`.
    #[cfg_attr(not(feature = "s3"), allow(dead_code, reason = "the S3 store's"))]
    pub(crate) fn check_quota(
        &self,
        hash: &BlobHash,
        owner: &PublicKey,
        size: u64,
        quota: Option<u64>,
    ) -> Result<(), BlobStoreError> {
        let (hex, owner_hex) = (hash.to_hex(), owner.to_hex());
        self.in_tx(|tx| quota_check(tx, &hex, &owner_hex, size, quota).map(|_| ()))
    }

    /// Records `owner`'s claim on the blob (and the blob, when new), after checking its quota;
    /// `place(is_new)` puts the bytes where readers find them, inside the transaction, so that a
    /// failure leaves neither. Returns the blob's description and whether it is new.
    pub(crate) fn claim(
        &self,
        hash: &BlobHash,
        size: u64,
        content_type: &str,
        owner: &PublicKey,
        quota: Option<u64>,
        place: impl FnOnce(bool) -> Result<(), BlobStoreError>,
    ) -> Result<(BlobInfo, bool), BlobStoreError> {
        let content_type = if content_type.is_empty() {
            OCTET_STREAM
        } else {
            content_type
        };
        let hex = hash.to_hex();
        let owner_hex = owner.to_hex();
        let now = now_secs();
        let (is_new, stored_type) = self.in_tx(|tx| {
            let owned = quota_check(tx, &hex, &owner_hex, size, quota)?;
            // ON CONFLICT: another relay process sharing the index may add it first.
            let is_new = tx.exec(
                "INSERT INTO blobs (hash, size, type) VALUES ($1, $2, $3)
                 ON CONFLICT (hash) DO NOTHING",
                &[
                    Arg::Text(&hex),
                    Arg::Int(to_i64(size)),
                    Arg::Text(content_type),
                ],
            )? == 1;
            let stored_type = match tx
                .rows("SELECT type FROM blobs WHERE hash = $1", &[Arg::Text(&hex)])?
                .pop()
                .and_then(|row| row.into_iter().next())
            {
                Some(cell) => cell.text()?,
                None => content_type.to_owned(),
            };
            if !owned {
                tx.exec(
                    "INSERT INTO owners (hash, pubkey, uploaded) VALUES ($1, $2, $3)
                     ON CONFLICT (pubkey, hash) DO NOTHING",
                    &[
                        Arg::Text(&hex),
                        Arg::Text(&owner_hex),
                        Arg::Int(to_i64(now)),
                    ],
                )?;
            }
            // Claimed again: no longer on its way out.
            tx.exec("DELETE FROM unclaimed WHERE hash = $1", &[Arg::Text(&hex)])?;
            place(is_new)?;
            Ok((is_new, stored_type))
        })?;
        let info = BlobInfo {
            hash: *hash,
            size,
            content_type: stored_type,
            uploaded: now,
        };
        Ok((info, is_new))
    }

    pub(crate) fn info(&self, hash: &BlobHash) -> Result<Option<BlobInfo>, BlobStoreError> {
        let hex = hash.to_hex();
        let row = self.in_tx(|tx| {
            tx.rows(
                "SELECT b.size, b.type, COALESCE(MIN(o.uploaded), 0) FROM blobs b
                 LEFT JOIN owners o ON o.hash = b.hash WHERE b.hash = $1
                 GROUP BY b.hash, b.size, b.type",
                &[Arg::Text(&hex)],
            )
        })?;
        row.into_iter()
            .next()
            .map(|row| row_info(hash, row))
            .transpose()
    }

    pub(crate) fn list(
        &self,
        owner: &PublicKey,
        since: Option<u64>,
        until: Option<u64>,
    ) -> Result<Vec<BlobInfo>, BlobStoreError> {
        let owner_hex = owner.to_hex();
        let rows = self.in_tx(|tx| {
            tx.rows(
                "SELECT o.hash, b.size, b.type, o.uploaded FROM owners o
                 JOIN blobs b ON b.hash = o.hash
                 WHERE o.pubkey = $1 AND o.uploaded >= $2 AND o.uploaded <= $3
                 ORDER BY o.uploaded DESC, o.hash",
                &[
                    Arg::Text(&owner_hex),
                    Arg::Int(to_i64(since.unwrap_or(0))),
                    Arg::Int(to_i64(until.unwrap_or(u64::MAX))),
                ],
            )
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for mut row in rows {
            let hex = std::mem::replace(&mut row[0], Cell::Null).text()?;
            // The index only holds hashes it wrote; skip anything else rather than fail a list.
            if let Ok(hash) = hex.parse::<BlobHash>() {
                out.push(row_info(&hash, row.split_off(1))?);
            }
        }
        Ok(out)
    }

    /// Removes `owner`'s claim; with no claim left, the blob waits out the retention, or goes at
    /// once (`remove` deletes its bytes inside the transaction).
    pub(crate) fn delete(
        &self,
        hash: &BlobHash,
        owner: &PublicKey,
        remove: &dyn Fn(&BlobHash) -> Result<(), BlobStoreError>,
    ) -> Result<DeleteOutcome, BlobStoreError> {
        let (hex, owner_hex) = (hash.to_hex(), owner.to_hex());
        let retention = self.retention();
        let outcome = self.in_tx(|tx| {
            if !exists(
                tx,
                "SELECT 1 FROM blobs WHERE hash = $1",
                &[Arg::Text(&hex)],
            )? {
                return Ok(DeleteOutcome::NotFound);
            }
            let removed = tx.exec(
                "DELETE FROM owners WHERE hash = $1 AND pubkey = $2",
                &[Arg::Text(&hex), Arg::Text(&owner_hex)],
            )?;
            if removed == 0 {
                return Ok(DeleteOutcome::NotOwner);
            }
            let left = scalar(
                tx,
                "SELECT COUNT(*) FROM owners WHERE hash = $1",
                &[Arg::Text(&hex)],
            )?;
            Ok(if left == 0 && retention > 0 {
                tx.exec(
                    "INSERT INTO unclaimed (hash, since) VALUES ($1, $2)
                     ON CONFLICT (hash) DO UPDATE SET since = excluded.since",
                    &[Arg::Text(&hex), Arg::Int(to_i64(now_secs()))],
                )?;
                DeleteOutcome::Removed
            } else if left == 0 {
                tx.exec("DELETE FROM blobs WHERE hash = $1", &[Arg::Text(&hex)])?;
                remove(hash)?;
                DeleteOutcome::Removed
            } else {
                DeleteOutcome::Released
            })
        })?;
        if retention > 0 {
            self.sweep(now_secs(), remove)?;
        }
        Ok(outcome)
    }

    /// Deletes the blobs unclaimed for longer than the retention at time `now` (`remove`
    /// deletes each one's bytes); returns how many.
    pub(crate) fn sweep(
        &self,
        now: u64,
        remove: &dyn Fn(&BlobHash) -> Result<(), BlobStoreError>,
    ) -> Result<usize, BlobStoreError> {
        let cutoff = to_i64(now.saturating_sub(self.retention()));
        self.in_tx(|tx| {
            let expired = tx.rows(
                "SELECT u.hash FROM unclaimed u
                 WHERE u.since <= $1 AND NOT EXISTS (SELECT 1 FROM owners o WHERE o.hash = u.hash)",
                &[Arg::Int(cutoff)],
            )?;
            let count = expired.len();
            for row in expired {
                let Some(hex) = row.into_iter().next() else {
                    continue;
                };
                let hex = hex.text()?;
                tx.exec("DELETE FROM unclaimed WHERE hash = $1", &[Arg::Text(&hex)])?;
                tx.exec("DELETE FROM blobs WHERE hash = $1", &[Arg::Text(&hex)])?;
                if let Ok(hash) = hex.parse::<BlobHash>() {
                    remove(&hash)?;
                }
            }
            Ok(count)
        })
    }

    pub(crate) fn is_claimed(&self, hash: &BlobHash) -> Result<bool, BlobStoreError> {
        let hex = hash.to_hex();
        self.in_tx(|tx| {
            exists(
                tx,
                "SELECT 1 FROM owners WHERE hash = $1 LIMIT 1",
                &[Arg::Text(&hex)],
            )
        })
    }

    pub(crate) fn usage(&self, owner: &PublicKey) -> Result<u64, BlobStoreError> {
        let owner_hex = owner.to_hex();
        self.in_tx(|tx| used_by(tx, &owner_hex)).map(to_u64)
    }
}

/// A blob's description from its (size, type, uploaded) cells.
fn row_info(hash: &BlobHash, row: Vec<Cell>) -> Result<BlobInfo, BlobStoreError> {
    let mut cells = row.into_iter();
    let mut next = || {
        cells
            .next()
            .ok_or_else(|| BlobStoreError::IndexDb("a short row in the index".into()))
    };
    let size = next()?.int()?;
    let content_type = next()?.text()?;
    let uploaded = next()?.int()?;
    Ok(BlobInfo {
        hash: *hash,
        size: to_u64(size),
        content_type,
        uploaded: to_u64(uploaded),
    })
}

/// The bytes `owner_hex` claims.
fn used_by(tx: &mut dyn Tx, owner_hex: &str) -> Result<i64, BlobStoreError> {
    // SUM of BIGINT is NUMERIC in PostgreSQL: cast back.
    scalar(
        tx,
        "SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM owners o
         JOIN blobs b ON b.hash = o.hash WHERE o.pubkey = $1",
        &[Arg::Text(owner_hex)],
    )
}

/// Whether `owner` already claims the blob; fails with [`BlobStoreError::Quota`] when it does
/// not and `size` more bytes would pass its `quota`.
fn quota_check(
    tx: &mut dyn Tx,
    hex: &str,
    owner_hex: &str,
    size: u64,
    quota: Option<u64>,
) -> Result<bool, BlobStoreError> {
    let owned = exists(
        tx,
        "SELECT 1 FROM owners WHERE pubkey = $1 AND hash = $2",
        &[Arg::Text(owner_hex), Arg::Text(hex)],
    )?;
    if let Some(quota) = quota
        && !owned
    {
        let used = to_u64(used_by(tx, owner_hex)?);
        if used.saturating_add(size) > quota {
            return Err(BlobStoreError::Quota { size, used, quota });
        }
    }
    Ok(owned)
}
