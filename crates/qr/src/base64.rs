//! Standard base64 (RFC 4648 section 4, with padding), the text form of consumer-presented
//! payloads. Written here because it is forty lines and the decoder must be strict: a
//! consumer-presented code that does not decode exactly is refused, never repaired.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a text is not canonical padded base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base64Error {
    /// The length is not a multiple of four.
    Length { chars: usize },
    /// A character outside the alphabet, or padding before the end.
    Character { at: usize },
    /// Bits left over in the last group are not zero (the text is not the canonical encoding).
    TrailingBits { at: usize },
}

pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(
                    ALPHABET[((group >> (18 - 6 * index)) & 0x3F) as usize],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sextet(byte: u8) -> Option<u32> {
    let value = match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

pub(crate) fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return Err(Base64Error::Length {
            chars: text.chars().count(),
        });
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let groups = bytes.len() / 4;
    for (group_index, group) in bytes.chunks(4).enumerate() {
        let last = group_index + 1 == groups;
        let padding = if last {
            group.iter().rev().take_while(|&&byte| byte == b'=').count()
        } else {
            0
        };
        if padding > 2 {
            return Err(Base64Error::Character {
                at: group_index * 4 + 4 - padding,
            });
        }
        let mut value = 0u32;
        for (index, &byte) in group.iter().enumerate().take(4 - padding) {
            let Some(bits) = sextet(byte) else {
                return Err(Base64Error::Character {
                    at: group_index * 4 + index,
                });
            };
            value |= bits << (18 - 6 * index);
        }
        let produced = 3 - padding;
        let unused_mask = match padding {
            1 => 0xFF,
            2 => 0xFFFF,
            _ => 0,
        };
        if value & unused_mask != 0 {
            return Err(Base64Error::TrailingBits {
                at: group_index * 4 + 3 - padding,
            });
        }
        for index in 0..produced {
            out.push((value >> (16 - 8 * index)) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 section 10 test vectors.
    #[test]
    fn rfc_4648_vectors_round_trip() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn refuses_bad_length_characters_and_padding() {
        assert_eq!(decode("Zm9"), Err(Base64Error::Length { chars: 3 }));
        assert_eq!(decode("Zm-v"), Err(Base64Error::Character { at: 2 }));
        assert_eq!(decode("Zg==Zm9v"), Err(Base64Error::Character { at: 2 }));
        assert_eq!(decode("Z==="), Err(Base64Error::Character { at: 1 }));
        // "Zh==" carries a non-zero bit after the one byte it encodes.
        assert_eq!(decode("Zh=="), Err(Base64Error::TrailingBits { at: 1 }));
    }
}
