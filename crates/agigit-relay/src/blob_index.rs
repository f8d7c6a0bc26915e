//! The owner index every blob store keeps beside its bytes: which blobs exist (size, type),
//! who claims each (and since when), and which lost their last claim and wait out the
//! retention. SQLite, one file; the bytes live wherever the store puts them, and the index asks
//! the store to place or remove them inside its transactions.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use agigit_hash::BlobHash;
use nostr::prelude::PublicKey;
use rusqlite::{Connection, OptionalExtension, params};

use crate::blobs::{BlobInfo, BlobStoreError, DeleteOutcome};

const OCTET_STREAM: &str = "application/octet-stream";

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

fn row_info(hash: &BlobHash, size: i64, content_type: String, uploaded: i64) -> BlobInfo {
    BlobInfo {
        hash: *hash,
        size: to_u64(size),
        content_type,
        uploaded: to_u64(uploaded),
    }
}

/// The owner index of a blob store.
#[derive(Debug)]
pub(crate) struct BlobIndex {
    conn: Mutex<Connection>,
    /// Seconds a blob stays after its last claim goes (0: it goes at once).
    retention: AtomicU64,
}

impl BlobIndex {
    /// Opens (creating if needed) the index at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, BlobStoreError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS blobs (
                 hash TEXT PRIMARY KEY,
                 size INTEGER NOT NULL,
                 type TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS owners (
                 hash TEXT NOT NULL REFERENCES blobs(hash),
                 pubkey TEXT NOT NULL,
                 uploaded INTEGER NOT NULL,
                 PRIMARY KEY (pubkey, hash)
             );
             CREATE INDEX IF NOT EXISTS owners_by_hash ON owners(hash);
             CREATE TABLE IF NOT EXISTS unclaimed (
                 hash TEXT PRIMARY KEY REFERENCES blobs(hash),
                 since INTEGER NOT NULL
             );",
        )?;
        Ok(BlobIndex {
            conn: Mutex::new(conn),
            retention: AtomicU64::new(0),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, BlobStoreError> {
        self.conn.lock().map_err(|_| BlobStoreError::Poisoned)
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
        Ok(self
            .conn()?
            .query_row(
                "SELECT 1 FROM blobs WHERE hash = ?1",
                params![hash.to_hex()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
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
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        quota_check(&tx, &hash.to_hex(), &owner.to_hex(), size, quota).map(|_| ())
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
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let owned = quota_check(&tx, &hex, &owner_hex, size, quota)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT type FROM blobs WHERE hash = ?1",
                params![hex],
                |r| r.get(0),
            )
            .optional()?;
        let is_new = existing.is_none();
        if is_new {
            tx.execute(
                "INSERT INTO blobs (hash, size, type) VALUES (?1, ?2, ?3)",
                params![hex, to_i64(size), content_type],
            )?;
        }
        if !owned {
            tx.execute(
                "INSERT INTO owners (hash, pubkey, uploaded) VALUES (?1, ?2, ?3)",
                params![hex, owner_hex, to_i64(now)],
            )?;
        }
        // Claimed again: no longer on its way out.
        tx.execute("DELETE FROM unclaimed WHERE hash = ?1", params![hex])?;
        place(is_new)?;
        tx.commit()?;
        let info = BlobInfo {
            hash: *hash,
            size,
            content_type: existing.unwrap_or_else(|| content_type.to_owned()),
            uploaded: now,
        };
        Ok((info, is_new))
    }

    pub(crate) fn info(&self, hash: &BlobHash) -> Result<Option<BlobInfo>, BlobStoreError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT b.size, b.type, COALESCE(MIN(o.uploaded), 0) FROM blobs b
                 LEFT JOIN owners o ON o.hash = b.hash WHERE b.hash = ?1 GROUP BY b.hash",
                params![hash.to_hex()],
                |r| Ok(row_info(hash, r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    pub(crate) fn list(
        &self,
        owner: &PublicKey,
        since: Option<u64>,
        until: Option<u64>,
    ) -> Result<Vec<BlobInfo>, BlobStoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT o.hash, b.size, b.type, o.uploaded FROM owners o JOIN blobs b ON b.hash = o.hash
             WHERE o.pubkey = ?1 AND o.uploaded >= ?2 AND o.uploaded <= ?3
             ORDER BY o.uploaded DESC, o.hash",
        )?;
        let rows = stmt.query_map(
            params![
                owner.to_hex(),
                to_i64(since.unwrap_or(0)),
                to_i64(until.unwrap_or(u64::MAX))
            ],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (hex, size, ty, uploaded) = row?;
            // The index only holds hashes it wrote; skip anything else rather than fail a list.
            if let Ok(hash) = hex.parse::<BlobHash>() {
                out.push(row_info(&hash, size, ty, uploaded));
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
        let hex = hash.to_hex();
        let retention = self.retention();
        let outcome = {
            let mut conn = self.conn()?;
            let tx = conn.transaction()?;
            let exists = tx
                .query_row("SELECT 1 FROM blobs WHERE hash = ?1", params![hex], |_| {
                    Ok(())
                })
                .optional()?
                .is_some();
            if !exists {
                return Ok(DeleteOutcome::NotFound);
            }
            let removed = tx.execute(
                "DELETE FROM owners WHERE hash = ?1 AND pubkey = ?2",
                params![hex, owner.to_hex()],
            )?;
            if removed == 0 {
                return Ok(DeleteOutcome::NotOwner);
            }
            let left: i64 = tx.query_row(
                "SELECT COUNT(*) FROM owners WHERE hash = ?1",
                params![hex],
                |r| r.get(0),
            )?;
            let outcome = if left == 0 && retention > 0 {
                tx.execute(
                    "INSERT OR REPLACE INTO unclaimed (hash, since) VALUES (?1, ?2)",
                    params![hex, to_i64(now_secs())],
                )?;
                DeleteOutcome::Removed
            } else if left == 0 {
                tx.execute("DELETE FROM blobs WHERE hash = ?1", params![hex])?;
                remove(hash)?;
                DeleteOutcome::Removed
            } else {
                DeleteOutcome::Released
            };
            tx.commit()?;
            outcome
        };
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
        let retention = self.retention();
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let expired: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT u.hash FROM unclaimed u
                 WHERE u.since <= ?1 AND NOT EXISTS (SELECT 1 FROM owners o WHERE o.hash = u.hash)",
            )?;
            let rows =
                stmt.query_map(params![to_i64(now.saturating_sub(retention))], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for hex in &expired {
            tx.execute("DELETE FROM unclaimed WHERE hash = ?1", params![hex])?;
            tx.execute("DELETE FROM blobs WHERE hash = ?1", params![hex])?;
            if let Ok(hash) = hex.parse::<BlobHash>() {
                remove(&hash)?;
            }
        }
        tx.commit()?;
        Ok(expired.len())
    }

    pub(crate) fn is_claimed(&self, hash: &BlobHash) -> Result<bool, BlobStoreError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT 1 FROM owners WHERE hash = ?1 LIMIT 1",
                params![hash.to_hex()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub(crate) fn usage(&self, owner: &PublicKey) -> Result<u64, BlobStoreError> {
        let used: i64 = self.conn()?.query_row(
            "SELECT COALESCE(SUM(b.size), 0) FROM owners o JOIN blobs b ON b.hash = o.hash
             WHERE o.pubkey = ?1",
            params![owner.to_hex()],
            |r| r.get(0),
        )?;
        Ok(to_u64(used))
    }
}

/// Whether `owner` already claims the blob; fails with [`BlobStoreError::Quota`] when it does
/// not and `size` more bytes would pass its `quota`.
fn quota_check(
    tx: &rusqlite::Transaction<'_>,
    hex: &str,
    owner_hex: &str,
    size: u64,
    quota: Option<u64>,
) -> Result<bool, BlobStoreError> {
    let owned: bool = tx
        .query_row(
            "SELECT 1 FROM owners WHERE pubkey = ?1 AND hash = ?2",
            params![owner_hex, hex],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if let Some(quota) = quota
        && !owned
    {
        let used: i64 = tx.query_row(
            "SELECT COALESCE(SUM(b.size), 0) FROM owners o JOIN blobs b ON b.hash = o.hash
             WHERE o.pubkey = ?1",
            params![owner_hex],
            |r| r.get(0),
        )?;
        let used = to_u64(used);
        if used.saturating_add(size) > quota {
            return Err(BlobStoreError::Quota { size, used, quota });
        }
    }
    Ok(owned)
}
