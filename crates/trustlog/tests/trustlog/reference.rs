//! A deliberately simple model of the tree, written from the recursive definitions of RFC 9162
//! sections 2.1.1, 2.1.3.1 and 2.1.4.1, with no code shared with the crate beyond the two hash
//! functions. Proof verification here evaluates those definitions, independently of the RFC's
//! iterative verification algorithms that the crate implements.

use std::cell::Cell;
use std::collections::BTreeMap;

use trustlog::{
    empty_root, leaf_hash, node_hash, Error, Hash, HashReader, NodeId, Result, TileReader,
    TileWrite,
};

/// The largest power of two smaller than `n` (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// Distinct leaf data for leaf `index` of a tree identified by `seed`.
pub fn leaf_data(seed: u64, index: u64) -> Vec<u8> {
    let mut data = seed.to_be_bytes().to_vec();
    data.extend_from_slice(&index.to_be_bytes());
    data
}

pub fn leaves(seed: u64, count: u64) -> Vec<Hash> {
    (0..count)
        .map(|index| leaf_hash(&leaf_data(seed, index)))
        .collect()
}

/// MTH(D[n]).
pub fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]).
pub fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut proof = path(m, &leaves[..k]);
        proof.push(mth(&leaves[k..]));
        proof
    } else {
        let mut proof = path(m - k, &leaves[k..]);
        proof.push(mth(&leaves[..k]));
        proof
    }
}

/// PROOF(m, D[n]) for 0 < m < n; empty otherwise.
pub fn consistency(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    if m == 0 || m >= leaves.len() {
        return Vec::new();
    }
    subproof(m, leaves, true)
}

fn subproof(m: usize, leaves: &[Hash], old_root_known: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if old_root_known {
            Vec::new()
        } else {
            vec![mth(leaves)]
        };
    }
    let k = split(n);
    if m <= k {
        let mut proof = subproof(m, &leaves[..k], old_root_known);
        proof.push(mth(&leaves[k..]));
        proof
    } else {
        let mut proof = subproof(m - k, &leaves[k..], false);
        proof.push(mth(&leaves[..k]));
        proof
    }
}

fn split_u64(n: u64) -> u64 {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The root that PATH(m, D[n]) would lead to, evaluating the recursive definition with the
/// given hashes in place of the tree's (the proof's last element is the top-level sibling).
pub fn root_from_path(leaf: Hash, m: u64, n: u64, proof: &[Hash]) -> Option<Hash> {
    if m >= n || n > trustlog::TREE_SIZE_MAX {
        return None;
    }
    if n == 1 {
        return proof.is_empty().then_some(leaf);
    }
    let k = split_u64(n);
    let (top, rest) = proof.split_last()?;
    if m < k {
        Some(node_hash(&root_from_path(leaf, m, k, rest)?, top))
    } else {
        Some(node_hash(top, &root_from_path(leaf, m - k, n - k, rest)?))
    }
}

/// Whether the recursive definition of PROOF(m, D[n]), evaluated with the given hashes, yields
/// `old_root` and `new_root`. Sizes 0 and m == n follow the crate's documented conventions.
pub fn consistency_holds(m: u64, n: u64, proof: &[Hash], old_root: &Hash, new_root: &Hash) -> bool {
    if m > n || n > trustlog::TREE_SIZE_MAX {
        return false;
    }
    if m == 0 {
        return proof.is_empty() && *old_root == empty_root();
    }
    if m == n {
        return proof.is_empty() && old_root == new_root;
    }
    match evaluate_subproof(m, n, true, proof, old_root) {
        Some((old, new)) => old == *old_root && new == *new_root,
        None => false,
    }
}

/// (MTH of the old tree, MTH of the new tree) as SUBPROOF(m, D[n], b) computes them.
fn evaluate_subproof(
    m: u64,
    n: u64,
    old_root_known: bool,
    proof: &[Hash],
    old_root: &Hash,
) -> Option<(Hash, Hash)> {
    if m == n {
        return if old_root_known {
            proof.is_empty().then_some((*old_root, *old_root))
        } else {
            match proof {
                [only] => Some((*only, *only)),
                _ => None,
            }
        };
    }
    let k = split_u64(n);
    let (top, rest) = proof.split_last()?;
    if m <= k {
        let (old, new) = evaluate_subproof(m, k, old_root_known, rest, old_root)?;
        Some((old, node_hash(&new, top)))
    } else {
        let (old, new) = evaluate_subproof(m - k, n - k, false, rest, old_root)?;
        Some((node_hash(top, &old), node_hash(top, &new)))
    }
}

/// A hash reader over the list of all leaves.
pub struct MemoryTree(pub Vec<Hash>);

impl HashReader for MemoryTree {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>> {
        nodes
            .iter()
            .map(|node| {
                let start = usize::try_from(node.start()).unwrap();
                let end = usize::try_from(node.end()).unwrap();
                if end > self.0.len() {
                    return Err(Error::Storage("node beyond the leaves".into()));
                }
                Ok(mth(&self.0[start..end]))
            })
            .collect()
    }
}

/// Every tile of the tree of `leaves`, computed from scratch: full tiles and, at each level,
/// the partial tile if it is not empty. Keyed by (level, index).
pub fn tiles_from_scratch(leaves: &[Hash]) -> BTreeMap<(u8, u64), Vec<Hash>> {
    let mut tiles = BTreeMap::new();
    let mut level_entries: Vec<Hash> = leaves.to_vec();
    let mut level = 0u8;
    while !level_entries.is_empty() {
        for (index, chunk) in level_entries.chunks(256).enumerate() {
            tiles.insert((level, index as u64), chunk.to_vec());
        }
        // The next level's entries are the roots of this level's full tiles.
        level_entries = level_entries.chunks_exact(256).map(mth).collect();
        level += 1;
    }
    tiles
}

/// A tile store in memory that enforces the write rules and counts reads.
#[derive(Default)]
pub struct MemoryTiles {
    pub tiles: BTreeMap<(u8, u64), Vec<Hash>>,
    pub reads: Cell<usize>,
}

impl MemoryTiles {
    /// Stores the tiles of one append: a full tile is written once; a partial tile only grows.
    pub fn store(&mut self, writes: &[TileWrite]) {
        for write in writes {
            let tile = write.tile;
            assert_eq!(
                write.hashes.len(),
                usize::from(tile.width()),
                "tile {} carries its width",
                tile.path()
            );
            let key = (tile.level(), tile.index());
            if let Some(existing) = self.tiles.get(&key) {
                assert!(
                    existing.len() < 256,
                    "full tile {} written twice",
                    tile.path()
                );
                assert!(
                    existing.len() < write.hashes.len(),
                    "partial tile {} did not grow",
                    tile.path()
                );
                assert_eq!(
                    existing[..],
                    write.hashes[..existing.len()],
                    "tile {} changed its prefix",
                    tile.path()
                );
            }
            self.tiles.insert(key, write.hashes.clone());
        }
    }
}

impl TileReader for MemoryTiles {
    fn read_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>> {
        self.reads.set(self.reads.get() + 1);
        match self.tiles.get(&(level, index)) {
            Some(hashes) if hashes.len() >= usize::from(width) => {
                Ok(hashes[..usize::from(width)].to_vec())
            }
            _ => Err(Error::Storage(
                format!("no tile {level}/{index} of width {width}").into(),
            )),
        }
    }
}

/// Builds a log of `count` leaves through the appender in batches of `batch` leaves.
pub fn build_log(
    seed: u64,
    count: u64,
    batch: usize,
) -> (Vec<Hash>, MemoryTiles, trustlog::RightEdge) {
    let all = leaves(seed, count);
    let mut tiles = MemoryTiles::default();
    let mut edge = trustlog::RightEdge::empty();
    for chunk in all.chunks(batch.max(1)) {
        let appended = edge.append(chunk).unwrap();
        tiles.store(&appended.tiles);
        edge = appended.edge;
    }
    (all, tiles, edge)
}
