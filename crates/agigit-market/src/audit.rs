//! Storage audits: a Merkle tree over each stored shard, so that a client holding only the
//! shard's root can check any byte range a server sends back.
//!
//! A shard is cut into leaves of [`LEAF_SIZE`] bytes (the last one shorter when the shard's
//! length is not a multiple). The tree is RFC 9162's (Certificate Transparency v2, §2.1.1):
//! a leaf's hash is SHA-256(0x00 ‖ bytes), a node's SHA-256(0x01 ‖ left ‖ right), and a tree
//! of `n > 1` leaves splits at the largest power of two below `n`. Its root is the shard's
//! audit root, which the buyer states in its storage order for every shard. An answer to a
//! challenge is one leaf's bytes and its inclusion path (RFC 9162 §2.1.3), checked against the
//! root by [`verify`] without the rest of the shard.
//!
//! Which leaves a challenge asks for is derived from the buyer's fresh nonce and the period
//! ([`positions`]): the server cannot know them before the challenge, so it must keep every
//! byte of every shard to pass audits it cannot foresee.

use agigit_event::market::{LEAF_BYTES, MAX_SHARD_BYTES};
use agigit_hash::Hasher;

pub use agigit_event::market::MAX_PATH;

/// Bytes per leaf: what one challenged position returns (the last leaf of a shard may be
/// shorter).
pub const LEAF_SIZE: u64 = LEAF_BYTES as u64;

/// [`LEAF_SIZE`] for slicing.
const LEAF: usize = LEAF_BYTES;

/// The largest shard a storage order may name: 2^32 bytes (2^22 leaves, so an inclusion
/// path has at most [`MAX_PATH`] hashes).
pub const MAX_SHARD_SIZE: u64 = MAX_SHARD_BYTES;

/// A SHA-256 value of the tree: a leaf's, a node's, or a shard's root.
pub use agigit_hash::merkle::Digest;
use agigit_hash::merkle::{leaf_hash, node_hash};

/// How many leaves a shard of `size` bytes has (0 for an empty one).
pub fn leaf_count(size: u64) -> u64 {
    size.div_ceil(LEAF_SIZE)
}

/// The byte length of leaf `leaf` in a shard of `size` bytes (0 past its end).
pub fn leaf_len(size: u64, leaf: u64) -> u64 {
    let start = leaf.saturating_mul(LEAF_SIZE);
    size.saturating_sub(start).min(LEAF_SIZE)
}

/// Computes a shard's audit root from its bytes fed in any slicing, in `O(log n)` memory.
///
/// ```
/// use agigit_market::audit::{RootBuilder, root};
/// let shard = vec![7u8; 5000];
/// let mut b = RootBuilder::new();
/// b.update(&shard[..10]);
/// b.update(&shard[10..]);
/// assert_eq!(b.finish(), root(&shard));
/// ```
#[derive(Clone, Debug, Default)]
pub struct RootBuilder {
    /// Complete subtrees, left to right, each with its height; heights strictly decrease.
    stack: Vec<(Digest, u32)>,
    /// The leaf being filled.
    pending: Vec<u8>,
    /// Whether any byte was fed.
    fed: bool,
}

impl RootBuilder {
    /// A builder that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the shard's next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        const FULL: usize = LEAF;
        while !data.is_empty() {
            self.fed = true;
            if self.pending.len() == FULL {
                let leaf = std::mem::take(&mut self.pending);
                self.push(leaf_hash(&leaf));
            }
            let take = (FULL - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    fn push(&mut self, mut hash: Digest) {
        let mut height = 0;
        while let Some(&(left, h)) = self.stack.last()
            && h == height
        {
            self.stack.pop();
            hash = node_hash(&left, &hash);
            height += 1;
        }
        self.stack.push((hash, height));
    }

    /// The root of everything fed (that of an empty shard is SHA-256 of nothing, RFC 9162's
    /// empty tree; storage orders name no empty shard).
    pub fn finish(mut self) -> Digest {
        if !self.fed {
            return Hasher::new().finalize();
        }
        let last = std::mem::take(&mut self.pending);
        self.push(leaf_hash(&last));
        let mut stack = self.stack;
        let mut right = stack.pop().map(|(h, _)| h).unwrap_or_default();
        while let Some((left, _)) = stack.pop() {
            right = node_hash(&left, &right);
        }
        right
    }
}

/// A shard's audit root.
pub fn root(shard: &[u8]) -> Digest {
    let mut b = RootBuilder::new();
    b.update(shard);
    b.finish()
}

/// The answer to a challenge of leaf `leaf` of `shard`: the leaf's bytes and its inclusion
/// path, leaf to root. `None` when the shard has no such leaf.
///
/// This is the server's side: it hashes the whole shard (`O(n)`).
pub fn prove(shard: &[u8], leaf: u64) -> Option<(Vec<u8>, Vec<Digest>)> {
    let n = leaf_count(shard.len() as u64);
    if leaf >= n {
        return None;
    }
    let leaves: Vec<Digest> = shard.chunks(LEAF).map(leaf_hash).collect();
    let m = usize::try_from(leaf).ok()?;
    let out = agigit_hash::merkle::path(&leaves, m)?;
    let start = m * LEAF;
    let end = (start + LEAF).min(shard.len());
    Some((shard[start..end].to_vec(), out))
}

/// Why an answer does not prove a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The shard has no such leaf.
    #[error("leaf {leaf} is past the shard's {count} leaves")]
    NoSuchLeaf {
        /// The leaf asked about.
        leaf: u64,
        /// How many the shard has.
        count: u64,
    },
    /// The bytes are not the leaf's length.
    #[error("{found} bytes where leaf {leaf} has {expected}")]
    Length {
        /// The leaf.
        leaf: u64,
        /// Its length.
        expected: u64,
        /// The answer's.
        found: usize,
    },
    /// The path does not lead to the root (wrong bytes, wrong or missing hashes).
    #[error("leaf {leaf}'s bytes and path do not lead to the shard's root")]
    Mismatch {
        /// The leaf.
        leaf: u64,
    },
}

/// Checks that `bytes` are leaf `leaf` of the shard of `size` bytes whose audit root is `root`,
/// with `path` its inclusion path (RFC 9162 §2.1.3.2). Costs `O(log n)`; the path's length must
/// be exactly the tree's depth at that leaf.
///
/// # Errors
/// [`ProofError`] naming what does not hold.
pub fn verify(
    root: &Digest,
    size: u64,
    leaf: u64,
    bytes: &[u8],
    path: &[Digest],
) -> Result<(), ProofError> {
    let count = leaf_count(size);
    if leaf >= count {
        return Err(ProofError::NoSuchLeaf { leaf, count });
    }
    let expected = leaf_len(size, leaf);
    if bytes.len() as u64 != expected {
        return Err(ProofError::Length {
            leaf,
            expected,
            found: bytes.len(),
        });
    }
    if agigit_hash::merkle::verify(root, count, leaf, &leaf_hash(bytes), path) {
        Ok(())
    } else {
        Err(ProofError::Mismatch { leaf })
    }
}

/// A challenged position: leaf `leaf` of the order's shard `shard` (its index in the order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The shard's index in the order's list.
    pub shard: usize,
    /// The leaf's index in the shard.
    pub leaf: u64,
}

/// The `count` positions a challenge with `nonce` in period `period` asks for, over shards of
/// the given sizes. Position `i` is drawn from `d_i` = SHA-256("agigit audit" ‖ nonce ‖ period
/// ‖ i), integers little-endian: its shard is `(s + i) mod n`, where `s` is the first 8 bytes
/// of `d_0` mod `n` — so an audit of at least `n` positions reaches every shard, and one of
/// fewer reaches `count` distinct ones — and its leaf is bytes 8..16 of `d_i` mod the shard's
/// leaf count. Empty when there are no shards or a shard is empty.
pub fn positions(nonce: &Digest, period: u64, sizes: &[u64], count: usize) -> Vec<Position> {
    if sizes.is_empty() || sizes.contains(&0) {
        return Vec::new();
    }
    let draw = |i: u64| {
        let mut h = Hasher::new();
        h.update(b"agigit audit");
        h.update(nonce);
        h.update(&period.to_le_bytes());
        h.update(&i.to_le_bytes());
        let d = h.finalize();
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&d[at..at + 8]);
            u64::from_le_bytes(w)
        };
        (word(0), word(8))
    };
    let n = sizes.len() as u64;
    let start = draw(0).0 % n;
    (0..count as u64)
        .map(|i| {
            // The modulo bias over 2^64 is negligible; the index is below `sizes.len()`.
            let shard = usize::try_from((start + i) % n).unwrap_or(0);
            let leaf = draw(i).1 % leaf_count(sizes[shard]);
            Position { shard, leaf }
        })
        .collect()
}
