//! Measures the appender: leaves per second for batches of 8,190 leaves (the ledger's batch
//! size), with and without leaf hashing, next to the raw SHA-256 node-hash rate of this machine,
//! and inclusion proofs per second from in-memory tiles.
//!
//! `cargo run --release -p trustlog --example append_throughput [batches]`

// Measuring wall time is the point of this program; the core library itself never reads a clock.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::Instant;

use trustlog::{
    inclusion_proof, leaf_hash, node_hash, Hash, RightEdge, TileHashReader, TileReader,
};

const BATCH_LEAVES: usize = 8190;
/// Bytes per leaf: about the size of one encoded ledger transfer.
const LEAF_BYTES: usize = 116;

#[derive(Default)]
struct MemoryTiles(BTreeMap<(u8, u64), Vec<Hash>>);

impl TileReader for MemoryTiles {
    fn read_tile(&self, level: u8, index: u64, width: u16) -> trustlog::Result<Vec<Hash>> {
        let hashes = self
            .0
            .get(&(level, index))
            .ok_or_else(|| trustlog::Error::Storage("missing tile".into()))?;
        Ok(hashes[..usize::from(width)].to_vec())
    }
}

fn leaf_data(index: u64) -> [u8; LEAF_BYTES] {
    let mut data = [0u8; LEAF_BYTES];
    data[..8].copy_from_slice(&index.to_be_bytes());
    data[LEAF_BYTES - 8..]
        .copy_from_slice(&index.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    data
}

fn main() {
    let batches: u64 = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or(250);
    let total = batches * BATCH_LEAVES as u64;

    // Raw SHA-256 node hashes (64-byte children, 65 bytes hashed).
    let rounds = 2_000_000u32;
    let started = Instant::now();
    let mut hash = [7u8; 32];
    for _ in 0..rounds {
        hash = node_hash(&hash, &hash);
    }
    let node_rate = f64::from(rounds) / started.elapsed().as_secs_f64();
    std::hint::black_box(hash);

    // Leaf hashing + append, batch by batch, keeping every tile as a store would.
    let mut tiles = MemoryTiles::default();
    let mut edge = RightEdge::empty();
    let mut hashing_s = 0.0;
    let mut append_s = 0.0;
    let mut tiles_written = 0usize;
    for batch in 0..batches {
        let first = batch * BATCH_LEAVES as u64;
        let data: Vec<[u8; LEAF_BYTES]> = (first..first + BATCH_LEAVES as u64)
            .map(leaf_data)
            .collect();
        let started = Instant::now();
        let hashes: Vec<Hash> = data.iter().map(|leaf| leaf_hash(leaf)).collect();
        hashing_s += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let appended = edge.append(&hashes).expect("append");
        append_s += started.elapsed().as_secs_f64();
        edge = appended.edge;
        tiles_written += appended.tiles.len();
        for write in appended.tiles {
            tiles
                .0
                .insert((write.tile.level(), write.tile.index()), write.hashes);
        }
    }
    assert_eq!(edge.size(), total);

    // Inclusion proofs through tiles for the final tree.
    let reader = TileHashReader::new(total, &tiles).expect("reader");
    let proofs = 20_000u64;
    let started = Instant::now();
    for probe in 0..proofs {
        let index = probe.wrapping_mul(0x9e37_79b9_7f4a_7c15) % total;
        std::hint::black_box(inclusion_proof(index, total, &reader).expect("proof"));
    }
    let proof_rate = proofs as f64 / started.elapsed().as_secs_f64();

    let leaves = total as f64;
    println!("leaves appended:            {total} in {batches} batches of {BATCH_LEAVES}");
    println!("tiles written:              {tiles_written}");
    println!("raw node_hash:              {:>12.0} hashes/s", node_rate);
    println!(
        "append only (leaf hashes given): {:>7.0} leaves/s",
        leaves / append_s
    );
    println!(
        "leaf hashing + append:      {:>12.0} leaves/s",
        leaves / (hashing_s + append_s)
    );
    println!(
        "append speed / raw node_hash speed: {:.0}% (the appender spends exactly B + popcount(n) - 1 node hashes per batch, a unit test checks)",
        100.0 * (leaves / append_s) / node_rate
    );
    println!(
        "inclusion proofs from tiles: {:>11.0} proofs/s (tree of {total})",
        proof_rate
    );
}
