//! Signed notes and witness cosignatures, as C2SP signed-note and tlog-cosignature specify.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use trustlog::{
    add_signature_line, cosigner_verifier_key_text, sign_note, verifier_key_text, verify_note,
    verify_note_with, Checkpoint, Cosigner, Error, NoteSigner, NoteVerifier, SignatureType,
};

const CHECKPOINT_TEXT: &str =
    "tally.example/log\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

fn log_signer() -> NoteSigner {
    NoteSigner::from_seed("tally.example/log", &[7; 32]).unwrap()
}

/// Decodes the base64 payload of a signature line.
fn payload(line: &str) -> Vec<u8> {
    let encoded = line.trim_end_matches('\n').rsplit(' ').next().unwrap();
    BASE64.decode(encoded).unwrap()
}

/// A copy of `note` with one byte of the base64 of its `line`-th signature line changed to
/// another valid base64 character.
fn corrupt_signature(note: &str, line: usize) -> String {
    let mut lines: Vec<String> = note.split_inclusive('\n').map(str::to_owned).collect();
    let signature_start = lines.iter().position(|l| l == "\n").unwrap() + 1;
    let target = &mut lines[signature_start + line];
    let mut decoded = payload(target);
    decoded[10] ^= 0x01; // inside the signature, after the 4-byte key ID
    let prefix = target.rsplit_once(' ').unwrap().0.to_owned();
    *target = format!("{prefix} {}\n", BASE64.encode(decoded));
    lines.concat()
}

#[test]
fn key_id_is_the_truncated_hash_of_name_type_and_key() {
    let signer = log_signer();
    let mut hasher = Sha256::new();
    hasher.update(b"tally.example/log\n\x01");
    hasher.update(signer.public_key());
    let digest = hasher.finalize();
    assert_eq!(signer.key_id().to_be_bytes(), digest[..4]);
    let key_text = signer.verifier_key_text();
    assert_eq!(
        key_text,
        verifier_key_text("tally.example/log", &signer.public_key()).unwrap()
    );
    let mut key_data = vec![0x01];
    key_data.extend_from_slice(&signer.public_key());
    assert_eq!(
        key_text,
        format!(
            "tally.example/log+{}+{}",
            hex4(&digest[..4]),
            BASE64.encode(key_data)
        )
    );
}

fn hex4(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn note_is_text_blank_line_and_signature_line() {
    let signer = log_signer();
    let note = sign_note(CHECKPOINT_TEXT, &signer).unwrap();
    let (text, signature_line) = note.split_at(CHECKPOINT_TEXT.len());
    assert_eq!(text, CHECKPOINT_TEXT);
    assert!(signature_line.starts_with("\n\u{2014} tally.example/log "));
    assert!(signature_line.ends_with('\n'));
    let decoded = payload(signature_line);
    assert_eq!(decoded.len(), 4 + 64);
    assert_eq!(decoded[..4], signer.key_id().to_be_bytes());
    // The signature is plain RFC 8032 Ed25519 over the text, checked here with the library directly.
    let key = VerifyingKey::from_bytes(&signer.public_key()).unwrap();
    key.verify_strict(
        CHECKPOINT_TEXT.as_bytes(),
        &Signature::from_slice(&decoded[4..]).unwrap(),
    )
    .unwrap();
}

#[test]
fn notes_from_other_keys_or_with_other_text_are_refused() {
    let signer = log_signer();
    let note = sign_note(CHECKPOINT_TEXT, &signer).unwrap();
    let key_text = signer.verifier_key_text();
    verify_note(&note, &key_text).unwrap();

    // Another key under the same name has another key ID: its signature is unknown, so ignored,
    // and a note with no known signature is refused.
    let impostor = NoteSigner::from_seed("tally.example/log", &[8; 32]).unwrap();
    let forged = sign_note(CHECKPOINT_TEXT, &impostor).unwrap();
    assert!(matches!(
        verify_note(&forged, &key_text),
        Err(Error::NoVerifiedSignature)
    ));
    // The same key under another name: unknown as well.
    let renamed = NoteSigner::from_seed("other.example/log", &[7; 32]).unwrap();
    assert!(matches!(
        verify_note(&sign_note(CHECKPOINT_TEXT, &renamed).unwrap(), &key_text),
        Err(Error::NoVerifiedSignature)
    ));

    // Altered text under a known key's signature: the signature fails and the note is refused.
    let altered = note.replacen("20852163", "20852164", 1);
    assert!(matches!(
        verify_note(&altered, &key_text),
        Err(Error::SignatureInvalid { .. })
    ));
    // Altered signature bytes.
    assert!(matches!(
        verify_note(&corrupt_signature(&note, 0), &key_text),
        Err(Error::SignatureInvalid { .. })
    ));
}

#[test]
fn unknown_signatures_are_ignored_but_a_bad_known_one_rejects_the_note() {
    let signer = log_signer();
    let other = NoteSigner::from_seed("mirror.example/log", &[9; 32]).unwrap();
    let note = sign_note(CHECKPOINT_TEXT, &signer).unwrap();
    let both = add_signature_line(&note, &other.signature_line(CHECKPOINT_TEXT).unwrap()).unwrap();

    let verified = verify_note(&both, &signer.verifier_key_text()).unwrap();
    assert_eq!(verified.signatures.len(), 1);
    assert_eq!(verified.unverified_signatures.len(), 1);
    assert_eq!(verified.unverified_signatures[0].name, "mirror.example/log");
    assert_eq!(verified.unverified_signatures[0].key_id, other.key_id());

    // A broken unknown signature does not matter; a broken known one does.
    verify_note(&corrupt_signature(&both, 1), &signer.verifier_key_text()).unwrap();
    assert!(matches!(
        verify_note(&corrupt_signature(&both, 0), &signer.verifier_key_text()),
        Err(Error::SignatureInvalid { .. })
    ));
    // Both keys known: both verify.
    let verifiers = [
        NoteVerifier::parse(&signer.verifier_key_text()).unwrap(),
        NoteVerifier::parse(&other.verifier_key_text()).unwrap(),
    ];
    assert_eq!(
        verify_note_with(&both, &verifiers)
            .unwrap()
            .signatures
            .len(),
        2
    );
    // The same line twice counts once.
    let doubled =
        add_signature_line(&note, &signer.signature_line(CHECKPOINT_TEXT).unwrap()).unwrap();
    assert_eq!(
        verify_note(&doubled, &signer.verifier_key_text())
            .unwrap()
            .signatures
            .len(),
        1
    );
}

#[test]
fn malformed_notes_are_refused() {
    let signer = log_signer();
    let key_text = signer.verifier_key_text();
    let note = sign_note(CHECKPOINT_TEXT, &signer).unwrap();
    let line = signer.signature_line(CHECKPOINT_TEXT).unwrap();
    let cases = [
        ("no blank line", format!("{CHECKPOINT_TEXT}{line}")),
        ("no signature", format!("{CHECKPOINT_TEXT}\n")),
        ("no final newline", note.trim_end_matches('\n').to_owned()),
        (
            "hyphens instead of an em dash",
            note.replace('\u{2014}', "--"),
        ),
        ("tab", note.replacen("tally", "\ttally", 1)),
        ("carriage return", note.replace('\n', "\r\n")),
        (
            "stray text after the signatures",
            format!("{note}trailing\n"),
        ),
        (
            "bad base64",
            note.replacen(" ", "", 0).replace("=\n", "=!\n"),
        ),
        (
            "short signature",
            format!("{CHECKPOINT_TEXT}\n\u{2014} tally.example/log AAAA\n"),
        ),
        (
            "empty name",
            format!(
                "{CHECKPOINT_TEXT}\n\u{2014}  {}",
                line.rsplit(' ').next().unwrap()
            ),
        ),
    ];
    for (what, text) in cases {
        let result = verify_note(&text, &key_text);
        assert!(
            matches!(
                result,
                Err(Error::MalformedNote { .. }) | Err(Error::SignatureInvalid { .. })
            ),
            "{what}: {result:?}"
        );
    }
    let too_many = format!("{note}{}", line.repeat(trustlog::NOTE_SIGNATURES_MAX));
    assert!(matches!(
        verify_note(&too_many, &key_text),
        Err(Error::TooManySignatures)
    ));
    let huge = format!("{}\n{note}", "a".repeat(trustlog::NOTE_BYTES_MAX));
    assert!(matches!(
        verify_note(&huge, &key_text),
        Err(Error::NoteTooLarge { .. })
    ));
    // Signing refuses text that could not round-trip.
    assert!(matches!(
        sign_note("no newline", &signer),
        Err(Error::InvalidNoteText { .. })
    ));
    assert!(matches!(
        sign_note("bell\u{7}\n", &signer),
        Err(Error::InvalidNoteText { .. })
    ));
    assert!(add_signature_line(&note, "not a signature line\n").is_err());
    assert!(add_signature_line(&note, &line.repeat(2)).is_err());
}

#[test]
fn key_names_and_verifier_keys_are_checked() {
    for bad in ["", "a b", "a+b", "a\u{a0}b", "a\u{2003}b", "a\nb"] {
        assert!(
            NoteSigner::from_seed(bad, &[1; 32]).is_err(),
            "name {bad:?} accepted"
        );
    }
    assert!(
        NoteSigner::from_seed(&"n".repeat(trustlog::KEY_NAME_BYTES_MAX + 1), &[1; 32]).is_err()
    );
    let key_text = log_signer().verifier_key_text();
    let (name, rest) = key_text.split_once('+').unwrap();
    let (id, key) = rest.split_once('+').unwrap();
    assert_eq!(
        NoteVerifier::parse(&key_text).unwrap().to_key_text(),
        key_text
    );
    assert_eq!(
        NoteVerifier::parse(&format!("{name}+{}+{key}", id.to_uppercase()))
            .unwrap()
            .name(),
        name
    );
    let wrong_id = format!(
        "{name}+{:08x}+{key}",
        u32::from_str_radix(id, 16).unwrap() ^ 1
    );
    let mut wrong_type = BASE64.decode(key).unwrap();
    wrong_type[0] = 0x02;
    let identity_point = {
        let mut data = vec![0x01, 1];
        data.extend_from_slice(&[0; 31]);
        BASE64.encode(data)
    };
    for bad in [
        wrong_id,
        format!("{name}+{id}"),
        format!("{name}+{}+{key}", &id[..7]),
        format!("{name}+{id}+{}", BASE64.encode(&wrong_type)),
        format!("{name}+{id}+{}", &key[..key.len() - 4]),
        format!("{name}+{id}+{key}x"),
        format!("other+{id}+{key}"),
        format!(
            "{name}+{:08x}+{identity_point}",
            trustlog::key_id(name, SignatureType::Ed25519, &{
                let mut point = [0u8; 32];
                point[0] = 1;
                point
            })
        ),
    ] {
        assert!(
            NoteVerifier::parse(&bad).is_err(),
            "verifier key {bad:?} accepted"
        );
    }
    for bad in [
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+BIEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ] {
        assert!(
            NoteSigner::from_signer_key_text(bad).is_err(),
            "signer key {bad:?} accepted"
        );
    }
    // Debug output never shows the secret key.
    let debug = format!("{:?}", NoteSigner::from_seed("n", &[0xab; 32]).unwrap());
    assert!(
        debug.contains("NoteSigner") && !debug.contains("171, 171") && !debug.contains("abababab"),
        "{debug}"
    );
}

#[test]
fn witness_cosignatures_follow_cosignature_v1() {
    let log = log_signer();
    let witness = Cosigner::from_seed("witness.example/w1", &[3; 32]).unwrap();
    let note = sign_note(CHECKPOINT_TEXT, &log).unwrap();
    let line = witness.cosign(CHECKPOINT_TEXT, 1_679_315_147).unwrap();
    let cosigned = add_signature_line(&note, &line).unwrap();

    // The key ID uses signature type 0x04.
    let mut hasher = Sha256::new();
    hasher.update(b"witness.example/w1\n\x04");
    hasher.update(witness.public_key());
    let expected_id = hasher.finalize();
    let decoded = payload(&line);
    assert_eq!(decoded.len(), 4 + 8 + 64);
    assert_eq!(decoded[..4], expected_id[..4]);
    assert_eq!(decoded[4..12], 1_679_315_147u64.to_be_bytes());
    // The signed message is the header line, the time line and the checkpoint text.
    let message = format!("cosignature/v1\ntime 1679315147\n{CHECKPOINT_TEXT}");
    let key = VerifyingKey::from_bytes(&witness.public_key()).unwrap();
    key.verify_strict(
        message.as_bytes(),
        &Signature::from_slice(&decoded[12..]).unwrap(),
    )
    .unwrap();
    assert_eq!(
        trustlog::cosignature_message(CHECKPOINT_TEXT, 1_679_315_147).unwrap(),
        message
    );

    let witness_key = witness.verifier_key_text();
    assert_eq!(
        witness_key,
        cosigner_verifier_key_text("witness.example/w1", &witness.public_key()).unwrap()
    );
    assert_eq!(
        BASE64
            .decode(witness_key.rsplit('+').next().unwrap())
            .unwrap()[0],
        0x04
    );
    let verifiers = [
        NoteVerifier::parse(&log.verifier_key_text()).unwrap(),
        NoteVerifier::parse(&witness_key).unwrap(),
    ];
    let verified = verify_note_with(&cosigned, &verifiers).unwrap();
    assert_eq!(verified.signatures.len(), 2);
    assert_eq!(
        verified.signatures[1].signature_type,
        SignatureType::CosignatureV1
    );
    assert_eq!(verified.signatures[1].timestamp_s, Some(1_679_315_147));
    assert_eq!(
        Checkpoint::parse(&verified.text).unwrap().size(),
        20_852_163
    );
    // The log's verifier alone ignores the cosignature.
    assert_eq!(
        verify_note(&cosigned, &log.verifier_key_text())
            .unwrap()
            .unverified_signatures
            .len(),
        1
    );

    // A cosignature whose timestamp was changed no longer verifies.
    let mut altered = decoded.clone();
    altered[11] ^= 1;
    let altered_line = format!("\u{2014} witness.example/w1 {}\n", BASE64.encode(&altered));
    let tampered = add_signature_line(&note, &altered_line).unwrap();
    assert!(matches!(
        verify_note_with(&tampered, &verifiers),
        Err(Error::SignatureInvalid { .. })
    ));
    // A cosignature is not a plain note signature: the same key as a type 0x01 key is another key ID.
    let as_plain = verifier_key_text("witness.example/w1", &witness.public_key()).unwrap();
    assert!(matches!(
        verify_note(&add_signature_line(&note, &line).unwrap(), &as_plain),
        Err(Error::NoVerifiedSignature)
    ));
    // Only checkpoints are cosigned, and timestamps stay below 2^63.
    assert!(witness.cosign("not a checkpoint\n", 1).is_err());
    assert!(matches!(
        witness.cosign(CHECKPOINT_TEXT, 1 << 63),
        Err(Error::TimestampTooLarge { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_text_signed_round_trips_and_any_changed_byte_is_refused(
        seed in any::<[u8; 32]>(),
        lines in proptest::collection::vec("[a-zA-Z0-9 /.+=\u{e9}\u{4e2d}-]{0,40}", 1..6),
        position in any::<prop::sample::Index>(),
    ) {
        let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
        let signer = NoteSigner::from_seed("tally.example/log", &seed).unwrap();
        let note = sign_note(&text, &signer).unwrap();
        let verified = verify_note(&note, &signer.verifier_key_text()).unwrap();
        prop_assert_eq!(&verified.text, &text);

        // Change one ASCII byte of the text to another printable character.
        let ascii: Vec<usize> = text.char_indices().filter(|(_, c)| c.is_ascii_alphanumeric()).map(|(i, _)| i).collect();
        if !ascii.is_empty() {
            let at = ascii[position.index(ascii.len())];
            let mut bytes = text.clone().into_bytes();
            bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
            let altered = format!("{}{}", String::from_utf8(bytes).unwrap(), &note[text.len()..]);
            prop_assert!(verify_note(&altered, &signer.verifier_key_text()).is_err());
        }
    }
}
