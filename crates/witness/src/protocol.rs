//! The `add-checkpoint` request body of C2SP tlog-witness, parsed strictly and serialized back.
//!
//! ```text
//! old <size>\n            decimal, no leading zeroes ("0" for zero)
//! <base64 hash>\n         zero to 63 consistency-proof lines
//! \n                      an empty line
//! <signed checkpoint>     the checkpoint note: text, blank line, signature lines
//! ```
//!
//! Parsing checks the shape only: the old size, every proof hash, and that the note is a
//! checkpoint followed by signature lines. Whether the signatures verify and the proof holds is the
//! witness's business ([`crate::witness`]), because the answer depends on its keys and state.
//! Pure: no I/O.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use trustlog::{
    Checkpoint, Hash, HASH_BYTES, NOTE_BYTES_MAX, NOTE_SIGNATURES_MAX, PROOF_HASHES_MAX,
    TREE_SIZE_MAX,
};

/// The most consistency-proof lines a request may carry: the spec says clients MUST NOT send
/// more than 63, which is enough for any tree of up to 2^63 - 1 leaves.
pub const PROOF_LINES_MAX: usize = 63;
/// Characters in one base64 proof line, without its newline: 32 bytes, padded.
const PROOF_LINE_CHARS: usize = HASH_BYTES.div_ceil(3) * 4;
/// The longest old-size line, newline included: `old `, up to 20 digits (`u64::MAX`), `\n`.
const OLD_LINE_BYTES_MAX: usize = "old ".len() + 20 + 1;
/// The largest request body, in bytes: the longest old-size line, every proof line, the empty
/// line and the largest signed note. The HTTP edge refuses larger bodies before reading them.
pub const REQUEST_BODY_BYTES_MAX: usize =
    OLD_LINE_BYTES_MAX + PROOF_LINES_MAX * (PROOF_LINE_CHARS + 1) + 1 + NOTE_BYTES_MAX;

const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

const _: () = assert!(PROOF_LINES_MAX <= PROOF_HASHES_MAX);
const _: () = assert!(PROOF_LINE_CHARS == 44);
const _: () = assert!(REQUEST_BODY_BYTES_MAX < NOTE_BYTES_MAX + 4 * 1024);

/// Why a request body was refused. Each message names what was wrong with the input, so the
/// witness can send it back with its "400 Bad Request".
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("request body of {bytes} bytes exceeds the maximum of {REQUEST_BODY_BYTES_MAX}")]
    BodyTooLarge { bytes: usize },
    #[error("request body does not start with an old size line")]
    MissingOldLine,
    #[error("old size line is not `old <size>` with a canonical decimal size of at most 2^63 - 1")]
    InvalidOldSize,
    #[error("proof line {line} is not the canonical base64 of a 32-byte hash")]
    InvalidProofLine { line: usize },
    #[error("more than {PROOF_LINES_MAX} consistency proof lines")]
    TooManyProofLines,
    #[error("no empty line between the proof and the checkpoint")]
    MissingBlankLine,
    #[error("malformed checkpoint note: {reason}")]
    InvalidNote { reason: &'static str },
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(#[source] trustlog::Error),
}

/// An `add-checkpoint` request: "the witness last cosigned this log at `old_size`; here is the
/// proof that the attached checkpoint extends it". Every value of this type serializes to a body
/// that [`AddCheckpointRequest::parse`] accepts and gives back unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    old_size: u64,
    proof: Vec<Hash>,
    checkpoint_note: String,
    /// The note's text, parsed; kept so the witness can find the log by origin before it
    /// verifies any signature.
    checkpoint: Checkpoint,
}

impl AddCheckpointRequest {
    /// A request from its parts, checked as [`AddCheckpointRequest::parse`] checks a body: the old
    /// size is at most 2^63 - 1, the proof has at most [`PROOF_LINES_MAX`] hashes, and the note
    /// is a checkpoint followed by one or more signature lines.
    pub fn new(
        old_size: u64,
        proof: Vec<Hash>,
        checkpoint_note: String,
    ) -> Result<AddCheckpointRequest, ParseError> {
        if old_size > TREE_SIZE_MAX {
            return Err(ParseError::InvalidOldSize);
        }
        if proof.len() > PROOF_LINES_MAX {
            return Err(ParseError::TooManyProofLines);
        }
        let checkpoint = parse_checkpoint_note(&checkpoint_note)?;
        Ok(AddCheckpointRequest {
            old_size,
            proof,
            checkpoint_note,
            checkpoint,
        })
    }

    /// Parses a request body. Strict: every line ends in a newline, the size has no sign or
    /// leading zeroes, each proof hash is canonical padded base64 of exactly 32 bytes, and the
    /// note runs to the end of the body with nothing after its last signature line.
    pub fn parse(body: &str) -> Result<AddCheckpointRequest, ParseError> {
        if body.len() > REQUEST_BODY_BYTES_MAX {
            return Err(ParseError::BodyTooLarge { bytes: body.len() });
        }
        let (old_line, mut rest) = body.split_once('\n').ok_or(ParseError::MissingOldLine)?;
        let old_size = parse_old_line(old_line)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or(ParseError::MissingBlankLine)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == PROOF_LINES_MAX {
                return Err(ParseError::TooManyProofLines);
            }
            let hash = decode_hash(line).ok_or(ParseError::InvalidProofLine {
                line: proof.len() + 1,
            })?;
            proof.push(hash);
        }
        AddCheckpointRequest::new(old_size, proof, rest.to_owned())
    }

    /// The request body, as [`AddCheckpointRequest::parse`] reads it.
    pub fn to_body(&self) -> String {
        let mut body = String::with_capacity(
            OLD_LINE_BYTES_MAX
                + self.proof.len() * (PROOF_LINE_CHARS + 1)
                + 1
                + self.checkpoint_note.len(),
        );
        body.push_str("old ");
        body.push_str(&self.old_size.to_string());
        body.push('\n');
        for hash in &self.proof {
            body.push_str(&BASE64.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.checkpoint_note);
        assert!(body.len() <= REQUEST_BODY_BYTES_MAX);
        body
    }

    /// The size of the checkpoint the client believes the witness last cosigned (0 for none).
    pub fn old_size(&self) -> u64 {
        self.old_size
    }

    /// The consistency proof from `old_size` to the checkpoint's size.
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    /// The signed checkpoint note, signatures included, exactly as sent.
    pub fn checkpoint_note(&self) -> &str {
        &self.checkpoint_note
    }

    /// The checkpoint the note carries (its signatures not yet verified).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
}

/// `old <size>`: canonical decimal, no sign, no leading zeroes, at most 2^63 - 1.
fn parse_old_line(line: &str) -> Result<u64, ParseError> {
    let digits = line
        .strip_prefix("old ")
        .ok_or(ParseError::InvalidOldSize)?;
    let canonical = !digits.is_empty()
        && digits.len() <= 20
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !canonical {
        return Err(ParseError::InvalidOldSize);
    }
    let size: u64 = digits.parse().map_err(|_| ParseError::InvalidOldSize)?;
    if size > TREE_SIZE_MAX {
        return Err(ParseError::InvalidOldSize);
    }
    Ok(size)
}

/// One proof hash: exactly 44 characters of canonical padded standard base64.
fn decode_hash(line: &str) -> Option<Hash> {
    if line.len() != PROOF_LINE_CHARS {
        return None;
    }
    BASE64.decode(line).ok()?.try_into().ok()
}

/// Checks the shape of a signed checkpoint note and returns its checkpoint: the text (up to the
/// last blank line) parses as a checkpoint, and one or more signature lines follow, each starting
/// with an em dash and a space and ending in a newline. The signatures themselves are checked by
/// the witness against the log's key.
fn parse_checkpoint_note(note: &str) -> Result<Checkpoint, ParseError> {
    let invalid = |reason| ParseError::InvalidNote { reason };
    if note.len() > NOTE_BYTES_MAX {
        return Err(invalid("larger than the largest note"));
    }
    // The checkpoint text has no empty line, so the last blank line starts the signatures.
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| invalid("no blank line between the checkpoint and its signatures"))?;
    let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
    let checkpoint = Checkpoint::parse(text).map_err(ParseError::InvalidCheckpoint)?;
    let signature_lines = signatures
        .strip_suffix('\n')
        .ok_or_else(|| invalid("no signature lines, or the last one lacks its newline"))?;
    for (count, line) in signature_lines.split('\n').enumerate() {
        if count == NOTE_SIGNATURES_MAX {
            return Err(invalid("too many signature lines"));
        }
        let signature = line.strip_prefix(SIGNATURE_LINE_PREFIX).ok_or_else(|| {
            invalid("a signature line does not start with an em dash and a space")
        })?;
        if signature.is_empty() {
            return Err(invalid("a signature line is empty"));
        }
    }
    Ok(checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example request body of the tlog-witness spec.
    const SPEC_EXAMPLE: &str = "old 20852014\n\
        PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\
        jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
        5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n\
        /6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\
        \n\
        example.com/behind-the-sofa\n\
        20852163\n\
        CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
        \n\
        \u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
        \u{2014} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n";

    const NOTE: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

    const HASH_LINE: &str = "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=";

    fn hashes(count: usize) -> Vec<Hash> {
        (0..count).map(|index| [index as u8; 32]).collect()
    }

    #[test]
    fn the_spec_example_parses_and_serializes_back() {
        let request = AddCheckpointRequest::parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(request.old_size(), 20_852_014);
        assert_eq!(request.proof().len(), 4);
        assert_eq!(&request.proof()[0][..3], &[0x3e, 0x54, 0x4d]);
        assert_eq!(request.checkpoint().origin(), "example.com/behind-the-sofa");
        assert_eq!(request.checkpoint().size(), 20_852_163);
        assert!(request
            .checkpoint_note()
            .starts_with("example.com/behind-the-sofa\n"));
        assert_eq!(request.to_body(), SPEC_EXAMPLE);
    }

    #[test]
    fn requests_round_trip_through_the_body() {
        for (old_size, proof_lines) in [(0, 0), (1, 1), (7, 3), (TREE_SIZE_MAX, PROOF_LINES_MAX)] {
            let request =
                AddCheckpointRequest::new(old_size, hashes(proof_lines), NOTE.to_owned()).unwrap();
            let body = request.to_body();
            assert!(body.starts_with(&format!("old {old_size}\n")));
            assert_eq!(body.lines().count(), 1 + proof_lines + 1 + 5);
            let parsed = AddCheckpointRequest::parse(&body).unwrap();
            assert_eq!(parsed, request);
            assert_eq!(parsed.to_body(), body);
        }
    }

    #[test]
    fn the_largest_request_fits_the_body_limit() {
        // One long extension line brings the note to exactly the largest note.
        let extension = "x".repeat(NOTE_BYTES_MAX - NOTE.len() - 1);
        let note = NOTE.replacen("\n\n", &format!("\n{extension}\n\n"), 1);
        assert_eq!(note.len(), NOTE_BYTES_MAX);
        let request =
            AddCheckpointRequest::new(TREE_SIZE_MAX, hashes(PROOF_LINES_MAX), note).unwrap();
        let body = request.to_body();
        assert!(body.len() <= REQUEST_BODY_BYTES_MAX);
        assert_eq!(AddCheckpointRequest::parse(&body).unwrap(), request);
        let oversized = format!(
            "{}{}",
            request.to_body(),
            "x".repeat(REQUEST_BODY_BYTES_MAX)
        );
        assert!(matches!(
            AddCheckpointRequest::parse(&oversized),
            Err(ParseError::BodyTooLarge { .. })
        ));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let proof_lines = |count: usize| format!("{HASH_LINE}\n").repeat(count);
        type Case = (&'static str, String, fn(&ParseError) -> bool);
        let cases: Vec<Case> = vec![
            ("empty body", String::new(), |e| {
                matches!(e, ParseError::MissingOldLine)
            }),
            ("no old line", format!("\n{NOTE}"), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            ("checkpoint only", NOTE.to_owned(), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            ("non-decimal old size", format!("old x1\n\n{NOTE}"), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            ("hex old size", format!("old 0x10\n\n{NOTE}"), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            ("leading zero", format!("old 01\n\n{NOTE}"), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            ("plus sign", format!("old +1\n\n{NOTE}"), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            ("negative", format!("old -1\n\n{NOTE}"), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            ("empty size", format!("old \n\n{NOTE}"), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            ("two spaces", format!("old  1\n\n{NOTE}"), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            ("trailing space", format!("old 1 \n\n{NOTE}"), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            ("carriage return", format!("old 1\r\n\n{NOTE}"), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            ("capitalized", format!("OLD 1\n\n{NOTE}"), |e| {
                matches!(e, ParseError::InvalidOldSize)
            }),
            (
                "beyond the largest tree",
                format!("old 9223372036854775808\n\n{NOTE}"),
                |e| matches!(e, ParseError::InvalidOldSize),
            ),
            (
                "beyond u64",
                format!("old 99999999999999999999999\n\n{NOTE}"),
                |e| matches!(e, ParseError::InvalidOldSize),
            ),
            (
                "bad base64",
                format!("old 1\n{}\n\n{NOTE}", "*".repeat(44)),
                |e| matches!(e, ParseError::InvalidProofLine { line: 1 }),
            ),
            (
                "unpadded hash",
                format!(
                    "old 1\n{HASH_LINE}\n{}\n\n{NOTE}",
                    HASH_LINE.trim_end_matches('=')
                ),
                |e| matches!(e, ParseError::InvalidProofLine { line: 2 }),
            ),
            (
                "non-canonical trailing bits",
                format!("old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkax=\n\n{NOTE}"),
                |e| matches!(e, ParseError::InvalidProofLine { line: 1 }),
            ),
            (
                "url-safe alphabet",
                format!("old 1\n5-pKlUdi2LeF_BcMHBn-Ku6yhPGNCswZZD1X_6QgPd8=\n\n{NOTE}"),
                |e| matches!(e, ParseError::InvalidProofLine { line: 1 }),
            ),
            (
                "31-byte hash",
                format!("old 1\n{}\n\n{NOTE}", BASE64.encode([1u8; 31])),
                |e| matches!(e, ParseError::InvalidProofLine { line: 1 }),
            ),
            (
                "33-byte hash",
                format!("old 1\n{}\n\n{NOTE}", BASE64.encode([1u8; 33])),
                |e| matches!(e, ParseError::InvalidProofLine { line: 1 }),
            ),
            (
                "hash with spaces",
                format!("old 1\n {HASH_LINE}\n\n{NOTE}"),
                |e| matches!(e, ParseError::InvalidProofLine { line: 1 }),
            ),
            (
                "too many proof lines",
                format!("old 1\n{}\n{NOTE}", proof_lines(PROOF_LINES_MAX + 1)),
                |e| matches!(e, ParseError::TooManyProofLines),
            ),
            ("no blank line", format!("old 1\n{HASH_LINE}\n"), |e| {
                matches!(e, ParseError::MissingBlankLine)
            }),
            ("old line only", "old 0\n".to_owned(), |e| {
                matches!(e, ParseError::MissingBlankLine)
            }),
            ("old line without newline", "old 0".to_owned(), |e| {
                matches!(e, ParseError::MissingOldLine)
            }),
            ("no checkpoint", "old 0\n\n".to_owned(), |e| {
                matches!(e, ParseError::InvalidNote { .. })
            }),
            (
                "unsigned checkpoint",
                format!("old 0\n\n{}", &NOTE[..NOTE.find("\n\n").unwrap() + 1]),
                |e| matches!(e, ParseError::InvalidNote { .. }),
            ),
            (
                "blank line but no signature",
                format!("old 0\n\n{}\n", &NOTE[..NOTE.find("\n\n").unwrap() + 1]),
                |e| matches!(e, ParseError::InvalidNote { .. }),
            ),
            ("trailing garbage", format!("old 0\n\n{NOTE}garbage"), |e| {
                matches!(e, ParseError::InvalidNote { .. })
            }),
            (
                "trailing garbage line",
                format!("old 0\n\n{NOTE}garbage\n"),
                |e| matches!(e, ParseError::InvalidNote { .. }),
            ),
            // The last blank line then follows the signature, which the text cannot hold.
            ("trailing blank line", format!("old 0\n\n{NOTE}\n"), |e| {
                matches!(e, ParseError::InvalidCheckpoint(_))
            }),
            (
                "two blank lines before the checkpoint",
                format!("old 0\n\n\n{NOTE}"),
                |e| matches!(e, ParseError::InvalidCheckpoint(_)),
            ),
            (
                "not a checkpoint",
                "old 0\n\nhello\n\n\u{2014} k AAAA\n".to_owned(),
                |e| matches!(e, ParseError::InvalidCheckpoint(_)),
            ),
            (
                "checkpoint size with a leading zero",
                format!("old 0\n\n{}", NOTE.replace("\n20852163\n", "\n020852163\n")),
                |e| matches!(e, ParseError::InvalidCheckpoint(_)),
            ),
        ];
        for (what, body, expected) in cases {
            match AddCheckpointRequest::parse(&body) {
                Ok(request) => panic!("{what} accepted: {request:?}"),
                Err(error) => {
                    assert!(expected(&error), "{what}: unexpected error {error:?}");
                    assert!(!error.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn the_constructor_checks_what_the_parser_checks() {
        assert!(matches!(
            AddCheckpointRequest::new(TREE_SIZE_MAX + 1, Vec::new(), NOTE.to_owned()),
            Err(ParseError::InvalidOldSize)
        ));
        assert!(matches!(
            AddCheckpointRequest::new(1, hashes(PROOF_LINES_MAX + 1), NOTE.to_owned()),
            Err(ParseError::TooManyProofLines)
        ));
        assert!(matches!(
            AddCheckpointRequest::new(1, Vec::new(), format!("{NOTE}x")),
            Err(ParseError::InvalidNote { .. })
        ));
        let oversized = format!("{NOTE}{}", "\u{2014} k AAAA\n".repeat(NOTE_BYTES_MAX / 8));
        assert!(matches!(
            AddCheckpointRequest::new(1, Vec::new(), oversized),
            Err(ParseError::InvalidNote { .. })
        ));
    }
}
