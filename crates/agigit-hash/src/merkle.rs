//! RFC 9162's Merkle tree (Certificate Transparency v2, §2.1): a leaf's hash is
//! SHA-256(0x00 ‖ bytes), a node's SHA-256(0x01 ‖ left ‖ right), and a tree of `n > 1` leaves
//! splits at the largest power of two below `n`. Used over a shard's fixed-size leaves (storage
//! audits) and over an evaluation's per-document losses (evaluation receipts), so that a
//! holder of the root alone can check one leaf with its inclusion path.

use crate::{HASH_LEN, Hasher};

/// A hash of the tree: a leaf's, a node's or the root.
pub type Digest = [u8; HASH_LEN];

/// A leaf's hash: SHA-256(0x00 ‖ `bytes`).
pub fn leaf_hash(bytes: &[u8]) -> Digest {
    let mut h = Hasher::new();
    h.update(&[0]);
    h.update(bytes);
    h.finalize()
}

/// A node's hash: SHA-256(0x01 ‖ `left` ‖ `right`).
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut h = Hasher::new();
    h.update(&[1]);
    h.update(left);
    h.update(right);
    h.finalize()
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root over leaf hashes (RFC 9162 §2.1.1); SHA-256 of nothing for no leaves.
pub fn root(leaves: &[Digest]) -> Digest {
    match leaves.len() {
        0 => Hasher::new().finalize(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion path of leaf `index` among `leaves`, leaf to root (RFC 9162 §2.1.3.1); `None`
/// past the end.
pub fn path(leaves: &[Digest], index: usize) -> Option<Vec<Digest>> {
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    path_into(index, leaves, &mut out);
    Some(out)
}

fn path_into(m: usize, leaves: &[Digest], out: &mut Vec<Digest>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path_into(m, &leaves[..k], out);
        out.push(root(&leaves[k..]));
    } else {
        path_into(m - k, &leaves[k..], out);
        out.push(root(&leaves[..k]));
    }
}

/// Whether `leaf` (a leaf hash) is leaf `index` of the tree of `count` leaves whose root is
/// `root`, with `path` its inclusion path (RFC 9162 §2.1.3.2). The path's length must be exactly
/// the tree's depth at that leaf.
pub fn verify(root: &Digest, count: u64, index: u64, leaf: &Digest, path: &[Digest]) -> bool {
    if index >= count {
        return false;
    }
    let (mut f, mut s) = (index, count - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn small_trees_are_rfc_9162s() {
        let l = leaves(3);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        assert_eq!(root(&[]), Hasher::new().finalize());
        assert_eq!(path(&l, 2), Some(vec![node_hash(&l[0], &l[1])]));
        assert_eq!(path(&l, 3), None);
    }

    proptest! {
        /// Every leaf of every tree proves against the root; another leaf, another index, an index
        /// past the end or a changed path does not. (The count is the signer's to state with the
        /// root: a path on the left side also fits a larger tree.)
        #[test]
        fn every_leaf_proves_and_nothing_else_does(n in 1usize..70, pick in any::<usize>(), flip in any::<u8>()) {
            let l = leaves(n);
            let r = root(&l);
            let i = pick % n;
            let p = path(&l, i).expect("a leaf");
            prop_assert!(verify(&r, n as u64, i as u64, &l[i], &p));
            prop_assert!(!verify(&r, n as u64, i as u64, &leaf_hash(b"other"), &p));
            prop_assert!(!verify(&r, n as u64, n as u64, &l[i], &p), "past the end");
            if n > 1 {
                prop_assert!(!verify(&r, n as u64, ((i + 1) % n) as u64, &l[i], &p));
                let mut bad = p.clone();
                bad[0][usize::from(flip) % HASH_LEN] ^= 1;
                prop_assert!(!verify(&r, n as u64, i as u64, &l[i], &bad));
            }
        }
    }
}
