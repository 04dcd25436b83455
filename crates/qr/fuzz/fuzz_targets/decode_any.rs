//! Every decoder, on arbitrary input: none may panic, and whatever the merchant-presented
//! decoder accepts without warnings must encode back to the same text.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = qr::cpm::decode_bytes(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = qr::decode_any(text);
    let _ = qr::upi::decode(text);
    let _ = qr::cpm::decode(text);
    if let Ok(decoded) = qr::mpm::decode(text) {
        if decoded.warnings.is_empty() {
            let encoded = qr::mpm::encode(&decoded.payload)
                .expect("a payload decoded without warnings encodes");
            assert_eq!(encoded, text, "a conforming payload round-trips");
        }
    }
});
