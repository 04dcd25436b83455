//! Randomness from the operating system, digests, and comparisons that take the same time
//! wherever two secrets differ.

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, thiserror::Error)]
#[error("the operating system's randomness failed: {0}")]
pub struct RandomError(String);

pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| RandomError(error.to_string()))?;
    Ok(bytes)
}

/// `digits` random decimal digits, each uniform (rejection sampling, no modulo bias).
pub fn random_digits(digits: usize) -> Result<String, RandomError> {
    let mut text = String::with_capacity(digits);
    while text.len() < digits {
        for byte in random_bytes::<16>()? {
            // 250 is the largest multiple of 10 not above 256.
            if byte < 250 && text.len() < digits {
                text.push(char::from(b'0' + byte % 10));
            }
        }
    }
    Ok(text)
}

pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Equal in time independent of where the inputs differ.
pub fn equal(left: &[u8; 32], right: &[u8; 32]) -> bool {
    let difference = left
        .iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b));
    std::hint::black_box(difference) == 0
}

/// The two lower-case hex digits of a byte.
fn hex_pair(byte: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0x0f)],
    ]
}

/// Lower-case hex digits of a digest, on the stack.
pub fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    let mut text = [0u8; 64];
    for (pair, byte) in text.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&hex_pair(*byte));
    }
    text
}

/// Lower-case hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let [high, low] = hex_pair(*byte);
        text.push(char::from(high));
        text.push(char::from(low));
    }
    text
}

/// Parses 64 hex digits (either case) into 32 bytes.
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (index, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        bytes[index] = u8::try_from(high * 16 + low).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_digits_and_vary() {
        let first = random_digits(6).unwrap();
        assert_eq!(first.len(), 6);
        assert!(first.bytes().all(|byte| byte.is_ascii_digit()));
        let draws: std::collections::HashSet<String> =
            (0..20).map(|_| random_digits(6).unwrap()).collect();
        assert!(
            draws.len() > 15,
            "20 draws of a million values rarely repeat"
        );
    }

    #[test]
    fn digests_separate_their_parts() {
        assert_ne!(sha256(&[b"ab", b"c"]), sha256(&[b"a", b"bc"]));
        assert!(equal(&sha256(&[b"x"]), &sha256(&[b"x"])));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        // FIPS 180-2's example.
        let digest: [u8; 32] = Sha256::digest(b"abc").into();
        assert_eq!(
            hex(&digest),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_hex32(&hex(&digest)), Some(digest));
    }
}
