//! Hash maps keyed by ledger ids.
//!
//! Ids are chosen by clients but are not attacker-controlled hash-flooding inputs in the core:
//! the maps live for one batch (or as the sequencer's account cache, bounded by the number of
//! accounts), so a fast multiplicative hash is used instead of SipHash.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Fold the high bits down: HashMap uses the top 7 bits for its control bytes and the
        // low bits for the bucket.
        let mixed = self.0 ^ (self.0 >> 29);
        mixed.wrapping_mul(MULTIPLIER) ^ (mixed >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(MULTIPLIER);
    }

    fn write_u128(&mut self, value: u128) {
        self.write_u64(value as u64);
        self.write_u64((value >> 64) as u64);
    }
}

pub type IdMap<V> = HashMap<u128, V, BuildHasherDefault<IdHasher>>;
pub type IdSet = HashSet<u128, BuildHasherDefault<IdHasher>>;
