//! CRC-16/CCITT-FALSE, the checksum of EMVCo merchant-presented payloads (ISO/IEC 13239):
//! polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR.

/// Bytes per step of the slicing loop.
const SLICE_BYTES: usize = 16;

/// Slicing-by-16: sixteen tables (8 KiB, in L1) let sixteen bytes go through independent
/// lookups instead of a chain of dependent ones. The decoder checks a CRC on every payload,
/// and the byte-at-a-time loop was most of its time. `TABLES[k][b]` is the register after
/// byte `b` (entering as the top byte) and then `k` zero bytes.
const TABLES: [[u16; 256]; SLICE_BYTES] = build_tables();

const fn build_tables() -> [[u16; 256]; SLICE_BYTES] {
    let mut tables = [[0u16; 256]; SLICE_BYTES];
    let mut index = 0;
    while index < 256 {
        let mut crc = (index as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        tables[0][index] = crc;
        index += 1;
    }
    let mut slice = 1;
    while slice < SLICE_BYTES {
        let mut index = 0;
        while index < 256 {
            let previous = tables[slice - 1][index];
            tables[slice][index] = (previous << 8) ^ tables[0][(previous >> 8) as usize];
            index += 1;
        }
        slice += 1;
    }
    tables
}

/// The CRC-16/CCITT-FALSE of `bytes`.
pub fn crc16_ccitt_false(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    let mut chunks = bytes.chunks_exact(SLICE_BYTES);
    for chunk in &mut chunks {
        let [high, low] = crc.to_be_bytes();
        let mut next = TABLES[SLICE_BYTES - 1][usize::from(chunk[0] ^ high)]
            ^ TABLES[SLICE_BYTES - 2][usize::from(chunk[1] ^ low)];
        for (index, &byte) in chunk.iter().enumerate().skip(2) {
            next ^= TABLES[SLICE_BYTES - 1 - index][usize::from(byte)];
        }
        crc = next;
    }
    for &byte in chunks.remainder() {
        crc = (crc << 8) ^ TABLES[0][usize::from((crc >> 8) as u8 ^ byte)];
    }
    crc
}

/// The four upper-case hexadecimal digits EMVCo writes a CRC as.
pub(crate) fn crc_hex(crc: u16) -> [u8; 4] {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    [
        DIGITS[usize::from(crc >> 12)],
        DIGITS[usize::from((crc >> 8) & 0xF)],
        DIGITS[usize::from((crc >> 4) & 0xF)],
        DIGITS[usize::from(crc & 0xF)],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue check value of CRC-16/CCITT-FALSE.
    #[test]
    fn check_value_of_123456789_is_29b1() {
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
    }

    #[test]
    fn empty_input_is_the_initial_value() {
        assert_eq!(crc16_ccitt_false(b""), 0xFFFF);
    }

    #[test]
    fn tables_match_bitwise_computation() {
        fn bitwise(bytes: &[u8]) -> u16 {
            let mut crc: u16 = 0xFFFF;
            for &byte in bytes {
                crc ^= u16::from(byte) << 8;
                for _ in 0..8 {
                    crc = if crc & 0x8000 != 0 {
                        (crc << 1) ^ 0x1021
                    } else {
                        crc << 1
                    };
                }
            }
            crc
        }
        let sample: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for end in 0..sample.len() {
            assert_eq!(crc16_ccitt_false(&sample[..end]), bitwise(&sample[..end]));
        }
    }

    #[test]
    fn hex_is_four_upper_case_digits() {
        assert_eq!(&crc_hex(0x0A3F), b"0A3F");
        assert_eq!(&crc_hex(0xFFFF), b"FFFF");
        assert_eq!(&crc_hex(0), b"0000");
    }
}
