//! Helpers shared by the tests.

/// Appends "6304" and the right CRC to `body`: a payload whose checksum is valid, so that
/// the decoder's other checks are what a test sees.
pub fn with_crc(body: &str) -> String {
    let mut payload = format!("{body}6304");
    let crc = qr::crc16_ccitt_false(payload.as_bytes());
    payload.push_str(&format!("{crc:04X}"));
    payload
}

/// Bytes from hexadecimal text, ignoring spaces.
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}
