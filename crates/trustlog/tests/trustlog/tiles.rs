//! Tiles: paths, the spec's worked example, the appender against tiles built from scratch, and
//! proofs from tiles against proofs from the full list of leaves.

use proptest::prelude::*;
use trustlog::{
    consistency_proof, decode_entry_bundle, decode_tile, encode_entry_bundle, encode_tile,
    inclusion_proof, leaf_hash, tree_hash, verify_consistency, verify_inclusion, Error, Hash,
    RightEdge, Tile, TileHashReader, TileReader,
};

use crate::reference::{self, build_log, MemoryTiles};

#[test]
fn tile_paths_follow_tlog_tiles() {
    assert_eq!(
        Tile::new(0, 1_234_067, 256).unwrap().path(),
        "tile/0/x001/x234/067"
    );
    assert_eq!(Tile::new(0, 0, 256).unwrap().path(), "tile/0/000");
    assert_eq!(Tile::new(1, 999, 256).unwrap().path(), "tile/1/999");
    assert_eq!(
        Tile::new(2, 1000, 17).unwrap().path(),
        "tile/2/x001/000.p/17"
    );
    assert_eq!(
        Tile::new(0, 1_234_067, 8).unwrap().entries_path().unwrap(),
        "tile/entries/x001/x234/067.p/8"
    );
    assert_eq!(
        Tile::new(0, 5, 256).unwrap().entries_path().unwrap(),
        "tile/entries/005"
    );
    assert!(Tile::new(1, 5, 256).unwrap().entries_path().is_err());
    assert_eq!(
        Tile::new(0, u64::MAX >> 9, 256).unwrap().path(),
        "tile/0/x036/x028/x797/x018/x963/967"
    );
    assert!(Tile::new(0, (u64::MAX >> 9) + 1, 256).is_err());
    assert!(Tile::new(7, 1, 256).is_err());
    assert!(Tile::new(0, 0, 0).is_err());
    assert!(Tile::new(0, 0, 257).is_err());
}

#[test]
fn tile_paths_parse_back_only_in_canonical_form() {
    for path in [
        "tile/0/000",
        "tile/0/x001/x234/067",
        "tile/3/x001/000.p/255",
        "tile/7/000.p/1",
        "tile/1/999.p/9",
    ] {
        assert_eq!(Tile::parse_path(path).unwrap().path(), path);
    }
    let tile = Tile::parse_path("tile/0/x001/x234/067.p/8").unwrap();
    assert_eq!(
        (tile.level(), tile.index(), tile.width(), tile.is_full()),
        (0, 1_234_067, 8, false)
    );
    assert_eq!(
        Tile::parse_entries_path("tile/entries/x001/x234/067.p/8").unwrap(),
        tile
    );
    for bad in [
        "tile/0/67",
        "tile/0/0067",
        "tile/0/x000/067",
        "tile/0/001/234",
        "tile/00/000",
        "tile/8/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/08",
        "tile/0/000/",
        "tile/0/x1/000",
        "tile/-1/000",
        "tile/entries/000",
        "tiles/0/000",
        "tile/0/000.p/",
        "tile/0/x018/x446/x744/x073/x709/x551/615",
    ] {
        assert!(Tile::parse_path(bad).is_err(), "accepted {bad}");
    }
    assert!(Tile::parse_entries_path("tile/0/000").is_err());
}

/// The worked example of tlog-tiles: "a tree of size 70,000 will be represented by 273 full
/// level 0 tiles, one partial level 0 tile of width 112, one full level 1 tile, one partial
/// level 1 tile of width 17, and one partial level 2 tile of width 1."
#[test]
fn tree_of_70000_has_the_tiles_the_spec_lists() {
    let (leaves, tiles, edge) = build_log(70, 70_000, 8190);
    let count = |level: u8, width: usize| {
        tiles
            .tiles
            .iter()
            .filter(|((l, _), h)| *l == level && h.len() == width)
            .count()
    };
    assert_eq!(count(0, 256), 273);
    assert_eq!(count(0, 112), 1);
    assert_eq!(count(1, 256), 1);
    assert_eq!(count(1, 17), 1);
    assert_eq!(count(2, 1), 1);
    assert_eq!(tiles.tiles.len(), 273 + 1 + 1 + 1 + 1);
    assert_eq!(tiles.tiles, reference::tiles_from_scratch(&leaves));
    assert_eq!(edge.root(), reference::mth(&leaves));
    assert_eq!(RightEdge::from_tiles(70_000, &tiles).unwrap(), edge);

    // A tree of 256 leaves: one full level 0 tile and a partial level 1 tile of width 1.
    let (_, small, _) = build_log(256, 256, 100);
    let widths: Vec<(u8, usize)> = small
        .tiles
        .iter()
        .map(|((level, _), hashes)| (*level, hashes.len()))
        .collect();
    assert_eq!(widths, vec![(0, 256), (1, 1)]);
}

#[test]
fn proofs_from_tiles_read_a_bounded_number_of_tiles() {
    let (leaves, tiles, edge) = build_log(7, 70_000, 8190);
    let root = edge.root();
    let reader = TileHashReader::new(70_000, &tiles).unwrap();
    for index in [0u64, 1, 255, 256, 65_535, 65_536, 69_999, 12_345] {
        tiles.reads.set(0);
        let proof = inclusion_proof(index, 70_000, &reader).unwrap();
        // Three tile levels, at most two tiles each: the leaf's side and the right edge.
        assert!(
            tiles.reads.get() <= 6,
            "{} tile reads for leaf {index}",
            tiles.reads.get()
        );
        verify_inclusion(&leaves[index as usize], index, 70_000, &proof, &root).unwrap();
    }
    assert_eq!(
        inclusion_proof(65_536, 70_000, &reader).unwrap(),
        reference::path(65_536, &leaves)
    );
    tiles.reads.set(0);
    let proof = consistency_proof(12_345, 70_000, &reader).unwrap();
    assert!(
        tiles.reads.get() <= 6,
        "{} tile reads for a consistency proof",
        tiles.reads.get()
    );
    verify_consistency(
        12_345,
        70_000,
        &reference::mth(&leaves[..12_345]),
        &root,
        &proof,
    )
    .unwrap();
}

#[test]
fn tile_reader_failures_are_errors() {
    let (_, tiles, _) = build_log(3, 600, 600);
    // A node beyond the reader's tree size.
    let small = TileHashReader::new(300, &tiles).unwrap();
    assert!(matches!(
        inclusion_proof(400, 600, &small),
        Err(Error::NodeOutsideTree { .. })
    ));
    // A store that lost a tile.
    let mut missing = MemoryTiles {
        tiles: tiles.tiles.clone(),
        ..MemoryTiles::default()
    };
    missing.tiles.remove(&(0, 1));
    let reader = TileHashReader::new(600, &missing).unwrap();
    assert!(matches!(
        inclusion_proof(300, 600, &reader),
        Err(Error::Storage(_))
    ));
    assert!(matches!(
        RightEdge::from_tiles(601, &tiles),
        Err(Error::Storage(_))
    ));
    // A store that returns a tile of the wrong width.
    struct Short<'a>(&'a MemoryTiles);
    impl TileReader for Short<'_> {
        fn read_tile(&self, level: u8, index: u64, width: u16) -> trustlog::Result<Vec<Hash>> {
            let mut hashes = self.0.read_tile(level, index, width)?;
            hashes.pop();
            Ok(hashes)
        }
    }
    let short = Short(&tiles);
    assert!(matches!(
        inclusion_proof(5, 600, &TileHashReader::new(600, &short).unwrap()),
        Err(Error::TileWidthMismatch { .. })
    ));
    assert!(matches!(
        RightEdge::from_tiles(600, &short),
        Err(Error::TileWidthMismatch { .. })
    ));
    assert!(matches!(
        TileHashReader::new(trustlog::TREE_SIZE_MAX + 1, &tiles),
        Err(Error::TreeTooLarge { .. })
    ));
}

#[test]
fn appender_refuses_oversized_batches_and_trees() {
    let too_many = vec![leaf_hash(b"x"); trustlog::APPEND_LEAVES_MAX + 1];
    assert!(matches!(
        RightEdge::empty().append(&too_many),
        Err(Error::BatchTooLarge { .. })
    ));
    let appended = RightEdge::empty().append(&[]).unwrap();
    assert_eq!(appended.edge, RightEdge::empty());
    assert!(appended.tiles.is_empty());
}

#[test]
fn tile_bytes_and_entry_bundles_round_trip() {
    let hashes = reference::leaves(1, 256);
    let bytes = encode_tile(&hashes);
    assert_eq!(bytes.len(), trustlog::TILE_BYTES_MAX);
    assert_eq!(decode_tile(&bytes, 256).unwrap(), hashes);
    assert!(decode_tile(&bytes[..100], 256).is_err());
    assert!(decode_tile(&bytes[..64], 3).is_err());
    assert!(decode_tile(&[], 0).is_err());

    let entries = vec![b"".to_vec(), b"a".to_vec(), vec![7u8; 300]];
    let bundle = encode_entry_bundle(&entries).unwrap();
    assert_eq!(&bundle[..5], &[0, 0, 0, 1, b'a']);
    assert_eq!(decode_entry_bundle(&bundle, 3).unwrap(), entries);
    assert!(decode_entry_bundle(&bundle, 2).is_err());
    assert!(decode_entry_bundle(&bundle, 4).is_err());
    assert!(decode_entry_bundle(&bundle[..bundle.len() - 1], 3).is_err());
    assert!(encode_entry_bundle(&[vec![0u8; trustlog::LEAF_BYTES_MAX + 1]]).is_err());
    assert!(encode_entry_bundle::<Vec<u8>>(&[]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Random batch sizes give the same roots, edges and tiles as building from scratch, and
    /// every write obeys the rules (full tiles once, partial tiles only grow).
    #[test]
    fn appender_in_random_batches_matches_tiles_from_scratch(
        seed in any::<u64>(),
        batches in proptest::collection::vec(prop_oneof![0usize..4, 0usize..300, 250usize..800], 1..8),
    ) {
        let total: usize = batches.iter().sum();
        let leaves = reference::leaves(seed, total as u64);
        let mut tiles = MemoryTiles::default();
        let mut edge = RightEdge::empty();
        let mut size = 0usize;
        for batch in &batches {
            let appended = edge.append(&leaves[size..size + batch]).unwrap();
            size += batch;
            tiles.store(&appended.tiles);
            prop_assert_eq!(appended.root, reference::mth(&leaves[..size]));
            prop_assert_eq!(appended.edge.size(), size as u64);
            prop_assert_eq!(&tiles.tiles, &reference::tiles_from_scratch(&leaves[..size]));
            prop_assert_eq!(&RightEdge::from_tiles(size as u64, &tiles).unwrap(), &appended.edge);
            edge = appended.edge;
        }
        let at_once = RightEdge::empty().append(&leaves).unwrap();
        prop_assert_eq!(&at_once.edge, &edge);
    }

    /// Proofs and roots read from tiles equal those from the full list of leaves, for the
    /// current size and for older sizes (whose partial tiles are prefixes of the stored ones).
    #[test]
    fn proofs_from_tiles_equal_proofs_from_leaves(
        seed in any::<u64>(),
        total in 1u64..1500,
        batch in 1usize..700,
        picks in proptest::collection::vec((any::<u64>(), any::<u64>()), 4),
    ) {
        let (leaves, tiles, _) = build_log(seed, total, batch);
        for (first, second) in picks {
            let size = 1 + second % total;
            let index = first % size;
            let reader = TileHashReader::new(size, &tiles).unwrap();
            prop_assert_eq!(tree_hash(size, &reader).unwrap(), reference::mth(&leaves[..size as usize]));
            prop_assert_eq!(
                inclusion_proof(index, size, &reader).unwrap(),
                reference::path(index as usize, &leaves[..size as usize])
            );
            prop_assert_eq!(
                consistency_proof(index, size, &reader).unwrap(),
                reference::consistency(index as usize, &leaves[..size as usize])
            );
        }
    }
}
