//! Short ASCII text built on the stack: the timestamps and prefixed ids of every order an API
//! answer or a notification shows, serialized without an allocation each.

use std::fmt;

/// At most `N` ASCII bytes; pushing more panics (every caller's text has a fixed bound).
#[derive(Clone, Copy)]
pub struct StackText<const N: usize> {
    bytes: [u8; N],
    length: usize,
}

impl<const N: usize> StackText<N> {
    pub(crate) fn new() -> Self {
        StackText {
            bytes: [0; N],
            length: 0,
        }
    }

    pub(crate) fn push(&mut self, byte: u8) {
        debug_assert!(byte.is_ascii());
        self.bytes[self.length] = byte;
        self.length += 1;
    }

    pub(crate) fn push_str(&mut self, text: &str) {
        debug_assert!(text.is_ascii());
        self.bytes[self.length..self.length + text.len()].copy_from_slice(text.as_bytes());
        self.length += text.len();
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.length]).expect("only ASCII is pushed")
    }
}

impl<const N: usize> fmt::Display for StackText<N> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for StackText<N> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), formatter)
    }
}

impl<const N: usize> serde::Serialize for StackText<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A prefix and a number as one word (`ord_42`).
pub type TaggedId = StackText<32>;

/// `prefix` (at most 8 bytes) followed by `id`.
pub fn tagged_id(prefix: &str, id: u64) -> TaggedId {
    let mut text = TaggedId::new();
    text.push_str(prefix);
    text.push_str(itoa::Buffer::new().format(id));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_id_reads_and_serializes_as_its_prefix_and_number() {
        assert_eq!(tagged_id("ord_", 42).as_str(), "ord_42");
        assert_eq!(
            tagged_id("usr_", u64::MAX).to_string(),
            format!("usr_{}", u64::MAX)
        );
        assert_eq!(
            serde_json::to_string(&tagged_id("mch_", 7)).unwrap(),
            r#""mch_7""#
        );
        assert_eq!(format!("{:?}", tagged_id("evt_", 0)), r#""evt_0""#);
    }
}
