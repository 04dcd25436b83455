//! Time-sortable ids: milliseconds since the Unix epoch in the high bits and a counter below,
//! strictly increasing within a process, so ids created later sort later and no two ids of one
//! process are ever equal (a burst of more than 65,536 ids in a millisecond borrows from the
//! next milliseconds). Every business object (users, merchants, orders, refunds …) draws from
//! the same sequence, so a ledger transfer id derived from an object's id is unique too.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits below the milliseconds.
const COUNTER_BITS: u32 = 16;

static LAST_ID: AtomicU64 = AtomicU64::new(0);

/// A new id for `now_ms`, below 2^63 until the year 6400 or so.
pub fn new_id(now_ms: u64) -> Result<u64, crate::secrets::RandomError> {
    let floor = (now_ms & ((1 << (63 - COUNTER_BITS)) - 1)) << COUNTER_BITS;
    let mut last = LAST_ID.load(Ordering::Relaxed);
    loop {
        let next = floor.max(last + 1);
        match LAST_ID.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Ok(next),
            Err(actual) => last = actual,
        }
    }
}

/// A block of `count` consecutive new ids for `now_ms`: the first is returned, and the others
/// (`first + 1 …`) are reserved for the caller (a red envelope's packets).
pub fn new_ids(now_ms: u64, count: u64) -> Result<u64, crate::secrets::RandomError> {
    assert!((1..=1 << COUNTER_BITS).contains(&count));
    let floor = (now_ms & ((1 << (63 - COUNTER_BITS)) - 1)) << COUNTER_BITS;
    let mut last = LAST_ID.load(Ordering::Relaxed);
    loop {
        let first = floor.max(last + 1);
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
    fn ids_of_one_millisecond_never_repeat() {
        let ids: Vec<u64> = (0..100_000)
            .map(|_| super::new_id(1_795_000_000_000).unwrap())
            .collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
