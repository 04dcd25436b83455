//! Published vectors: the 8-leaf RFC 6962 test tree used by Certificate Transparency
//! implementations (roots, inclusion and consistency proofs), and the signed-note example of
//! Go's golang.org/x/mod/sumdb/note.

use trustlog::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, sign_note, tree_hash,
    verify_consistency, verify_inclusion, verify_note, Error, Hash, NoteSigner, RightEdge,
    TileHashReader,
};

use crate::reference::{MemoryTiles, MemoryTree};

fn hex(text: &str) -> Hash {
    assert_eq!(text.len(), 64);
    let mut hash = [0u8; 32];
    for (index, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * index..2 * index + 2], 16).unwrap();
    }
    hash
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap())
        .collect()
}

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Roots of the trees of the first 1..=8 leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf index, tree size, proof).
const INCLUSION: [(u64, u64, &[&str]); 4] = [
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 4] = [
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn leaf_hashes() -> Vec<Hash> {
    LEAVES
        .iter()
        .map(|leaf| leaf_hash(&hex_bytes(leaf)))
        .collect()
}

fn root(size: u64) -> Hash {
    hex(ROOTS[size as usize - 1])
}

/// The reference tree's tiles, built by the appender one leaf at a time.
fn reference_tiles() -> MemoryTiles {
    let mut tiles = MemoryTiles::default();
    let mut edge = RightEdge::empty();
    for leaf in leaf_hashes() {
        let appended = edge.append(&[leaf]).unwrap();
        tiles.store(&appended.tiles);
        edge = appended.edge;
    }
    tiles
}

#[test]
fn empty_tree_root_is_sha256_of_nothing() {
    assert_eq!(
        empty_root(),
        hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(RightEdge::empty().root(), empty_root());
    assert_eq!(tree_hash(0, &MemoryTree(Vec::new())).unwrap(), empty_root());
}

#[test]
fn roots_match_the_published_vectors() {
    let leaves = leaf_hashes();
    let tiles = reference_tiles();
    let mut edge = RightEdge::empty();
    for size in 1..=8u64 {
        let appended = edge
            .append(&leaves[size as usize - 1..size as usize])
            .unwrap();
        assert_eq!(appended.root, root(size), "appender root of size {size}");
        edge = appended.edge;
        assert_eq!(
            tree_hash(size, &MemoryTree(leaves.clone())).unwrap(),
            root(size),
            "root of size {size}"
        );
        let from_tiles = tree_hash(size, &TileHashReader::new(size, &tiles).unwrap()).unwrap();
        assert_eq!(from_tiles, root(size), "root of size {size} from tiles");
    }
}

#[test]
fn inclusion_proofs_match_the_published_vectors() {
    let leaves = leaf_hashes();
    let tiles = reference_tiles();
    for (index, size, expected) in INCLUSION {
        let expected: Vec<Hash> = expected.iter().map(|hash| hex(hash)).collect();
        let from_leaves = inclusion_proof(index, size, &MemoryTree(leaves.clone())).unwrap();
        assert_eq!(from_leaves, expected, "proof of {index} in {size}");
        let from_tiles =
            inclusion_proof(index, size, &TileHashReader::new(8, &tiles).unwrap()).unwrap();
        assert_eq!(
            from_tiles, expected,
            "proof of {index} in {size} from tiles"
        );

        let leaf = leaves[index as usize];
        verify_inclusion(&leaf, index, size, &expected, &root(size)).unwrap();

        // Every single-bit change of the proof, the leaf hash or the root is caught.
        for element in 0..expected.len() {
            for bit in 0..256 {
                let mut proof = expected.clone();
                proof[element][bit / 8] ^= 1 << (bit % 8);
                assert!(verify_inclusion(&leaf, index, size, &proof, &root(size)).is_err());
            }
        }
        for bit in 0..256 {
            let (mut bad_leaf, mut bad_root) = (leaf, root(size));
            bad_leaf[bit / 8] ^= 1 << (bit % 8);
            bad_root[bit / 8] ^= 1 << (bit % 8);
            assert!(verify_inclusion(&bad_leaf, index, size, &expected, &root(size)).is_err());
            assert!(verify_inclusion(&leaf, index, size, &expected, &bad_root).is_err());
        }
        // Wrong index, wrong height, garbage before or after, a missing element.
        let probes: Vec<(u64, u64, Vec<Hash>)> = vec![
            (index.wrapping_sub(1), size, expected.clone()),
            (index + 1, size, expected.clone()),
            (index ^ 2, size, expected.clone()),
            (index, size * 2, expected.clone()),
            (index, size / 2, expected.clone()),
            (index, size, [expected.clone(), vec![root(size)]].concat()),
            (index, size, [vec![root(size)], expected.clone()].concat()),
            (index, size, expected[..expected.len() - 1].to_vec()),
        ];
        for (probe_index, probe_size, proof) in probes {
            assert!(
                verify_inclusion(&leaf, probe_index, probe_size, &proof, &root(size)).is_err(),
                "accepted index {probe_index} size {probe_size} for a proof of {index} in {size}"
            );
        }
    }
}

#[test]
fn consistency_proofs_match_the_published_vectors() {
    let leaves = leaf_hashes();
    let tiles = reference_tiles();
    for (old_size, new_size, expected) in CONSISTENCY {
        let expected: Vec<Hash> = expected.iter().map(|hash| hex(hash)).collect();
        let from_leaves =
            consistency_proof(old_size, new_size, &MemoryTree(leaves.clone())).unwrap();
        assert_eq!(from_leaves, expected, "proof from {old_size} to {new_size}");
        let from_tiles =
            consistency_proof(old_size, new_size, &TileHashReader::new(8, &tiles).unwrap())
                .unwrap();
        assert_eq!(
            from_tiles, expected,
            "proof from {old_size} to {new_size} from tiles"
        );

        let (old_root, new_root) = (root(old_size), root(new_size));
        verify_consistency(old_size, new_size, &old_root, &new_root, &expected).unwrap();
        for element in 0..expected.len() {
            for bit in 0..256 {
                let mut proof = expected.clone();
                proof[element][bit / 8] ^= 1 << (bit % 8);
                assert!(
                    verify_consistency(old_size, new_size, &old_root, &new_root, &proof).is_err()
                );
            }
        }
        let probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            (old_size - 1, new_size, old_root, new_root, expected.clone()),
            (old_size + 1, new_size, old_root, new_root, expected.clone()),
            (old_size ^ 2, new_size, old_root, new_root, expected.clone()),
            (old_size, new_size * 2, old_root, new_root, expected.clone()),
            (old_size, new_size / 2, old_root, new_root, expected.clone()),
            (old_size, new_size, new_root, old_root, expected.clone()),
            (old_size, new_size, old_root, new_root, Vec::new()),
            (
                old_size,
                new_size,
                old_root,
                new_root,
                [expected.clone(), vec![old_root]].concat(),
            ),
            (
                old_size,
                new_size,
                old_root,
                new_root,
                [vec![expected[0]], expected.clone()].concat(),
            ),
            (
                old_size,
                new_size,
                old_root,
                new_root,
                expected[..expected.len() - 1].to_vec(),
            ),
        ];
        for (probe_old, probe_new, probe_old_root, probe_new_root, proof) in probes {
            assert!(
                verify_consistency(
                    probe_old,
                    probe_new,
                    &probe_old_root,
                    &probe_new_root,
                    &proof
                )
                .is_err(),
                "accepted {probe_old} -> {probe_new} for a proof from {old_size} to {new_size}"
            );
        }
    }
}

#[test]
fn trivial_consistency_cases() {
    let some_root = root(3);
    // Same size: only equal roots and an empty proof.
    verify_consistency(3, 3, &some_root, &some_root, &[]).unwrap();
    assert!(matches!(
        verify_consistency(3, 3, &some_root, &root(4), &[]),
        Err(Error::RootMismatch)
    ));
    assert!(matches!(
        verify_consistency(3, 3, &some_root, &some_root, &[some_root]),
        Err(Error::ProofNotEmpty)
    ));
    // From the empty tree: empty proof, and the old root must be the empty tree's root.
    verify_consistency(0, 8, &empty_root(), &root(8), &[]).unwrap();
    verify_consistency(0, 0, &empty_root(), &empty_root(), &[]).unwrap();
    assert!(matches!(
        verify_consistency(0, 8, &some_root, &root(8), &[]),
        Err(Error::OldRootMismatch)
    ));
    assert!(matches!(
        verify_consistency(0, 8, &empty_root(), &root(8), &[some_root]),
        Err(Error::ProofNotEmpty)
    ));
    // Going backwards or a missing proof.
    assert!(matches!(
        verify_consistency(2, 1, &root(2), &root(1), &[]),
        Err(Error::OldSizeExceedsNew { .. })
    ));
    assert!(matches!(
        verify_consistency(1, 2, &root(1), &root(2), &[]),
        Err(Error::ConsistencyProofEmpty)
    ));
    let tree = MemoryTree(leaf_hashes());
    assert!(consistency_proof(0, 8, &tree).unwrap().is_empty());
    assert!(consistency_proof(8, 8, &tree).unwrap().is_empty());
    assert!(matches!(
        consistency_proof(5, 4, &tree),
        Err(Error::OldSizeExceedsNew { .. })
    ));
}

#[test]
fn single_leaf_and_out_of_range_inclusion() {
    let leaf = leaf_hash(b"data");
    verify_inclusion(&leaf, 0, 1, &[], &leaf).unwrap();
    assert!(matches!(
        verify_inclusion(&leaf, 0, 1, &[], &empty_root()),
        Err(Error::RootMismatch)
    ));
    for (index, size) in [(0, 0), (1, 1), (2, 1), (1, 0)] {
        assert!(matches!(
            verify_inclusion(&leaf, index, size, &[], &leaf),
            Err(Error::IndexOutOfRange { .. })
        ));
    }
    assert!(matches!(
        inclusion_proof(8, 8, &MemoryTree(leaf_hashes())),
        Err(Error::IndexOutOfRange { .. })
    ));
    let too_long = vec![leaf; trustlog::PROOF_HASHES_MAX + 1];
    assert!(matches!(
        verify_inclusion(&leaf, 0, 8, &too_long, &leaf),
        Err(Error::ProofTooLong { .. })
    ));
    assert!(matches!(
        verify_inclusion(&leaf, 0, trustlog::TREE_SIZE_MAX + 1, &[], &leaf),
        Err(Error::TreeTooLarge { .. })
    ));
}

/// The example of golang.org/x/mod/sumdb/note: Ed25519 is deterministic, so signing the same
/// text with the same seed must reproduce the published note byte for byte.
#[test]
fn signed_note_matches_the_go_sumdb_example() {
    let signer_key =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    let verifier_key = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    let note = "If you think cryptography is the answer to your problem,\n\
                then you don't know what your problem is.\n\
                \n\
                \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    let signer = NoteSigner::from_signer_key_text(signer_key).unwrap();
    assert_eq!(signer.key_id(), 0xc74f20a3);
    assert_eq!(signer.verifier_key_text(), verifier_key);
    assert_eq!(signer.signer_key_text(), signer_key);
    assert_eq!(sign_note(text, &signer).unwrap(), note);

    let verified = verify_note(note, verifier_key).unwrap();
    assert_eq!(verified.text, text);
    assert_eq!(verified.signatures.len(), 1);
    assert_eq!(verified.signatures[0].name, "PeterNeumann");
    assert_eq!(verified.signatures[0].key_id, 0xc74f20a3);
}
