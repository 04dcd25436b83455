//! Receipts: built from tiles and a signed checkpoint, verified offline with the public key.

use proptest::prelude::*;
use trustlog::{
    inclusion_proof, sign_note, verify_receipt, Checkpoint, Error, Hash, NoteSigner, Receipt,
    TileHashReader,
};

use crate::reference::{self, build_log};

const SEED: u64 = 99;

fn signer() -> NoteSigner {
    NoteSigner::from_seed("tally.example/log", &[42; 32]).unwrap()
}

/// A receipt for leaf `index` of a log of `size` leaves, as the server would assemble it.
fn receipt(index: u64, size: u64) -> Receipt {
    let (_, tiles, edge) = build_log(SEED, size, 1000);
    let checkpoint = Checkpoint::new("tally.example/log", size, edge.root(), Vec::new()).unwrap();
    let note = sign_note(&checkpoint.to_body(), &signer()).unwrap();
    let path = inclusion_proof(index, size, &TileHashReader::new(size, &tiles).unwrap()).unwrap();
    Receipt {
        leaf: reference::leaf_data(SEED, index),
        leaf_index: index,
        tree_size: size,
        inclusion_path: path,
        checkpoint: note,
    }
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut flipped = *hash;
    flipped[bit / 8] ^= 1 << (bit % 8);
    flipped
}

#[test]
fn a_receipt_verifies_offline_with_the_public_key() {
    let receipt = receipt(1234, 3000);
    let checkpoint = verify_receipt(&receipt, &signer().verifier_key_text()).unwrap();
    assert_eq!(checkpoint.size(), 3000);
    assert_eq!(checkpoint.origin(), "tally.example/log");
}

#[test]
fn a_receipt_under_another_key_or_with_another_checkpoint_is_refused() {
    let receipt = receipt(10, 300);
    let other = NoteSigner::from_seed("tally.example/log", &[43; 32]).unwrap();
    assert!(matches!(
        verify_receipt(&receipt, &other.verifier_key_text()),
        Err(Error::NoVerifiedSignature)
    ));

    // A checkpoint for another size, correctly signed, does not fit the receipt's size.
    let mut resized = receipt.clone();
    resized.tree_size = 301;
    assert!(matches!(
        verify_receipt(&resized, &signer().verifier_key_text()),
        Err(Error::ReceiptSizeMismatch { .. })
    ));

    // A correctly signed checkpoint with another root.
    let mut rerooted = receipt.clone();
    let fake = Checkpoint::new("tally.example/log", 300, [9; 32], Vec::new()).unwrap();
    rerooted.checkpoint = sign_note(&fake.to_body(), &signer()).unwrap();
    assert!(matches!(
        verify_receipt(&rerooted, &signer().verifier_key_text()),
        Err(Error::RootMismatch)
    ));

    let mut oversized = receipt.clone();
    oversized.leaf = vec![0; trustlog::LEAF_BYTES_MAX + 1];
    assert!(matches!(
        verify_receipt(&oversized, &signer().verifier_key_text()),
        Err(Error::LeafTooLarge { .. })
    ));
    let mut unsigned = receipt;
    unsigned.checkpoint = Checkpoint::new("tally.example/log", 300, [9; 32], Vec::new())
        .unwrap()
        .to_body();
    assert!(matches!(
        verify_receipt(&unsigned, &signer().verifier_key_text()),
        Err(Error::MalformedNote { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Every single-bit change of the leaf, the index, the size, the path or the signed
    /// checkpoint makes the receipt fail — including sizes, which the checkpoint binds.
    #[test]
    fn every_single_bit_change_to_a_receipt_is_caught(
        (size, index) in (1u64..700).prop_flat_map(|size| (Just(size), 0..size)),
        bits in proptest::collection::vec(0usize..256, 64),
        byte in any::<prop::sample::Index>(),
        note_bit in 0u8..8,
    ) {
        let receipt = receipt(index, size);
        let key_text = signer().verifier_key_text();
        prop_assert!(verify_receipt(&receipt, &key_text).is_ok());

        for bit in 0..receipt.leaf.len() * 8 {
            let mut altered = receipt.clone();
            altered.leaf[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_receipt(&altered, &key_text).is_err(), "leaf bit {}", bit);
        }
        for bit in 0..64 {
            let mut altered = receipt.clone();
            altered.leaf_index ^= 1 << bit;
            prop_assert!(verify_receipt(&altered, &key_text).is_err(), "index bit {}", bit);
            let mut altered = receipt.clone();
            altered.tree_size ^= 1 << bit;
            prop_assert!(verify_receipt(&altered, &key_text).is_err(), "size bit {}", bit);
        }
        for (element, bit) in bits.iter().enumerate().take(receipt.inclusion_path.len()) {
            let mut altered = receipt.clone();
            altered.inclusion_path[element] = flip(&altered.inclusion_path[element], *bit);
            prop_assert!(verify_receipt(&altered, &key_text).is_err(), "path[{}]", element);
        }
        let mut note = receipt.checkpoint.clone().into_bytes();
        let at = byte.index(note.len());
        note[at] ^= 1 << note_bit;
        if let Ok(altered_note) = String::from_utf8(note) {
            let mut altered = receipt.clone();
            altered.checkpoint = altered_note;
            prop_assert!(verify_receipt(&altered, &key_text).is_err(), "checkpoint byte {} bit {}", at, note_bit);
        }
    }
}
