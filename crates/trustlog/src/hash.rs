//! RFC 9162 section 2.1.1 tree hashing: SHA-256 with domain-separation prefixes.

use sha2::{Digest, Sha256};

/// Bytes in one tree hash (SHA-256).
pub const HASH_BYTES: usize = 32;

/// A Merkle tree hash: a leaf hash, an interior node hash or a root.
pub type Hash = [u8; HASH_BYTES];

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// `MTH({d})` = SHA-256(0x00 || d): the hash of one leaf.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// SHA-256(0x01 || left || right): the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    #[cfg(test)]
    node_hash_counter::increment();
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// `MTH({})` = SHA-256 of the empty string: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Counts `node_hash` calls on the current thread, so unit tests can hold the appender and the
/// proof code to their hashing budgets.
#[cfg(test)]
pub(crate) mod node_hash_counter {
    use std::cell::Cell;

    thread_local! {
        static NODE_HASHES: Cell<u64> = const { Cell::new(0) };
    }

    pub(crate) fn increment() {
        NODE_HASHES.with(|count| count.set(count.get() + 1));
    }

    pub(crate) fn read() -> u64 {
        NODE_HASHES.with(Cell::get)
    }
}
