//! Time-sortable ids: milliseconds since the Unix epoch in the high bits, 16 random bits below,
//! so ids created later sort later and two created in the same millisecond rarely collide (a
//! collision is refused by the store's unique key and the caller draws again).

/// Random bits below the milliseconds.
const RANDOM_BITS: u32 = 16;

/// A new id for `now_ms`, below 2^63 until the year 6400 or so.
pub fn new_id(now_ms: u64) -> Result<u64, crate::secrets::RandomError> {
    let random = crate::secrets::random_bytes::<2>()?;
    let low = u64::from(u16::from_be_bytes(random));
    Ok(((now_ms & ((1 << (63 - RANDOM_BITS)) - 1)) << RANDOM_BITS) | low)
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
}
