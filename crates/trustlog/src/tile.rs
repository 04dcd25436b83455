//! C2SP tlog-tiles with tiles of height 8: coordinates, paths, the [`TileReader`] the store
//! implements, a [`HashReader`] over tiles, tile bytes and entry bundles.
//!
//! The tile at level `L`, index `N` holds up to 256 consecutive hashes at tree height `8 * L`:
//! entry `i` is `MTH(D[(N * 256 + i) * 256^L : (N * 256 + i + 1) * 256^L])`. Level 0 tiles hold
//! leaf hashes. A tile with fewer than 256 hashes is partial; its first `W` hashes never change as
//! it grows, so a narrower partial tile is always a prefix of any wider version of it.

use std::collections::BTreeMap;

use crate::hash::{Hash, HASH_BYTES};
use crate::proof::{HashReader, NodeId};
use crate::{Error, Result, LEAF_BYTES_MAX, TREE_SIZE_MAX};

/// Tree levels per tile (tlog-tiles fixes this at 8).
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u16 = 1 << TILE_HEIGHT;
/// Bytes in a full tile.
pub const TILE_BYTES_MAX: usize = TILE_WIDTH as usize * HASH_BYTES;
/// The highest tile level a tree of at most [`TREE_SIZE_MAX`] leaves reaches.
pub const TILE_LEVEL_MAX: u8 = 7;

const _: () = assert!((TREE_SIZE_MAX >> (TILE_HEIGHT * TILE_LEVEL_MAX as u32)) > 0);
const _: () = assert!((TREE_SIZE_MAX as u128 >> (TILE_HEIGHT * (TILE_LEVEL_MAX as u32 + 1))) == 0);
const _: () = assert!(TILE_BYTES_MAX == 8192);

/// The coordinates of a tile: level, index within the level, and width (1..=256 hashes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tile {
    level: u8,
    index: u64,
    width: u16,
}

impl Tile {
    /// A tile with checked coordinates.
    pub fn new(level: u8, index: u64, width: u16) -> Result<Tile> {
        if level > TILE_LEVEL_MAX {
            return Err(Error::InvalidTile {
                reason: "level exceeds the highest level a tree can reach",
            });
        }
        if width == 0 || width > TILE_WIDTH {
            return Err(Error::InvalidTile {
                reason: "width must be between 1 and 256",
            });
        }
        let tiles_at_level_max = TREE_SIZE_MAX
            .checked_shr(TILE_HEIGHT * (u32::from(level) + 1))
            .unwrap_or(0);
        if index > tiles_at_level_max {
            return Err(Error::InvalidTile {
                reason: "index is beyond the largest tree",
            });
        }
        Ok(Tile {
            level,
            index,
            width,
        })
    }

    /// The tile at `level`, `index` as it is in the tree of `tree_size` leaves, or `None` when
    /// that tree has no hash in it yet.
    pub fn in_tree(level: u8, index: u64, tree_size: u64) -> Option<Tile> {
        if level > TILE_LEVEL_MAX || tree_size > TREE_SIZE_MAX {
            return None;
        }
        let entries = tree_size >> (TILE_HEIGHT * u32::from(level));
        let start = index.checked_mul(u64::from(TILE_WIDTH))?;
        let width = entries.checked_sub(start)?.min(u64::from(TILE_WIDTH));
        if width == 0 {
            return None;
        }
        Some(Tile {
            level,
            index,
            width: width as u16,
        })
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    /// A full tile holds 256 hashes and never changes once written.
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The tile's path, `tile/<L>/<N>[.p/<W>]`, e.g. `tile/0/x001/x234/067.p/8`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.index_and_width_path())
    }

    /// The path of the entry bundle that matches this level 0 tile, `tile/entries/<N>[.p/<W>]`.
    pub fn entries_path(&self) -> Result<String> {
        if self.level != 0 {
            return Err(Error::InvalidTile {
                reason: "only level 0 tiles have entry bundles",
            });
        }
        Ok(format!("tile/entries/{}", self.index_and_width_path()))
    }

    fn index_and_width_path(&self) -> String {
        let mut path = index_path(self.index);
        if !self.is_full() {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }

    /// Parses a hash tile path `tile/<L>/<N>[.p/<W>]`, accepting only the canonical form.
    pub fn parse_path(path: &str) -> Result<Tile> {
        let invalid = |reason| Error::InvalidTilePath {
            path: path.to_owned(),
            reason,
        };
        let rest = path
            .strip_prefix("tile/")
            .ok_or_else(|| invalid("does not start with tile/"))?;
        let (level_text, rest) = rest
            .split_once('/')
            .ok_or_else(|| invalid("missing level"))?;
        let level =
            parse_decimal(level_text).ok_or_else(|| invalid("level is not a canonical decimal"))?;
        let level = u8::try_from(level).map_err(|_| invalid("level is too large"))?;
        let tile = parse_index_and_width(rest, level).map_err(invalid)?;
        if tile.path() != path {
            return Err(invalid("not in canonical form"));
        }
        Ok(tile)
    }

    /// Parses an entry bundle path `tile/entries/<N>[.p/<W>]` into its level 0 tile.
    pub fn parse_entries_path(path: &str) -> Result<Tile> {
        let invalid = |reason| Error::InvalidTilePath {
            path: path.to_owned(),
            reason,
        };
        let rest = path
            .strip_prefix("tile/entries/")
            .ok_or_else(|| invalid("does not start with tile/entries/"))?;
        let tile = parse_index_and_width(rest, 0).map_err(invalid)?;
        if tile.entries_path().ok().as_deref() != Some(path) {
            return Err(invalid("not in canonical form"));
        }
        Ok(tile)
    }
}

/// `<N>` as zero-padded 3-digit elements, all but the last prefixed with `x`: 1234067 is
/// `x001/x234/067`.
fn index_path(index: u64) -> String {
    let mut groups = Vec::new();
    let mut rest = index;
    loop {
        groups.push(rest % 1000);
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(position, group)| {
            if position < last {
                format!("x{group:03}")
            } else {
                format!("{group:03}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// An ASCII decimal with no leading zeroes (and no sign), or `None`.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty()
        || !text.bytes().all(|byte| byte.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

fn parse_index_and_width(text: &str, level: u8) -> Result<Tile, &'static str> {
    let (index_text, width) = match text.split_once(".p/") {
        Some((index_text, width_text)) => {
            let width = parse_decimal(width_text).ok_or("width is not a canonical decimal")?;
            if !(1..u64::from(TILE_WIDTH)).contains(&width) {
                return Err("partial width must be between 1 and 255");
            }
            (index_text, width as u16)
        }
        None => (text, TILE_WIDTH),
    };
    let elements: Vec<&str> = index_text.split('/').collect();
    if elements.len() > 7 {
        return Err("index has too many elements");
    }
    let mut index: u64 = 0;
    let last = elements.len() - 1;
    for (position, element) in elements.iter().enumerate() {
        let digits = if position < last {
            element
                .strip_prefix('x')
                .ok_or("all but the last index element start with x")?
        } else {
            element
        };
        if digits.len() != 3 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err("index elements have three digits");
        }
        let group: u64 = digits
            .parse()
            .map_err(|_| "index elements have three digits")?;
        index = index
            .checked_mul(1000)
            .and_then(|value| value.checked_add(group))
            .ok_or("index is too large")?;
    }
    Tile::new(level, index, width).map_err(|error| match error {
        Error::InvalidTile { reason } => reason,
        _ => "invalid tile",
    })
}

/// Reads stored tiles. The store implements this over its tables.
///
/// Contract: return exactly the first `width` hashes of tile (`level`, `index`). Because a tile
/// only ever grows at its end, the store may serve them from the full tile or from any stored
/// partial version at least `width` wide. Proofs for older tree sizes rely on this.
pub trait TileReader {
    fn read_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>>;
}

impl<R: TileReader + ?Sized> TileReader for &R {
    fn read_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>> {
        (**self).read_tile(level, index, width)
    }
}

/// A [`HashReader`] for the tree of `tree_size` leaves that computes any complete subtree hash
/// from tiles. A subtree at height `h` is the root of `2^(h mod 8)` consecutive hashes of one tile
/// at level `h / 8`, so one call reads each tile it needs once.
pub struct TileHashReader<'a, R: TileReader + ?Sized> {
    tree_size: u64,
    tiles: &'a R,
}

impl<R: TileReader + ?Sized> std::fmt::Debug for TileHashReader<'_, R> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TileHashReader")
            .field("tree_size", &self.tree_size)
            .finish_non_exhaustive()
    }
}

impl<'a, R: TileReader + ?Sized> TileHashReader<'a, R> {
    pub fn new(tree_size: u64, tiles: &'a R) -> Result<Self> {
        if tree_size > TREE_SIZE_MAX {
            return Err(Error::TreeTooLarge { size: tree_size });
        }
        Ok(TileHashReader { tree_size, tiles })
    }

    pub fn tree_size(&self) -> u64 {
        self.tree_size
    }
}

impl<R: TileReader + ?Sized> HashReader for TileHashReader<'_, R> {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>> {
        let mut tiles: BTreeMap<(u8, u64), Vec<Hash>> = BTreeMap::new();
        let mut hashes = Vec::with_capacity(nodes.len());
        for node in nodes {
            let outside = || Error::NodeOutsideTree {
                level: node.level,
                index: node.index,
                tree_size: self.tree_size,
            };
            if u32::from(node.level) >= u64::BITS || node.end() > u128::from(self.tree_size) {
                return Err(outside());
            }
            let level = (u32::from(node.level) / TILE_HEIGHT) as u8;
            let height_in_tile = u32::from(node.level) % TILE_HEIGHT;
            let first_entry = node.index << height_in_tile;
            let tile_index = first_entry >> TILE_HEIGHT;
            let offset = (first_entry % u64::from(TILE_WIDTH)) as usize;
            let count = 1usize << height_in_tile;
            let tile = Tile::in_tree(level, tile_index, self.tree_size).ok_or_else(outside)?;
            let entries = match tiles.entry((level, tile_index)) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    let read = self.tiles.read_tile(level, tile_index, tile.width())?;
                    if read.len() != usize::from(tile.width()) {
                        return Err(Error::TileWidthMismatch {
                            level,
                            index: tile_index,
                            expected: usize::from(tile.width()),
                            got: read.len(),
                        });
                    }
                    entry.insert(read)
                }
            };
            let group = entries.get(offset..offset + count).ok_or_else(outside)?;
            hashes.push(complete_subtree_root(group));
        }
        Ok(hashes)
    }
}

/// The root of a complete subtree given its `2^k` bottom hashes, left to right.
pub(crate) fn complete_subtree_root(bottom: &[Hash]) -> Hash {
    assert!(bottom.len().is_power_of_two());
    if bottom.len() == 1 {
        return bottom[0];
    }
    let mut level: Vec<Hash> = bottom
        .chunks_exact(2)
        .map(|pair| crate::node_hash(&pair[0], &pair[1]))
        .collect();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| crate::node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level[0]
}

/// The bytes of a tile: its hashes concatenated (8,192 bytes for a full tile).
pub fn encode_tile(hashes: &[Hash]) -> Vec<u8> {
    assert!(hashes.len() <= usize::from(TILE_WIDTH));
    hashes.concat()
}

/// Parses tile bytes that must hold exactly `width` hashes.
pub fn decode_tile(bytes: &[u8], width: u16) -> Result<Vec<Hash>> {
    if width == 0 || width > TILE_WIDTH {
        return Err(Error::InvalidTile {
            reason: "width must be between 1 and 256",
        });
    }
    if bytes.len() != usize::from(width) * HASH_BYTES {
        return Err(Error::InvalidTile {
            reason: "byte length is not width times 32",
        });
    }
    Ok(bytes
        .chunks_exact(HASH_BYTES)
        .map(|chunk| chunk.try_into().expect("32-byte chunk"))
        .collect())
}

/// An entry bundle: each entry as a big-endian u16 length followed by its bytes.
pub fn encode_entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>> {
    if entries.is_empty() || entries.len() > usize::from(TILE_WIDTH) {
        return Err(Error::InvalidEntryBundle {
            reason: "a bundle holds 1 to 256 entries",
        });
    }
    let mut bundle = Vec::new();
    for entry in entries {
        let entry = entry.as_ref();
        if entry.len() > LEAF_BYTES_MAX {
            return Err(Error::LeafTooLarge { bytes: entry.len() });
        }
        bundle.extend_from_slice(&(entry.len() as u16).to_be_bytes());
        bundle.extend_from_slice(entry);
    }
    Ok(bundle)
}

/// Parses an entry bundle that must hold exactly `width` entries.
pub fn decode_entry_bundle(bytes: &[u8], width: u16) -> Result<Vec<Vec<u8>>> {
    if width == 0 || width > TILE_WIDTH {
        return Err(Error::InvalidEntryBundle {
            reason: "width must be between 1 and 256",
        });
    }
    let mut entries = Vec::with_capacity(usize::from(width));
    let mut rest = bytes;
    while !rest.is_empty() {
        if entries.len() == usize::from(width) {
            return Err(Error::InvalidEntryBundle {
                reason: "more entries than the width",
            });
        }
        let (length, after) = rest
            .split_first_chunk::<2>()
            .ok_or(Error::InvalidEntryBundle {
                reason: "truncated length",
            })?;
        let length = usize::from(u16::from_be_bytes(*length));
        let entry = after.get(..length).ok_or(Error::InvalidEntryBundle {
            reason: "truncated entry",
        })?;
        entries.push(entry.to_vec());
        rest = &after[length..];
    }
    if entries.len() != usize::from(width) {
        return Err(Error::InvalidEntryBundle {
            reason: "fewer entries than the width",
        });
    }
    Ok(entries)
}
