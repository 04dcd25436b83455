//! One-time payment codes, the customer-presented direction: a wallet device shows 18 digits a
//! POS scans. The device derives them offline from a secret provisioned when it was enrolled,
//! like a TOTP (RFC 6238) that also names its device:
//!
//! ```text
//! prefix (2) | device number (8) | time step mod 10 (1) | slot (1) | MAC (6)
//! ```
//!
//! - the time step is Unix seconds ÷ [`STEP_S`]; its last digit tells the platform which step
//!   the device meant, so a code is checked with one MAC whatever the clock skew in the window;
//! - the slot (0–9) lets a device show up to ten codes in one step (one per payment);
//! - the MAC is HMAC-SHA256(secret, "tally-payment-code-v1" ‖ number ‖ step ‖ slot), dynamically
//!   truncated to six digits as RFC 4226 does.
//!
//! A code is accepted during its own step and the steps either side (60 to 180 seconds after
//! it appears, allowing a minute of clock skew), and once only: its (device, step, slot) is
//! recorded with the charge it paid. Pure: the time is an argument.

use hmac::{Hmac, Mac};
use qr::{PaymentCodePrefix, TallyPaymentCode};
use sha2::Sha256;

/// Seconds a code's time step lasts.
pub const STEP_S: u64 = 60;
/// Codes a device can show in one step.
pub const SLOTS: u8 = 10;
/// Device numbers are at most eight digits.
pub const DEVICE_NUMBER_MAX: u32 = 99_999_999;
/// Steps either side of the current one in which a code is still accepted.
pub const STEP_TOLERANCE: u64 = 1;
const MAC_MODULUS: u32 = 1_000_000;
const DOMAIN: &[u8] = b"tally-payment-code-v1";

const _: () = assert!(
    2 * STEP_TOLERANCE + 1 < 10,
    "one step digit must name one step of the window"
);

/// The parts of a code's digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeParts {
    pub device_number: u32,
    pub step_digit: u8,
    pub slot: u8,
    pub mac: u32,
}

fn digits_value(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0, |value, digit| value * 10 + u32::from(digit - b'0'))
}

/// Splits a well-formed code into its parts.
pub fn parts(code: &TallyPaymentCode) -> CodeParts {
    let body = code.body().as_bytes();
    CodeParts {
        device_number: digits_value(&body[..8]),
        step_digit: body[8] - b'0',
        slot: body[9] - b'0',
        mac: digits_value(&body[10..16]),
    }
}

fn mac(secret: &[u8; 32], device_number: u32, step: u64, slot: u8) -> u32 {
    let mut hmac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    hmac.update(DOMAIN);
    hmac.update(&device_number.to_be_bytes());
    hmac.update(&step.to_be_bytes());
    hmac.update(&[slot]);
    let digest = hmac.finalize().into_bytes();
    // RFC 4226 §5.3: four bytes at the offset the last nibble names, the top bit cleared.
    let offset = usize::from(digest[31] & 0x0f);
    let word = u32::from_be_bytes([
        digest[offset],
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]) & 0x7fff_ffff;
    word % MAC_MODULUS
}

/// The time step of `unix_s`.
pub fn step_of(unix_s: u64) -> u64 {
    unix_s / STEP_S
}

/// The code a device shows at `unix_s` in `slot`. What the wallet app runs, offline.
pub fn derive(
    secret: &[u8; 32],
    prefix: PaymentCodePrefix,
    device_number: u32,
    unix_s: u64,
    slot: u8,
) -> TallyPaymentCode {
    assert!(device_number <= DEVICE_NUMBER_MAX && slot < SLOTS);
    let step = step_of(unix_s);
    let text = format!(
        "{prefix}{device_number:08}{}{slot}{:06}",
        step % 10,
        mac(secret, device_number, step, slot)
    );
    TallyPaymentCode::parse(&text, prefix).expect("a derived code is well formed")
}

/// The step a code was made in, if its MAC is right for `secret` and the step is in the window
/// around `now_s`. The MAC is compared in constant time.
pub fn verify(secret: &[u8; 32], parts: &CodeParts, now_s: u64) -> Option<u64> {
    let now = step_of(now_s);
    let step = (now.saturating_sub(STEP_TOLERANCE)..=now + STEP_TOLERANCE)
        .find(|step| step % 10 == u64::from(parts.step_digit))?;
    if parts.slot >= SLOTS {
        return None;
    }
    let expected = mac(secret, parts.device_number, step, parts.slot);
    let difference = std::hint::black_box(expected ^ parts.mac);
    (difference == 0).then_some(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [42; 32];
    const NOW: u64 = 1_795_000_000;

    #[test]
    fn a_derived_code_verifies_in_its_window_and_not_outside() {
        let code = derive(&SECRET, PaymentCodePrefix::DEFAULT, 12_345_678, NOW, 3);
        assert_eq!(code.as_str().len(), 18);
        assert!(code.as_str().starts_with("2812345678"));
        let parsed = parts(&code);
        assert_eq!(parsed.device_number, 12_345_678);
        assert_eq!(parsed.slot, 3);
        let step = step_of(NOW);
        assert_eq!(verify(&SECRET, &parsed, NOW), Some(step));
        assert_eq!(verify(&SECRET, &parsed, NOW + STEP_S), Some(step));
        assert_eq!(verify(&SECRET, &parsed, NOW - STEP_S), Some(step));
        assert_eq!(verify(&SECRET, &parsed, NOW + 2 * STEP_S), None);
        assert_eq!(verify(&SECRET, &parsed, NOW - 2 * STEP_S), None);
        assert_eq!(verify(&SECRET, &parsed, NOW + 10 * STEP_S), None);
    }

    #[test]
    fn another_secret_slot_or_device_does_not_verify() {
        let code = derive(&SECRET, PaymentCodePrefix::DEFAULT, 7, NOW, 0);
        let parsed = parts(&code);
        assert_eq!(verify(&[43; 32], &parsed, NOW), None);
        for (slot, device_number) in [(1, 7), (0, 8)] {
            let moved = CodeParts {
                slot,
                device_number,
                ..parsed
            };
            assert_eq!(verify(&SECRET, &moved, NOW), None);
        }
    }

    #[test]
    fn every_single_digit_change_of_the_mac_is_refused() {
        let code = derive(&SECRET, PaymentCodePrefix::DEFAULT, 99_999_999, NOW, 9);
        let parsed = parts(&code);
        for position in 0..6 {
            let scale = 10u32.pow(position);
            let digit = parsed.mac / scale % 10;
            for other in (0..10).filter(|other| *other != digit) {
                let mac = parsed.mac - digit * scale + other * scale;
                assert_eq!(verify(&SECRET, &CodeParts { mac, ..parsed }, NOW), None);
            }
        }
    }

    #[test]
    fn codes_of_one_device_differ_by_step_and_slot() {
        let codes: std::collections::HashSet<String> = (0..5)
            .flat_map(|step| {
                (0..SLOTS).map(move |slot| {
                    derive(
                        &SECRET,
                        PaymentCodePrefix::DEFAULT,
                        1,
                        NOW + step * STEP_S,
                        slot,
                    )
                    .to_string()
                })
            })
            .collect();
        assert_eq!(codes.len(), 50);
    }
}
