//! The appender: extends the tree by a batch of leaf hashes using only its right edge, and says
//! which tiles to write.
//!
//! The right edge of a tree of `n` leaves is
//! - the frontier: the roots of the complete subtrees that make up the tree, one per set bit of
//!   `n`, largest first (at most 63 hashes), from which the root folds in `popcount(n) - 1`
//!   hashes; and
//! - the partial tile at each level (at most 255 hashes each), the only stored hashes that
//!   change when the tree grows.
//!
//! Appending a leaf to a tree of `n` leaves merges it with the `trailing_ones(n)` smallest
//! frontier roots, one node hash per merge. Over a batch of `B` leaves that is
//! `B + popcount(n) - popcount(n + B)` node hashes, plus `popcount(n + B) - 1` for the new root:
//! at most `B + 62` in all, on top of the `B` leaf hashes the caller computed.

use crate::hash::{node_hash, Hash};
use crate::proof::fold_pieces;
use crate::tile::{complete_subtree_root, Tile, TileReader, TILE_HEIGHT, TILE_WIDTH};
use crate::{empty_root, Error, Result, APPEND_LEAVES_MAX, TREE_SIZE_MAX};

/// The state needed to extend a tree: its size, frontier and partial tiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RightEdge {
    size: u64,
    /// Roots of the complete subtrees that make up the tree, largest (leftmost) first.
    frontier: Vec<Hash>,
    /// `partial_tiles[level]` holds the `(size >> 8 * level) % 256` hashes of the partial tile at
    /// that level; levels run up to the highest one with a hash in it.
    partial_tiles: Vec<Vec<Hash>>,
}

/// One tile to store after an append.
///
/// A full tile (`tile.is_full()`, 256 hashes) is final: write it once. A partial tile replaces
/// the previous partial version of the same (level, index); the previous version is a prefix of
/// it, so a store may keep both (readers take a prefix) or overwrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileWrite {
    pub tile: Tile,
    pub hashes: Vec<Hash>,
}

/// The outcome of [`RightEdge::append`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The right edge of the grown tree; keep it for the next batch once the tiles are stored.
    pub edge: RightEdge,
    /// The root of the grown tree.
    pub root: Hash,
    /// Full tiles completed by this batch, then the partial tiles that changed, lowest level first.
    pub tiles: Vec<TileWrite>,
}

impl Default for RightEdge {
    fn default() -> Self {
        RightEdge::empty()
    }
}

impl RightEdge {
    /// The right edge of the empty tree.
    pub fn empty() -> RightEdge {
        RightEdge {
            size: 0,
            frontier: Vec::new(),
            partial_tiles: Vec::new(),
        }
    }

    /// Rebuilds the right edge of the tree of `size` leaves from its stored partial tiles (one
    /// read per tile level) — at start-up, for instance. Costs at most 255 node hashes per level.
    pub fn from_tiles(size: u64, tiles: &impl TileReader) -> Result<RightEdge> {
        if size > TREE_SIZE_MAX {
            return Err(Error::TreeTooLarge { size });
        }
        let mut partial_tiles = Vec::new();
        for level in 0..levels_in_tree(size) {
            let width = partial_width(size, level);
            let hashes = if width == 0 {
                Vec::new()
            } else {
                let index = partial_tile_index(size, level);
                let read = tiles.read_tile(level, index, width as u16)?;
                if read.len() != width {
                    return Err(Error::TileWidthMismatch {
                        level,
                        index,
                        expected: width,
                        got: read.len(),
                    });
                }
                read
            };
            partial_tiles.push(hashes);
        }
        RightEdge::from_partial_tiles(size, partial_tiles)
    }

    /// Builds the right edge of the tree of `size` leaves from the contents of its partial
    /// tiles: `partial_tiles[level]` must hold `(size >> 8 * level) % 256` hashes, for every
    /// level up to the highest with a hash in it.
    pub fn from_partial_tiles(size: u64, partial_tiles: Vec<Vec<Hash>>) -> Result<RightEdge> {
        if size > TREE_SIZE_MAX {
            return Err(Error::TreeTooLarge { size });
        }
        if partial_tiles.len() != usize::from(levels_in_tree(size)) {
            return Err(Error::InvalidTile {
                reason: "partial tiles do not cover exactly the levels of the tree",
            });
        }
        for (level, hashes) in partial_tiles.iter().enumerate() {
            let expected = partial_width(size, level as u8);
            if hashes.len() != expected {
                return Err(Error::TileWidthMismatch {
                    level: level as u8,
                    index: partial_tile_index(size, level as u8),
                    expected,
                    got: hashes.len(),
                });
            }
        }
        // Highest level first; within a level, the binary decomposition of its width.
        let mut frontier = Vec::with_capacity(size.count_ones() as usize);
        for hashes in partial_tiles.iter().rev() {
            let mut offset = 0;
            for bit in (0..TILE_HEIGHT).rev() {
                let count = 1usize << bit;
                if hashes.len() & count != 0 {
                    frontier.push(complete_subtree_root(&hashes[offset..offset + count]));
                    offset += count;
                }
            }
        }
        let edge = RightEdge {
            size,
            frontier,
            partial_tiles,
        };
        edge.assert_invariants();
        Ok(edge)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the complete subtrees that make up the tree, largest (leftmost) first.
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }

    /// The partial tiles, indexed by level (a level whose partial tile is empty has no hashes).
    pub fn partial_tiles(&self) -> &[Vec<Hash>] {
        &self.partial_tiles
    }

    /// The root of the tree: the frontier folded from the right.
    pub fn root(&self) -> Hash {
        if self.frontier.is_empty() {
            return empty_root();
        }
        fold_pieces(&self.frontier)
    }

    /// Appends `leaf_hashes` (already hashed with [`crate::leaf_hash`]) and returns the grown
    /// tree's edge and root with the tiles to store. `self` is left as it was, so a failed write
    /// of the tiles can simply be retried from the same edge.
    pub fn append(&self, leaf_hashes: &[Hash]) -> Result<Appended> {
        if leaf_hashes.len() > APPEND_LEAVES_MAX {
            return Err(Error::BatchTooLarge {
                leaves: leaf_hashes.len(),
            });
        }
        let new_size = self.size + leaf_hashes.len() as u64;
        if new_size > TREE_SIZE_MAX {
            return Err(Error::TreeTooLarge { size: new_size });
        }
        self.assert_invariants();
        let mut edge = self.clone();
        let mut tiles = Vec::new();
        let mut levels_touched = 0u32;
        for leaf in leaf_hashes {
            let n = edge.size;
            edge.push_tile_entry(0, n, *leaf, &mut tiles);
            levels_touched |= 1;
            let mut hash = *leaf;
            for height in 1..=n.trailing_ones() {
                let left = edge
                    .frontier
                    .pop()
                    .expect("a frontier root per set bit of the size");
                hash = node_hash(&left, &hash);
                if height % TILE_HEIGHT == 0 {
                    let level = (height / TILE_HEIGHT) as u8;
                    edge.push_tile_entry(level, ((n + 1) >> height) - 1, hash, &mut tiles);
                    levels_touched |= 1 << level;
                }
            }
            edge.frontier.push(hash);
            edge.size = n + 1;
        }
        for (level, hashes) in edge.partial_tiles.iter().enumerate() {
            if levels_touched & (1 << level) != 0 && !hashes.is_empty() {
                let index = partial_tile_index(new_size, level as u8);
                let tile = Tile::new(level as u8, index, hashes.len() as u16)?;
                tiles.push(TileWrite {
                    tile,
                    hashes: hashes.clone(),
                });
            }
        }
        edge.assert_invariants();
        let root = edge.root();
        Ok(Appended { edge, root, tiles })
    }

    /// Adds the hash at `entry_index` of tile level `level`; a tile that fills up is emitted.
    fn push_tile_entry(
        &mut self,
        level: u8,
        entry_index: u64,
        hash: Hash,
        tiles: &mut Vec<TileWrite>,
    ) {
        let level_slot = usize::from(level);
        if self.partial_tiles.len() == level_slot {
            self.partial_tiles
                .push(Vec::with_capacity(usize::from(TILE_WIDTH)));
        }
        let partial = &mut self.partial_tiles[level_slot];
        assert_eq!(
            partial.len() as u64,
            entry_index % u64::from(TILE_WIDTH),
            "tile entries arrive in order"
        );
        partial.push(hash);
        if partial.len() == usize::from(TILE_WIDTH) {
            let tile = Tile::new(level, entry_index >> TILE_HEIGHT, TILE_WIDTH)
                .expect("tile of an appended entry");
            let hashes = std::mem::replace(partial, Vec::with_capacity(usize::from(TILE_WIDTH)));
            tiles.push(TileWrite { tile, hashes });
        }
    }

    fn assert_invariants(&self) {
        assert_eq!(self.frontier.len(), self.size.count_ones() as usize);
        assert_eq!(
            self.partial_tiles.len(),
            usize::from(levels_in_tree(self.size))
        );
        for (level, hashes) in self.partial_tiles.iter().enumerate() {
            assert_eq!(hashes.len(), partial_width(self.size, level as u8));
        }
    }
}

/// How many tile levels a tree of `size` leaves has hashes at.
fn levels_in_tree(size: u64) -> u8 {
    let mut levels = 0;
    while levels <= crate::TILE_LEVEL_MAX && size >> (TILE_HEIGHT * u32::from(levels)) > 0 {
        levels += 1;
    }
    levels
}

/// The index of the partial tile at `level` of a tree of `size` leaves. At level 7 the shift is
/// 64 bits, which `>>` does not allow; every tree fits in tile 0 there.
fn partial_tile_index(size: u64, level: u8) -> u64 {
    size.checked_shr(TILE_HEIGHT * (u32::from(level) + 1))
        .unwrap_or(0)
}

/// Hashes in the partial tile at `level` of a tree of `size` leaves.
fn partial_width(size: u64, level: u8) -> usize {
    ((size >> (TILE_HEIGHT * u32::from(level))) % u64::from(TILE_WIDTH)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::node_hash_counter;
    use crate::leaf_hash;

    fn leaves(range: std::ops::Range<u64>) -> Vec<Hash> {
        range.map(|index| leaf_hash(&index.to_be_bytes())).collect()
    }

    /// The appender's hashing budget: exactly B + popcount(n) - 1 node hashes for B leaves
    /// appended to a tree of n leaves (at most B + 62). This is what makes 8,190 leaves cost about 2 x 8,190 SHA-256 calls.
    #[test]
    fn append_costs_one_node_hash_per_leaf_plus_the_edge() {
        for start in [0u64, 1, 255, 256, 70_000, 131_071] {
            // Grow the starting tree through real appends so its edge is genuine.
            let mut edge = RightEdge::empty();
            for chunk in leaves(0..start).chunks(8190) {
                edge = edge.append(chunk).unwrap().edge;
            }
            assert_eq!(edge.size(), start);
            let batch = leaves(start..start + 8190);
            let before = node_hash_counter::read();
            let appended = edge.append(&batch).unwrap();
            let spent = node_hash_counter::read() - before;
            let expected = 8190 + u64::from(start.count_ones()) - 1;
            assert_eq!(
                spent, expected,
                "start {start}: node hashes spent on 8,190 leaves"
            );
            assert_eq!(appended.edge.size(), start + 8190);
        }
    }

    /// The highest tile level: a tree one leaf short of 2^56 has seven partial tiles of 255
    /// hashes; one more leaf completes all of them and starts level 7.
    #[test]
    fn appending_reaches_the_top_tile_level() {
        let size = (1u64 << 56) - 1;
        let partial_tiles: Vec<Vec<Hash>> = (0..7u64)
            .map(|level| leaves(level * 1000..level * 1000 + 255))
            .collect();
        let edge = RightEdge::from_partial_tiles(size, partial_tiles).unwrap();
        assert_eq!(edge.frontier().len(), 56);
        let appended = edge.append(&leaves(9999..10_000)).unwrap();
        let full: Vec<(u8, u64)> = appended
            .tiles
            .iter()
            .filter(|write| write.tile.is_full())
            .map(|w| (w.tile.level(), w.tile.index()))
            .collect();
        let expected: Vec<(u8, u64)> = (0..7u8)
            .map(|level| (level, (1u64 << (56 - 8 * u32::from(level) - 8)) - 1))
            .collect();
        assert_eq!(full, expected);
        let top = appended.tiles.last().unwrap();
        assert_eq!(
            (top.tile.level(), top.tile.index(), top.tile.width()),
            (7, 0, 1)
        );
        assert_eq!(appended.root, top.hashes[0]);
        assert_eq!(appended.edge.frontier(), &[appended.root]);

        let largest: Vec<Vec<Hash>> = (0..8u64)
            .map(|level| leaves(0..if level == 7 { 127 } else { 255 }))
            .collect();
        let edge = RightEdge::from_partial_tiles(TREE_SIZE_MAX, largest).unwrap();
        assert_eq!(edge.frontier().len(), 63);
        assert!(matches!(
            edge.append(&leaves(0..1)),
            Err(Error::TreeTooLarge { .. })
        ));
    }

    #[test]
    fn the_leftover_partial_tile_invariant_is_checked() {
        let too_few = RightEdge::from_partial_tiles(3, vec![leaves(0..2)]);
        assert!(matches!(
            too_few,
            Err(Error::TileWidthMismatch {
                level: 0,
                expected: 3,
                got: 2,
                ..
            })
        ));
        let missing_level = RightEdge::from_partial_tiles(256, vec![Vec::new()]);
        assert!(matches!(missing_level, Err(Error::InvalidTile { .. })));
    }
}
