//! Property tests of proof generation and verification against the reference model.
//!
//! A note on sizes: RFC 9162 verification binds a proof to the leaf, its index and the root,
//! but not fully to the tree size — e.g. a proof of leaf 0 in a tree of 5 leaves also verifies
//! as leaf 0 of a tree of 7 under the same root, because both paths hash the same way. The
//! checkpoint binds size and root together (see `receipts.rs`, where every altered size fails).
//! Here, for altered sizes, the crate's RFC algorithm must agree exactly with the reference's
//! evaluation of the recursive definitions; every other alteration must fail outright.

use proptest::prelude::*;
use trustlog::{consistency_proof, inclusion_proof, verify_consistency, verify_inclusion, Hash};

use crate::reference::{self, MemoryTree};

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut flipped = *hash;
    flipped[(bit / 8) % 32] ^= 1 << (bit % 8);
    flipped
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    }
}

/// (seed, size, index): trees up to 600 leaves, sizes near powers of two more often.
fn tree_and_index() -> impl Strategy<Value = (u64, u64, u64)> {
    let size = prop_oneof![
        1u64..=600,
        (0u32..10).prop_flat_map(|power| ((1u64 << power) - 1)..=((1u64 << power) + 1))
    ];
    (
        any::<u64>(),
        size.prop_filter("non-empty", |size| *size > 0),
    )
        .prop_flat_map(|(seed, size)| (Just(seed), Just(size), 0..size))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn inclusion_proofs_verify_and_every_alteration_is_caught(
        (seed, size, index) in tree_and_index(),
        bits in proptest::collection::vec(0usize..256, 64),
    ) {
        let leaves = reference::leaves(seed, size);
        let root = reference::mth(&leaves);
        let leaf = leaves[index as usize];
        let proof = inclusion_proof(index, size, &MemoryTree(leaves.clone())).unwrap();
        prop_assert_eq!(&proof, &reference::path(index as usize, &leaves));
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_ok());

        for element in 0..proof.len() {
            let mut altered = proof.clone();
            altered[element] = flip(&altered[element], bits[element]);
            prop_assert!(verify_inclusion(&leaf, index, size, &altered, &root).is_err(), "proof[{}] altered", element);
        }
        prop_assert!(verify_inclusion(&flip(&leaf, bits[62]), index, size, &proof, &root).is_err(), "leaf altered");
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &flip(&root, bits[63])).is_err(), "root altered");
        if !proof.is_empty() {
            prop_assert!(verify_inclusion(&leaf, index, size, &proof[1..], &root).is_err(), "element dropped");
        }
        prop_assert!(verify_inclusion(&leaf, index, size, &[proof.clone(), vec![root]].concat(), &root).is_err());

        for bit in 0..64 {
            let altered_index = index ^ (1 << bit);
            prop_assert!(
                verify_inclusion(&leaf, altered_index, size, &proof, &root).is_err(),
                "index {} accepted for a proof of {}", altered_index, index
            );
            let altered_size = size ^ (1 << bit);
            let accepted = verify_inclusion(&leaf, index, altered_size, &proof, &root).is_ok();
            let by_definition = reference::root_from_path(leaf, index, altered_size, &proof) == Some(root);
            prop_assert_eq!(accepted, by_definition, "size {} for a proof in {}", altered_size, size);
        }
    }

    #[test]
    fn consistency_proofs_verify_and_every_alteration_is_caught(
        (seed, new_size, old_size) in tree_and_index().prop_map(|(seed, size, index)| (seed, size, index + 1)),
        bits in proptest::collection::vec(0usize..256, 66),
    ) {
        let leaves = reference::leaves(seed, new_size);
        let old_root = reference::mth(&leaves[..old_size as usize]);
        let new_root = reference::mth(&leaves);
        let proof = consistency_proof(old_size, new_size, &MemoryTree(leaves.clone())).unwrap();
        prop_assert_eq!(&proof, &reference::consistency(old_size as usize, &leaves));
        prop_assert!(verify_consistency(old_size, new_size, &old_root, &new_root, &proof).is_ok());
        prop_assert!(reference::consistency_holds(old_size, new_size, &proof, &old_root, &new_root));

        for element in 0..proof.len() {
            let mut altered = proof.clone();
            altered[element] = flip(&altered[element], bits[element]);
            prop_assert!(
                verify_consistency(old_size, new_size, &old_root, &new_root, &altered).is_err(),
                "proof[{}] altered", element
            );
        }
        let altered_old_root = flip(&old_root, bits[64]);
        let altered_new_root = flip(&new_root, bits[65]);
        prop_assert!(verify_consistency(old_size, new_size, &altered_old_root, &new_root, &proof).is_err());
        prop_assert!(verify_consistency(old_size, new_size, &old_root, &altered_new_root, &proof).is_err());
        if !proof.is_empty() {
            prop_assert!(verify_consistency(old_size, new_size, &old_root, &new_root, &proof[1..]).is_err());
            let truncated = &proof[..proof.len() - 1];
            prop_assert!(verify_consistency(old_size, new_size, &old_root, &new_root, truncated).is_err());
        }

        for bit in 0..64 {
            let altered_old = old_size ^ (1 << bit);
            prop_assert!(
                verify_consistency(altered_old, new_size, &old_root, &new_root, &proof).is_err(),
                "old size {} accepted for a proof from {}", altered_old, old_size
            );
            let altered_new = new_size ^ (1 << bit);
            let accepted = verify_consistency(old_size, altered_new, &old_root, &new_root, &proof).is_ok();
            let by_definition = reference::consistency_holds(old_size, altered_new, &proof, &old_root, &new_root);
            prop_assert_eq!(accepted, by_definition, "new size {} for a proof to {}", altered_new, new_size);
        }
    }
}
