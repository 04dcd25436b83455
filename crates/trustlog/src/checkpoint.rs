//! C2SP tlog-checkpoint note text: origin, tree size, base64 root hash, optional extension lines.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::hash::{Hash, HASH_BYTES};
use crate::{
    Error, Result, CHECKPOINT_EXTENSIONS_MAX, NOTE_BYTES_MAX, ORIGIN_BYTES_MAX, TREE_SIZE_MAX,
};

/// A transparency log checkpoint: the log's identity and its tree head at one size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint with checked fields: the origin is non-empty, at most [`ORIGIN_BYTES_MAX`]
    /// bytes and free of ASCII control characters; each extension line is non-empty and free of
    /// ASCII control characters; at most [`CHECKPOINT_EXTENSIONS_MAX`] extension lines.
    pub fn new(origin: &str, size: u64, root: Hash, extensions: Vec<String>) -> Result<Checkpoint> {
        check_line(
            origin,
            "origin is empty",
            "origin contains a control character",
        )?;
        if origin.len() > ORIGIN_BYTES_MAX {
            return Err(Error::InvalidCheckpoint {
                reason: "origin is too long",
            });
        }
        if size > TREE_SIZE_MAX {
            return Err(Error::InvalidCheckpoint {
                reason: "tree size exceeds the maximum",
            });
        }
        if extensions.len() > CHECKPOINT_EXTENSIONS_MAX {
            return Err(Error::InvalidCheckpoint {
                reason: "too many extension lines",
            });
        }
        for extension in &extensions {
            check_line(
                extension,
                "extension line is empty",
                "extension line contains a control character",
            )?;
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn root(&self) -> &Hash {
        &self.root
    }

    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: `origin\nsize\nbase64(root)\n` followed by each extension line and `\n`.
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        );
        for extension in &self.extensions {
            body.push_str(extension);
            body.push('\n');
        }
        body
    }

    /// Parses checkpoint note text (the text of a verified note, without signatures). Strict:
    /// every line ends in a newline; the size is canonical decimal (no sign, no leading zeroes);
    /// the root is canonical padded base64 of exactly 32 bytes; extension lines are non-empty.
    pub fn parse(text: &str) -> Result<Checkpoint> {
        if text.len() > NOTE_BYTES_MAX {
            return Err(Error::NoteTooLarge { bytes: text.len() });
        }
        let lines = text.strip_suffix('\n').ok_or(Error::InvalidCheckpoint {
            reason: "text does not end with a newline",
        })?;
        let mut lines = lines.split('\n');
        let origin = lines.next().unwrap_or_default();
        let size_text = lines.next().ok_or(Error::InvalidCheckpoint {
            reason: "missing tree size line",
        })?;
        let root_text = lines.next().ok_or(Error::InvalidCheckpoint {
            reason: "missing root hash line",
        })?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();

        let size_is_canonical = !size_text.is_empty()
            && size_text.bytes().all(|byte| byte.is_ascii_digit())
            && (size_text == "0" || !size_text.starts_with('0'));
        if !size_is_canonical {
            return Err(Error::InvalidCheckpoint {
                reason: "tree size is not a canonical decimal",
            });
        }
        let size: u64 = size_text.parse().map_err(|_| Error::InvalidCheckpoint {
            reason: "tree size exceeds the maximum",
        })?;

        let root_bytes = BASE64
            .decode(root_text)
            .map_err(|_| Error::InvalidCheckpoint {
                reason: "root hash is not canonical base64",
            })?;
        let root: Hash = root_bytes
            .try_into()
            .map_err(|_| Error::InvalidCheckpoint {
                reason: "root hash is not 32 bytes",
            })?;
        debug_assert_eq!(root.len(), HASH_BYTES);

        Checkpoint::new(origin, size, root, extensions)
    }
}

fn check_line(line: &str, empty: &'static str, control: &'static str) -> Result<()> {
    if line.is_empty() {
        return Err(Error::InvalidCheckpoint { reason: empty });
    }
    // Signed notes allow no ASCII control character other than the newline that ends the line.
    if line.chars().any(|character| character < ' ') {
        return Err(Error::InvalidCheckpoint { reason: control });
    }
    Ok(())
}
