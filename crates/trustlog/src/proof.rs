//! RFC 9162 inclusion and consistency proofs: generation (sections 2.1.3.1 and 2.1.4.1) over any
//! [`HashReader`], and verification (sections 2.1.3.2 and 2.1.4.2) that follows the RFC's
//! algorithms step by step.
//!
//! Generation works in two steps: first pure index arithmetic decides which ranges of leaves the
//! proof needs (`D[a:b]` in the RFC's notation) and which complete subtrees make up each range;
//! then one [`HashReader::read_hashes`] call fetches all of those subtrees at once, so a reader
//! backed by tiles reads each tile once.

use crate::hash::{empty_root, node_hash, Hash};
use crate::{Error, Result, PROOF_HASHES_MAX, TREE_SIZE_MAX};

/// A complete subtree of the tree: the `2^level` leaves `[index << level, (index + 1) << level)`.
/// Level 0 nodes are leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    /// The first leaf index covered by this node.
    pub fn start(self) -> u64 {
        self.index << self.level
    }

    /// One past the last leaf index covered by this node, as u128 so that it cannot overflow.
    pub fn end(self) -> u128 {
        (u128::from(self.index) + 1) << self.level
    }
}

/// Gives the hashes of complete subtrees. The store implements it over tiles
/// ([`crate::TileHashReader`]); tests implement it over a list of leaves.
pub trait HashReader {
    /// Returns the hash of every node in `nodes`, in the same order.
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>>;
}

impl<R: HashReader + ?Sized> HashReader for &R {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>> {
        (**self).read_hashes(nodes)
    }
}

/// A range of leaves `D[start:end]` that a proof carries as one hash, `MTH(D[start:end])`.
#[derive(Clone, Copy, Debug)]
struct LeafRange {
    start: u64,
    end: u64,
}

/// The largest power of two strictly smaller than `n` (RFC 9162's `k`); `n` must be at least 2.
fn split_point(n: u64) -> u64 {
    assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

fn check_tree_size(size: u64) -> Result<()> {
    if size > TREE_SIZE_MAX {
        return Err(Error::TreeTooLarge { size });
    }
    Ok(())
}

/// Appends to `nodes` the complete subtrees that make up `range`, largest (leftmost) first.
/// Every range an RFC 9162 proof uses starts at a multiple of the power of two at or above its
/// length, so each piece of its binary decomposition is a properly aligned complete subtree.
fn decompose(range: LeafRange, nodes: &mut Vec<NodeId>) {
    assert!(range.start < range.end);
    let mut start = range.start;
    let length = range.end - range.start;
    for level in (0..64u32).rev() {
        if length & (1 << level) != 0 {
            assert_eq!(start % (1 << level), 0, "range pieces are aligned");
            nodes.push(NodeId {
                level: level as u8,
                index: start >> level,
            });
            start += 1 << level;
        }
    }
    assert_eq!(start, range.end);
}

/// Reads the subtrees of every range with one reader call and returns `MTH` of each range.
fn range_hashes(ranges: &[LeafRange], reader: &impl HashReader) -> Result<Vec<Hash>> {
    let mut nodes = Vec::new();
    let mut piece_counts = Vec::with_capacity(ranges.len());
    for range in ranges {
        let before = nodes.len();
        decompose(*range, &mut nodes);
        piece_counts.push(nodes.len() - before);
    }
    let hashes = reader.read_hashes(&nodes)?;
    if hashes.len() != nodes.len() {
        return Err(Error::Storage(
            format!(
                "hash reader returned {} hashes for {} nodes",
                hashes.len(),
                nodes.len()
            )
            .into(),
        ));
    }
    let mut result = Vec::with_capacity(ranges.len());
    let mut offset = 0;
    for count in piece_counts {
        result.push(fold_pieces(&hashes[offset..offset + count]));
        offset += count;
    }
    Ok(result)
}

/// `MTH` of a range from the roots of its decomposition: splitting at the largest power of two
/// peels off the leftmost piece first, so the hash folds from the right.
pub(crate) fn fold_pieces(pieces: &[Hash]) -> Hash {
    let (last, rest) = pieces.split_last().expect("a range has at least one piece");
    rest.iter()
        .rev()
        .fold(*last, |right, left| node_hash(left, &right))
}

/// `MTH(D[0:size])`, the root of the tree of `size` leaves, read through `reader`.
pub fn tree_hash(size: u64, reader: &impl HashReader) -> Result<Hash> {
    check_tree_size(size)?;
    if size == 0 {
        return Ok(empty_root());
    }
    let hashes = range_hashes(
        &[LeafRange {
            start: 0,
            end: size,
        }],
        reader,
    )?;
    Ok(hashes[0])
}

/// The hash of one complete subtree, read through `reader`.
pub fn subtree_hash(node: NodeId, reader: &impl HashReader) -> Result<Hash> {
    let hashes = reader.read_hashes(&[node])?;
    hashes
        .first()
        .copied()
        .ok_or_else(|| Error::Storage("hash reader returned no hash".into()))
}

/// The ranges of RFC 9162 `PATH(index, D[0:size])`, in proof order (leaf's sibling first).
fn inclusion_ranges(index: u64, size: u64) -> Vec<LeafRange> {
    let mut ranges = Vec::new();
    let (mut m, mut start, mut n) = (index, 0u64, size);
    // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])  if m < k
    //              = PATH(m - k, D[k:n]) : MTH(D[0:k]) otherwise.
    // Walking down from the root produces the elements last-first.
    while n > 1 {
        let k = split_point(n);
        if m < k {
            ranges.push(LeafRange {
                start: start + k,
                end: start + n,
            });
            n = k;
        } else {
            ranges.push(LeafRange {
                start,
                end: start + k,
            });
            m -= k;
            start += k;
            n -= k;
        }
    }
    ranges.reverse();
    ranges
}

/// The ranges of RFC 9162 `PROOF(old_size, D[0:new_size])`, in proof order; `0 < old < new`.
fn consistency_ranges(old_size: u64, new_size: u64) -> Vec<LeafRange> {
    let mut ranges = Vec::new();
    let (mut m, mut start, mut n, mut old_root_known) = (old_size, 0u64, new_size, true);
    // SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])};
    // SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])           if m <= k
    //                      = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])   otherwise.
    loop {
        if m == n {
            if !old_root_known {
                ranges.push(LeafRange {
                    start,
                    end: start + n,
                });
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            ranges.push(LeafRange {
                start: start + k,
                end: start + n,
            });
            n = k;
        } else {
            ranges.push(LeafRange {
                start,
                end: start + k,
            });
            m -= k;
            start += k;
            n -= k;
            old_root_known = false;
        }
    }
    ranges.reverse();
    ranges
}

/// The RFC 9162 inclusion proof (audit path) of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof(index: u64, size: u64, reader: &impl HashReader) -> Result<Vec<Hash>> {
    check_tree_size(size)?;
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    let proof = range_hashes(&inclusion_ranges(index, size), reader)?;
    assert!(proof.len() <= PROOF_HASHES_MAX);
    Ok(proof)
}

/// The RFC 9162 consistency proof from the tree of `old_size` leaves to the tree of `new_size`.
/// Empty when `old_size` is 0 or equal to `new_size` (the RFC defines proofs for
/// `0 < old < new`; those two cases need no hashes).
pub fn consistency_proof(
    old_size: u64,
    new_size: u64,
    reader: &impl HashReader,
) -> Result<Vec<Hash>> {
    check_tree_size(new_size)?;
    if old_size > new_size {
        return Err(Error::OldSizeExceedsNew { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    let proof = range_hashes(&consistency_ranges(old_size, new_size), reader)?;
    assert!(proof.len() <= PROOF_HASHES_MAX);
    Ok(proof)
}

/// Checks an inclusion proof with the algorithm of RFC 9162 section 2.1.3.2: `leaf_hash` is leaf
/// `index` of the tree of `size` leaves whose root is `root`.
///
/// As in the RFC, the proof binds the leaf, its index and the root; the size is bound only
/// through the signed checkpoint that carries size and root together (see [`crate::verify_receipt`]).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<()> {
    check_tree_size(size)?;
    if proof.len() > PROOF_HASHES_MAX {
        return Err(Error::ProofTooLong {
            hashes: proof.len(),
        });
    }
    // 1. leaf_index >= tree_size fails.
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    // 2. fn = leaf_index, sn = tree_size - 1. 3. r = hash.
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    // 4. For each p in the path:
    for p in proof {
        // a. sn == 0: the path is longer than the tree is high.
        if snode == 0 {
            return Err(Error::ProofHasExtraHashes);
        }
        // b. LSB(fn) set, or fn == sn: p is a left sibling.
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            // ii. Skip the levels where this node has no right sibling (the right edge).
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        // c. Shift both once.
        fnode >>= 1;
        snode >>= 1;
    }
    // 5. sn must be 0 and r must equal the root.
    if snode != 0 {
        return Err(Error::ProofMissingHashes);
    }
    if r != *root {
        return Err(Error::RootMismatch);
    }
    Ok(())
}

/// Checks a consistency proof with the algorithm of RFC 9162 section 2.1.4.2: the tree of
/// `old_size` leaves with root `old_root` is a prefix of the tree of `new_size` leaves with root
/// `new_root`.
///
/// The RFC covers `0 < old_size < new_size`. The two remaining cases accept only an empty proof:
/// `old_size == new_size` needs equal roots, and `old_size == 0` needs `old_root` to be the empty
/// tree's root (SHA-256 of the empty string) — stricter than accepting any old root.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<()> {
    check_tree_size(new_size)?;
    if old_size > new_size {
        return Err(Error::OldSizeExceedsNew { old_size, new_size });
    }
    if proof.len() > PROOF_HASHES_MAX {
        return Err(Error::ProofTooLong {
            hashes: proof.len(),
        });
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return Err(Error::ProofNotEmpty);
        }
        if *old_root != empty_root() {
            return Err(Error::OldRootMismatch);
        }
        return Ok(());
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(Error::ProofNotEmpty);
        }
        if old_root != new_root {
            return Err(Error::RootMismatch);
        }
        return Ok(());
    }
    // 1. An empty proof fails.
    if proof.is_empty() {
        return Err(Error::ConsistencyProofEmpty);
    }
    // 2. If first is an exact power of 2, prepend first_hash to the path.
    let prepended = old_size.is_power_of_two().then_some(old_root);
    let mut path = prepended.into_iter().chain(proof.iter());
    // 3. fn = first - 1, sn = second - 1.
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    // 4. If LSB(fn) is set, shift both right until it is not.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // 5. fr = sr = the first value of the path.
    let first = path.next().expect("the path is not empty");
    let (mut fr, mut sr) = (*first, *first);
    // 6. For each subsequent value c:
    for c in path {
        // a. sn == 0: the path is longer than the tree is high.
        if snode == 0 {
            return Err(Error::ProofHasExtraHashes);
        }
        // b. LSB(fn) set, or fn == sn: c is a left sibling of both paths.
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        // c. Shift both once.
        fnode >>= 1;
        snode >>= 1;
    }
    // 7. fr == first_hash, sr == second_hash and sn == 0.
    if snode != 0 {
        return Err(Error::ProofMissingHashes);
    }
    if fr != *old_root {
        return Err(Error::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(Error::NewRootMismatch);
    }
    Ok(())
}
