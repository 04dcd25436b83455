//! No input makes a decoder panic. (The fuzz target in `fuzz/` does the same with coverage
//! guidance where cargo-fuzz can run.)

use proptest::prelude::*;

use crate::support::with_crc;

/// Characters of merchant-presented payloads, to get past the first object more often than
/// arbitrary strings do.
fn payload_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(&['0', '1', '2', '3', '4', '5', '6', '9', 'A', 'f', '.', '北'][..]),
        0..200,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        let _ = qr::decode_any(&text);
        let _ = qr::mpm::decode(&text);
        let _ = qr::cpm::decode(&text);
        let _ = qr::upi::decode(&text);
    }

    #[test]
    fn payload_like_strings_never_panic(body in payload_like()) {
        let _ = qr::mpm::decode(&body);
        let _ = qr::mpm::decode(&with_crc(&body));
        let _ = qr::mpm::decode(&with_crc(&format!("000201{body}")));
        let _ = qr::decode_any(&format!("upi://pay?pa={body}"));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_ber_reader(mut bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = qr::cpm::decode_bytes(&bytes);
        let mut with_header = vec![0x85, 0x05, b'C', b'P', b'V', b'0', b'1'];
        with_header.append(&mut bytes);
        let _ = qr::cpm::decode_bytes(&with_header);
    }
}

/// Payloads with the mandatory objects and random extra objects in random order (values that
/// often parse as templates): whatever decodes without a warning encodes back to the same
/// text. The fuzz target asserts the same.
fn structured_payload() -> impl Strategy<Value = String> {
    let value = prop::collection::vec(
        prop::sample::select(&['0', '1', '2', '3', '4', '5', '9', 'A', 'Z', '.', ' ', 'é'][..]),
        0..=30,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>());
    (
        prop::collection::vec((1u8..=99, value), 0..6),
        prop::collection::vec(any::<u32>(), 12),
    )
        .prop_map(|(extras, keys)| {
            let mut objects: Vec<(u8, String)> = vec![
                (26, "0004X.YZ0102AB".to_owned()),
                (52, "5812".to_owned()),
                (53, "986".to_owned()),
                (58, "BR".to_owned()),
                (59, "PADARIA".to_owned()),
                (60, "BRASILIA".to_owned()),
            ];
            for (id, value) in extras {
                if id != 63 && objects.iter().all(|(known, _)| *known != id) {
                    objects.push((id, value));
                }
            }
            let mut keyed: Vec<(u32, (u8, String))> =
                keys.into_iter().cycle().zip(objects).collect();
            keyed.sort_by_key(|(key, _)| *key);
            let body: String = keyed
                .into_iter()
                .map(|(_, (id, value))| format!("{id:02}{:02}{value}", value.chars().count()))
                .collect();
            with_crc(&format!("000201{body}"))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn payloads_decoded_without_warnings_encode_back_to_the_same_text(payload in structured_payload()) {
        if let Ok(decoded) = qr::mpm::decode(&payload) {
            if decoded.warnings.is_empty() {
                let encoded = qr::mpm::encode(&decoded.payload)
                    .map_err(|error| TestCaseError::fail(format!("{error}\n{payload}")))?;
                prop_assert_eq!(encoded, payload);
            }
        }
    }
}
