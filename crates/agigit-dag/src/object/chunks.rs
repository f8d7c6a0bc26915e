//! Chunk lists: a large file as the ordered list of its content-defined chunks.
//!
//! A file of the data parts (or any large plain file) is cut where its content says — so that an
//! edit moves only the boundaries near it — and each chunk is a blob. The file is a chunk list:
//! its total length and the chunks in order, each with its length. A file with more chunks than
//! one list holds ([`MAX_CHUNK_ENTRIES`]) is a list of lists: level 1 entries are level 0 lists.
//! Two levels hold 2^32 chunks, far more than any file (16 PiB at 4 MiB a chunk).
//!
//! A list may name one chunk many times (a run of zeros is many equal chunks): whoever
//! materializes it writes the chunks out one at a time, never the whole file in memory, and
//! checks each chunk's length against the list.

use agigit_hash::ObjectId;

use super::codec::Reader;
use super::{BODY_VERSION, DecodeError, Kind};

/// Most entries of one chunk list (2.5 MiB of body at 40 bytes an entry).
pub const MAX_CHUNK_ENTRIES: usize = 1 << 16;

/// The deepest level: level 0 lists chunks (blobs), level 1 lists level 0 lists.
pub const MAX_CHUNK_LEVEL: u8 = 1;

/// Bytes of one encoded entry: its length (`u64`) and its id.
const ENTRY_LEN: usize = 8 + 32;

/// One entry of a chunk list: a chunk (level 0) or a level 0 list (level 1), and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkEntry {
    /// Bytes of the file it holds (a chunk's length, or a list's total).
    pub len: u64,
    /// The blob (level 0) or the chunk list (level 1).
    pub id: ObjectId,
}

/// A file as its chunks in order: at level 0 each entry is a blob; at level 1 each is a level 0
/// chunk list. Entries are never empty, and their lengths add up to `total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkList {
    level: u8,
    total: u64,
    entries: Vec<ChunkEntry>,
}

impl ChunkList {
    /// A list at `level` of `entries`; its total is their lengths' sum.
    ///
    /// # Errors
    /// A level above [`MAX_CHUNK_LEVEL`], no entries or more than [`MAX_CHUNK_ENTRIES`], an empty
    /// entry, or lengths that overflow a `u64`.
    pub fn new(level: u8, entries: Vec<ChunkEntry>) -> Result<Self, String> {
        if level > MAX_CHUNK_LEVEL {
            return Err(format!("level {level} (at most {MAX_CHUNK_LEVEL})"));
        }
        if entries.is_empty() || entries.len() > MAX_CHUNK_ENTRIES {
            return Err(format!(
                "{} entries (1 to {MAX_CHUNK_ENTRIES})",
                entries.len()
            ));
        }
        let mut total = 0u64;
        for (i, e) in entries.iter().enumerate() {
            if e.len == 0 {
                return Err(format!("entry {i} is empty"));
            }
            total = total
                .checked_add(e.len)
                .ok_or_else(|| "entry lengths overflow 2^64 bytes".to_owned())?;
        }
        Ok(ChunkList {
            level,
            total,
            entries,
        })
    }

    /// 0: the entries are chunks (blobs); 1: they are level 0 chunk lists.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// Bytes of the file.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[ChunkEntry] {
        &self.entries
    }

    /// The kind of object the entries name.
    pub fn entry_kind(&self) -> Kind {
        if self.level == 0 {
            Kind::Blob
        } else {
            Kind::Chunks
        }
    }

    /// The canonical body: version, level, total, entry count, then each entry's length and id.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + ENTRY_LEN * self.entries.len());
        out.push(BODY_VERSION);
        out.push(self.level);
        out.extend_from_slice(&self.total.to_le_bytes());
        #[allow(
            clippy::cast_possible_truncation,
            reason = "at most MAX_CHUNK_ENTRIES, checked by new and decode"
        )]
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.len.to_le_bytes());
            out.extend_from_slice(e.id.as_bytes());
        }
        out
    }

    /// Decodes a canonical body: a known level, 1 to [`MAX_CHUNK_ENTRIES`] entries none of them
    /// empty, lengths adding up to the total.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Kind::Chunks, body)?;
        let level = r.u8("level")?;
        let total = r.u64("total")?;
        let count = r.u32("entry count")? as usize;
        // Refuse counts the body cannot hold before allocating for them.
        if count > body.len() / ENTRY_LEN {
            return Err(DecodeError::Truncated {
                kind: Kind::Chunks,
                what: "entries",
            });
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u64("entry length")?;
            let id = r.id("entry id")?;
            entries.push(ChunkEntry { len, id });
        }
        r.finish()?;
        let invalid = |reason| DecodeError::Invalid {
            kind: Kind::Chunks,
            reason,
        };
        let list = ChunkList::new(level, entries).map_err(invalid)?;
        if list.total != total {
            return Err(invalid(format!(
                "the entries hold {} bytes, the total says {total}",
                list.total
            )));
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes([n; 32])
    }

    fn entries() -> impl Strategy<Value = Vec<ChunkEntry>> {
        proptest::collection::vec(
            (1u64..1 << 40, any::<[u8; 32]>()).prop_map(|(len, id)| ChunkEntry {
                len,
                id: ObjectId::from_bytes(id),
            }),
            1..64,
        )
    }

    proptest! {
        #[test]
        fn round_trips(level in 0u8..=MAX_CHUNK_LEVEL, entries in entries()) {
            let list = ChunkList::new(level, entries).expect("valid");
            let body = list.encode();
            prop_assert_eq!(ChunkList::decode(&body), Ok(list));
        }

        /// Any byte changed or cut off either fails to decode or decodes to a list that encodes
        /// to exactly the bytes given (never two encodings of one list).
        #[test]
        fn corruption_is_refused_or_canonical(
            entries in entries(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..,
            cut in any::<prop::sample::Index>(),
        ) {
            let body = ChunkList::new(0, entries).expect("valid").encode();
            let mut bad = body.clone();
            let i = at.index(bad.len());
            bad[i] ^= flip;
            if let Ok(list) = ChunkList::decode(&bad) {
                prop_assert_eq!(list.encode(), bad);
            }
            let short = &body[..cut.index(body.len())];
            prop_assert!(ChunkList::decode(short).is_err());
        }
    }

    #[test]
    fn lists_that_break_the_rules_are_refused() {
        let one = |len| ChunkEntry { len, id: id(1) };
        assert!(ChunkList::new(2, vec![one(1)]).is_err(), "level");
        assert!(ChunkList::new(0, Vec::new()).is_err(), "no entries");
        assert!(
            ChunkList::new(0, vec![one(1), one(0)]).is_err(),
            "empty entry"
        );
        assert!(
            ChunkList::new(0, vec![one(u64::MAX), one(1)]).is_err(),
            "overflow"
        );
        assert!(
            ChunkList::new(0, vec![one(1); MAX_CHUNK_ENTRIES + 1]).is_err(),
            "too many"
        );
        // A total that disagrees with the entries (a list that would make a checkout write
        // more, or fewer, bytes than it says).
        let mut body = ChunkList::new(0, vec![one(5), one(7)])
            .expect("valid")
            .encode();
        body[2..10].copy_from_slice(&13u64.to_le_bytes());
        let err = ChunkList::decode(&body).expect_err("total");
        assert!(err.to_string().contains("12 bytes"), "{err}");
        // A count larger than the body holds is refused before anything is allocated.
        let mut body = vec![BODY_VERSION, 0];
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            ChunkList::decode(&body),
            Err(DecodeError::Truncated { .. })
        ));
        // Same chunk many times: allowed (a run of zeros).
        let list = ChunkList::new(0, vec![one(3); 4]).expect("repeats");
        assert_eq!(list.total(), 12);
        assert_eq!(list.entry_kind(), Kind::Blob);
    }
}
