//! Time-sortable ids: milliseconds since the Unix epoch in the high bits, then the node's
//! number and a counter, strictly increasing within a process, so ids created later sort later
//! (to the millisecond across nodes) and no two ids of one process, or of two nodes with
//! different numbers, are ever equal (a burst of more than 4,096 ids in a millisecond borrows
//! from the next milliseconds). Every business object (users, merchants, orders, refunds …)
//! draws from the same sequence, so a ledger transfer id derived from an object's id is unique
//! too, across every node that writes one database.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits below the milliseconds: the node's number, then the counter.
const COUNTER_BITS: u32 = 16;
/// Bits of the counter within a millisecond (the rest of `COUNTER_BITS` is the node).
const SEQUENCE_BITS: u32 = 12;
const SEQUENCE_MASK: u64 = (1 << SEQUENCE_BITS) - 1;
/// Nodes that may write one database at once, numbered from 0.
pub const NODES_MAX: u64 = 1 << (COUNTER_BITS - SEQUENCE_BITS);

static LAST_ID: AtomicU64 = AtomicU64::new(0);
static NODE: AtomicU64 = AtomicU64::new(0);

/// This process's node number (0 by default), set once at start-up before any id is drawn.
pub fn set_node(node: u64) -> Result<(), String> {
    if node >= NODES_MAX {
        return Err(format!("a node number is below {NODES_MAX}, not {node}"));
    }
    if LAST_ID.load(Ordering::Relaxed) != 0 && NODE.load(Ordering::Relaxed) != node {
        return Err("the node number is set before any id is drawn".into());
    }
    NODE.store(node, Ordering::Relaxed);
    Ok(())
}

/// This process's node number.
pub fn node() -> u64 {
    NODE.load(Ordering::Relaxed)
}

/// A new id for `now_ms`, below 2^63 until the year 6400 or so.
pub fn new_id(now_ms: u64) -> Result<u64, crate::secrets::RandomError> {
    new_ids(now_ms, 1)
}

/// A block of `count` consecutive new ids for `now_ms` (at most 4,096): the first is returned,
/// and the others (`first + 1 …`) are reserved for the caller (a red envelope's packets).
pub fn new_ids(now_ms: u64, count: u64) -> Result<u64, crate::secrets::RandomError> {
    assert!((1..=1 << SEQUENCE_BITS).contains(&count));
    let node = NODE.load(Ordering::Relaxed);
    let mut last = LAST_ID.load(Ordering::Relaxed);
    loop {
        let first = block_after(last, now_ms, node, count);
        match LAST_ID.compare_exchange_weak(
            last,
            first + count - 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Ok(first),
            Err(actual) => last = actual,
        }
    }
}

/// The first of `count` ids after `last` (0: none yet) for `now_ms` on `node`: right after
/// `last` if the block fits in what is left of its millisecond's range for the node, else at
/// the start of the next millisecond's; never before `now_ms`.
fn block_after(last: u64, now_ms: u64, node: u64, count: u64) -> u64 {
    let start_of = |ms: u64| {
        ((ms & ((1 << (63 - COUNTER_BITS)) - 1)) << COUNTER_BITS) | (node << SEQUENCE_BITS)
    };
    let after_last = if last == 0 {
        0
    } else if (last & SEQUENCE_MASK) + count < 1 << SEQUENCE_BITS {
        last + 1
    } else {
        start_of((last >> COUNTER_BITS) + 1)
    };
    start_of(now_ms).max(after_last)
}

/// Legs one business object may have in the ledger (payment, fee, …).
pub const TRANSFER_LEGS_MAX: u8 = 16;

/// The ledger transfer id of leg `leg` of a business object: its id shifted left by four bits,
/// and the leg number. Ids drawn before the year 2248 stay below the ledger's 2^63 limit.
pub fn transfer_id(object_id: u64, leg: u8) -> u128 {
    assert!(leg < TRANSFER_LEGS_MAX);
    (u128::from(object_id) << 4) | u128::from(leg)
}

/// `prefix` and an id in decimal (`ord_123`) → the id.
pub fn parse_prefixed(prefix: &str, text: &str) -> Option<u64> {
    let digits = text.strip_prefix(prefix)?;
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn later_ids_sort_later_and_fit_the_store() {
        let earlier = super::new_id(1_795_000_000_000).unwrap();
        let later = super::new_id(1_795_000_000_001).unwrap();
        assert!(later > earlier);
        assert!(later < 1 << 63);
    }

    #[test]
    fn a_block_of_ids_is_not_handed_out_again() {
        let first = super::new_ids(1_795_000_000_000, 101).unwrap();
        let next = super::new_id(1_795_000_000_000).unwrap();
        assert!(next > first + 100);
    }

    #[test]
    fn nodes_draw_from_their_own_ranges() {
        let now = 1_795_000_000_000;
        // A burst of 10,000 ids in one millisecond on each of three nodes.
        let mut all = Vec::new();
        for node in [0, 1, super::NODES_MAX - 1] {
            let mut last = 0;
            for _ in 0..10_000 {
                let id = super::block_after(last, now, node, 1);
                assert!(id > last);
                assert_eq!((id >> super::SEQUENCE_BITS) & (super::NODES_MAX - 1), node);
                last = id;
                all.push(id);
            }
            // Three milliseconds' ranges for 10,000 ids: the burst borrowed from the next ones.
            assert_eq!(last >> 16, now + 2);
        }
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "no id is drawn by two nodes");
        // A block never straddles two ranges.
        let last = super::block_after(0, now, 3, 1) + 4_000;
        let first = super::block_after(last, now, 3, 200);
        assert_eq!(first, ((now + 1) << 16) | (3 << super::SEQUENCE_BITS));
    }

    #[test]
    fn ids_of_one_millisecond_never_repeat() {
        let ids: Vec<u64> = (0..100_000)
            .map(|_| super::new_id(1_795_000_000_000).unwrap())
            .collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
