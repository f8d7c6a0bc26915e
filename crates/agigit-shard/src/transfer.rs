//! The transfer core, without I/O: a [`SegmentEncoder`] turns a segment into its shards and
//! their hashes, and a [`SegmentRebuilder`] is the state machine of one segment's download —
//! which shards it still wants, what it was offered, when it can finish — so that a caller
//! (the facade's push and pull, a custom client) only moves bytes and decides where the CPU
//! work runs. The shape follows rustls' `read_tls`/`process_new_packets`/`write_tls` and
//! iroh-blobs' `get::fsm`: the caller asks the machine what it needs, hands it what arrived, and
//! takes out the result.

use agigit_hash::BlobHash;

use crate::code::{ErasureCode, ShardError};
use crate::manifest::ShardManifest;

/// One coded segment: its index, length, shards and their hashes (the Blossom names they are
/// stored under).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSegment {
    /// The segment's index in the object.
    pub index: usize,
    /// Its length in bytes.
    pub len: usize,
    /// Its `N` shards, shard `i` at `shards[i]`.
    pub shards: Vec<Vec<u8>>,
    /// The SHA-256 of each shard.
    pub hashes: Vec<BlobHash>,
}

/// Encodes segments into shards and hashes, reusing the shard buffers that are given back.
pub struct SegmentEncoder<'c> {
    code: &'c dyn ErasureCode,
    spare: Vec<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for SegmentEncoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentEncoder")
            .field("code", &self.code.spec())
            .field("spare", &self.spare.len())
            .finish()
    }
}

impl<'c> SegmentEncoder<'c> {
    /// An encoder for `code`.
    pub fn new(code: &'c dyn ErasureCode) -> Self {
        SegmentEncoder {
            code,
            spare: Vec::new(),
        }
    }

    /// Encodes segment `index` (its bytes `segment`) and hashes every shard.
    ///
    /// # Errors
    /// [`ShardError::Codec`] if the codec fails.
    pub fn encode(&mut self, index: usize, segment: &[u8]) -> Result<EncodedSegment, ShardError> {
        let mut shards = self.spare.pop().unwrap_or_default();
        self.code.encode_into(segment, &mut shards)?;
        let hashes = shards.iter().map(BlobHash::digest).collect();
        Ok(EncodedSegment {
            index,
            len: segment.len(),
            shards,
            hashes,
        })
    }

    /// Gives a segment's shard buffers back for the next [`encode`](Self::encode).
    pub fn recycle(&mut self, segment: EncodedSegment) {
        if self.spare.len() < 4 {
            self.spare.push(segment.shards);
        }
    }
}

/// What [`SegmentRebuilder::offer`] made of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// It has the right length and hash: kept.
    Accepted,
    /// A good copy of it is already held: dropped.
    Duplicate,
    /// Its length or hash is wrong: dropped, and another shard will be wanted in its place.
    Rejected,
}

/// The state of one shard index in a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// Not asked for yet.
    Untried,
    /// Asked for; no answer yet.
    Pending,
    /// Held, checked.
    Good(Vec<u8>),
    /// Could not be had, or was wrong.
    Failed,
}

/// The download of one segment as a state machine: it says which shard indices to ask for
/// ([`wants`](Self::wants)), takes what arrives ([`offer`](Self::offer), checking length and
/// hash; [`failed`](Self::failed) for a shard that could not be had), and rebuilds the segment
/// ([`finish`](Self::finish)) once `k` good shards are in — by the systematic fast path when the
/// `k` data shards are, since they are asked for first.
///
/// Shards may be offered in any order, more than once, or unasked; only good ones count.
#[derive(Debug, Clone)]
pub struct SegmentRebuilder {
    segment: usize,
    segment_len: usize,
    k: usize,
    shard_len: usize,
    hashes: Vec<BlobHash>,
    slots: Vec<Slot>,
}

impl SegmentRebuilder {
    /// The rebuild of segment `segment` of `manifest`, coded by `code`.
    ///
    /// # Errors
    /// [`ShardError::IndexOutOfRange`] for a segment the manifest does not have.
    pub fn new(
        manifest: &ShardManifest,
        code: &dyn ErasureCode,
        segment: usize,
    ) -> Result<Self, ShardError> {
        let hashes = manifest
            .shard_hashes(segment)
            .ok_or(ShardError::IndexOutOfRange {
                index: segment,
                n: manifest.segment_count(),
            })?
            .to_vec();
        let segment_len = manifest.segment_len_usize(segment);
        Ok(SegmentRebuilder {
            segment,
            segment_len,
            k: manifest.codec().k,
            shard_len: code.shard_len(segment_len),
            slots: vec![Slot::Untried; hashes.len()],
            hashes,
        })
    }

    /// The segment's index.
    pub fn segment(&self) -> usize {
        self.segment
    }

    /// The length every shard of this segment has (what a download of one may take at most).
    pub fn shard_len(&self) -> usize {
        self.shard_len
    }

    /// The hash shard `index` must have.
    pub fn hash(&self, index: usize) -> Option<&BlobHash> {
        self.hashes.get(index)
    }

    fn count(&self, pick: impl Fn(&Slot) -> bool) -> usize {
        self.slots.iter().filter(|s| pick(s)).count()
    }

    /// Good shards held.
    pub fn good(&self) -> usize {
        self.count(|s| matches!(s, Slot::Good(_)))
    }

    /// The shard indices to ask for now, marked as asked: enough, with those already asked for,
    /// to reach `k` good ones if every answer is good; lowest indices first (data shards first).
    /// Empty when enough are held or asked for, or none is left untried.
    pub fn wants(&mut self) -> Vec<usize> {
        self.wants_by(|_| 0u8)
    }

    /// [`wants`](Self::wants), choosing among the untried shards by `rank` (lowest first; ties
    /// by index, so data shards still come first among equals): a caller that knows which
    /// shards sit on servers it can reach (a [`Locator`](crate::Locator)) asks for those before
    /// the ones it would have to search for.
    pub fn wants_by<K: Ord>(&mut self, mut rank: impl FnMut(usize) -> K) -> Vec<usize> {
        let needed = self
            .k
            .saturating_sub(self.good() + self.count(|s| *s == Slot::Pending));
        let mut untried: Vec<(K, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == Slot::Untried)
            .map(|(i, _)| (rank(i), i))
            .collect();
        untried.sort();
        let wanted: Vec<usize> = untried.into_iter().map(|(_, i)| i).take(needed).collect();
        for &i in &wanted {
            self.slots[i] = Slot::Pending;
        }
        wanted
    }

    /// Hands over shard `index`: kept when its length and hash are right.
    ///
    /// # Errors
    /// [`ShardError::IndexOutOfRange`] for an index the segment does not have.
    pub fn offer(&mut self, index: usize, bytes: Vec<u8>) -> Result<Offered, ShardError> {
        let hash = self.hashes_at(index)?;
        let ok = bytes.len() == self.shard_len && BlobHash::digest(&bytes) == hash;
        Ok(self.settle(index, ok.then_some(bytes)))
    }

    /// [`offer`](Self::offer) for bytes already checked against the shard's hash (a transport
    /// that verifies what it downloads): only the length is checked here.
    ///
    /// # Errors
    /// As [`offer`](Self::offer).
    pub fn offer_verified(&mut self, index: usize, bytes: Vec<u8>) -> Result<Offered, ShardError> {
        self.hashes_at(index)?;
        let ok = bytes.len() == self.shard_len;
        Ok(self.settle(index, ok.then_some(bytes)))
    }

    fn hashes_at(&self, index: usize) -> Result<BlobHash, ShardError> {
        self.hashes
            .get(index)
            .copied()
            .ok_or(ShardError::IndexOutOfRange {
                index,
                n: self.hashes.len(),
            })
    }

    fn settle(&mut self, index: usize, good: Option<Vec<u8>>) -> Offered {
        let slot = &mut self.slots[index];
        match (good, &*slot) {
            (_, Slot::Good(_)) => Offered::Duplicate,
            (Some(bytes), _) => {
                *slot = Slot::Good(bytes);
                Offered::Accepted
            }
            (None, _) => {
                *slot = Slot::Failed;
                Offered::Rejected
            }
        }
    }

    /// Shard `index` could not be had (from any server): another is wanted in its place.
    pub fn failed(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index)
            && !matches!(slot, Slot::Good(_))
        {
            *slot = Slot::Failed;
        }
    }

    /// Whether `k` good shards are held: [`finish`](Self::finish) will rebuild.
    pub fn is_ready(&self) -> bool {
        self.good() >= self.k
    }

    /// Whether the segment can no longer be rebuilt: fewer than `k` shards are held, asked for
    /// or untried.
    pub fn is_stuck(&self) -> bool {
        self.count(|s| *s != Slot::Failed) < self.k
    }

    /// Rebuilds the segment from the good shards held.
    ///
    /// # Errors
    /// [`ShardError::NotEnoughShards`] naming the segment, the good shards and `k`.
    pub fn finish(&self, code: &dyn ErasureCode) -> Result<Vec<u8>, ShardError> {
        let good = self.good();
        if good < self.k {
            return Err(ShardError::NotEnoughShards {
                segment: self.segment,
                good,
                needed: self.k,
            });
        }
        let slots: Vec<Option<&[u8]>> = self
            .slots
            .iter()
            .map(|s| match s {
                Slot::Good(b) => Some(b.as_slice()),
                _ => None,
            })
            .collect();
        code.rebuild(&slots, self.segment_len).map_err(|e| match e {
            ShardError::NotEnoughShards { good, needed, .. } => ShardError::NotEnoughShards {
                segment: self.segment,
                good,
                needed,
            },
            other => other,
        })
    }
}
