//! Properties of the merchant-presented codec over generated valid models.

use proptest::prelude::*;

use qr::mpm::{self, EncodeErrorKind, Issue};

use crate::strategies::merchant_presented;

/// Encodes, or skips a model whose payload runs over 512 characters (the generator does not
/// budget lengths); any other refusal fails the test.
fn encode_or_skip(model: &mpm::MerchantPresented<'_>) -> Result<String, TestCaseError> {
    match mpm::encode(model) {
        Ok(payload) => Ok(payload),
        Err(error)
            if matches!(
                error.kind,
                EncodeErrorKind::Rule(Issue::PayloadTooLong { .. })
            ) =>
        {
            Err(TestCaseError::reject("payload over 512 characters"))
        }
        Err(error) => Err(TestCaseError::fail(format!(
            "a valid model was refused: {error}\n{model:?}"
        ))),
    }
}

/// ASCII characters a corruption writes: the digits and letters the format is made of,
/// hexadecimal in both cases (the CRC), and punctuation.
const ASCII_REPLACEMENTS: &[char] = &[
    '0', '1', '2', '3', '4', '5', '6', '9', 'A', 'B', 'F', 'Z', 'a', 'b', 'f', 'z', ' ', '.', '*',
    '~',
];
/// Two-byte characters: replacing one by another changes at most 16 consecutive bits.
const TWO_BYTE_REPLACEMENTS: &[char] = &['é', 'ß', 'ü', 'Ã'];

/// Whether `damaged` is refused, reported, or decodes to the same data as the original.
fn never_silent(original: &mpm::MerchantPresented<'_>, damaged: &str) -> bool {
    match mpm::decode(damaged) {
        Err(_) => true,
        Ok(decoded) => !decoded.warnings.is_empty() || decoded.payload == *original,
    }
}

/// Every corruption the format can always catch: CRC-16/CCITT-FALSE detects every error
/// that spans at most 16 bits of a message of unchanged length. That covers replacing an
/// ASCII character by another, a two-byte character by another, and changing any single
/// byte (where the result is still UTF-8).
fn guaranteed_corruptions(payload: &str) -> Vec<String> {
    let chars: Vec<char> = payload.chars().collect();
    let mut corruptions = Vec::new();
    for (position, &original) in chars.iter().enumerate() {
        let replacements = match original.len_utf8() {
            1 => ASCII_REPLACEMENTS,
            2 => TWO_BYTE_REPLACEMENTS,
            _ => &[],
        };
        for &replacement in replacements {
            if replacement != original {
                let mut damaged = chars.clone();
                damaged[position] = replacement;
                corruptions.push(damaged.into_iter().collect());
            }
        }
    }
    for position in 0..payload.len() {
        for mask in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x3F] {
            let mut bytes = payload.as_bytes().to_vec();
            bytes[position] ^= mask;
            if let Ok(damaged) = String::from_utf8(bytes) {
                corruptions.push(damaged);
            }
        }
    }
    corruptions
}

/// Corruptions that change the payload's length in bytes: deleting a character, inserting
/// one, or replacing a character by one of another UTF-8 length. A 16-bit CRC misses about
/// one in 65,536 of these when the structure happens to survive; nothing in the format can
/// do better, so these are measured rather than promised.
fn length_changing_corruptions(payload: &str) -> Vec<String> {
    let chars: Vec<char> = payload.chars().collect();
    let mut corruptions = Vec::new();
    for position in 0..chars.len() {
        let mut shortened = chars.clone();
        shortened.remove(position);
        corruptions.push(shortened.into_iter().collect());
        let mut lengthened = chars.clone();
        lengthened.insert(position, '0');
        corruptions.push(lengthened.into_iter().collect());
        let replacement = if chars[position].is_ascii() {
            '北'
        } else {
            'a'
        };
        let mut replaced = chars.clone();
        replaced[position] = replacement;
        corruptions.push(replaced.into_iter().collect());
    }
    corruptions
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every corruption of [`guaranteed_corruptions`] is refused, reported, or leaves the
    /// decoded data unchanged (a CRC digit turned to lower case is reported, a letter's case
    /// elsewhere is caught by the CRC).
    #[test]
    fn single_character_corruption_is_never_silent(model in merchant_presented()) {
        let payload = encode_or_skip(&model)?;
        let original = mpm::decode(&payload).unwrap().payload;
        for damaged in guaranteed_corruptions(&payload) {
            prop_assert!(
                never_silent(&original, &damaged),
                "silently accepted with different data:\n{}\n{}",
                payload,
                damaged
            );
        }
    }
}

/// Length-changing corruptions over many payloads: silent acceptance stays near the CRC's
/// one in 65,536, far below one in a thousand. (Without the CRC check most would pass.)
#[test]
fn length_changing_corruption_is_almost_never_silent() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = merchant_presented();
    let (mut corruptions, mut silent) = (0usize, 0usize);
    while corruptions < 60_000 {
        let model = strategy.new_tree(&mut runner).unwrap().current();
        let Ok(payload) = mpm::encode(&model) else {
            continue;
        };
        let original = mpm::decode(&payload).unwrap().payload;
        for damaged in length_changing_corruptions(&payload) {
            corruptions += 1;
            if !never_silent(&original, &damaged) {
                silent += 1;
            }
        }
    }
    assert!(
        silent * 1000 < corruptions,
        "{silent} of {corruptions} corruptions accepted silently"
    );
}
