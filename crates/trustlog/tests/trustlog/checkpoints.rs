//! Checkpoint text: exact serialization and a strict parser.

use trustlog::{Checkpoint, Error};

const SPEC_EXAMPLE: &str =
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

#[test]
fn the_spec_example_parses_and_serializes_back() {
    let checkpoint = Checkpoint::parse(SPEC_EXAMPLE).unwrap();
    assert_eq!(checkpoint.origin(), "example.com/behind-the-sofa");
    assert_eq!(checkpoint.size(), 20_852_163);
    assert_eq!(&checkpoint.root()[..4], &[0x0a, 0xc5, 0x18, 0x6a]);
    assert!(checkpoint.extensions().is_empty());
    assert_eq!(checkpoint.to_body(), SPEC_EXAMPLE);
}

#[test]
fn body_is_origin_size_root_and_extensions() {
    let checkpoint = Checkpoint::new(
        "tally.example/log",
        0,
        [0u8; 32],
        vec!["ext one".into(), "two".into()],
    )
    .unwrap();
    assert_eq!(
        checkpoint.to_body(),
        "tally.example/log\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next one\ntwo\n"
    );
    assert_eq!(
        Checkpoint::parse(&checkpoint.to_body()).unwrap(),
        checkpoint
    );
}

#[test]
fn malformed_checkpoints_are_refused() {
    let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
    let cases = [
        ("missing final newline", format!("o\n1\n{root}")),
        ("empty origin", format!("\n1\n{root}\n")),
        ("no root line", "o\n1\n".to_owned()),
        ("no size line", "o\n".to_owned()),
        ("leading zero", format!("o\n01\n{root}\n")),
        ("plus sign", format!("o\n+1\n{root}\n")),
        ("negative", format!("o\n-1\n{root}\n")),
        ("spaces", format!("o\n 1\n{root}\n")),
        ("empty size", format!("o\n\n{root}\n")),
        (
            "beyond the largest tree",
            format!("o\n9223372036854775808\n{root}\n"),
        ),
        ("beyond u64", format!("o\n99999999999999999999\n{root}\n")),
        (
            "31-byte root",
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==\n".to_owned(),
        ),
        (
            "unpadded root",
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".to_owned(),
        ),
        (
            "non-canonical root bits",
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".to_owned(),
        ),
        (
            "url-safe alphabet",
            "o\n1\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n".to_owned(),
        ),
        ("empty extension line", format!("o\n1\n{root}\n\n")),
        ("control character", format!("o\tx\n1\n{root}\n")),
        ("carriage return", format!("o\n1\r\n{root}\n")),
    ];
    for (what, text) in cases {
        assert!(
            matches!(
                Checkpoint::parse(&text),
                Err(Error::InvalidCheckpoint { .. })
            ),
            "{what} accepted: {text:?}"
        );
    }
    assert!(Checkpoint::new("", 1, [0; 32], Vec::new()).is_err());
    assert!(Checkpoint::new("a\nb", 1, [0; 32], Vec::new()).is_err());
    assert!(Checkpoint::new("o", trustlog::TREE_SIZE_MAX + 1, [0; 32], Vec::new()).is_err());
    assert!(Checkpoint::new(
        &"o".repeat(trustlog::ORIGIN_BYTES_MAX + 1),
        1,
        [0; 32],
        Vec::new()
    )
    .is_err());
    assert!(Checkpoint::new(
        "o",
        1,
        [0; 32],
        vec!["x".into(); trustlog::CHECKPOINT_EXTENSIONS_MAX + 1]
    )
    .is_err());
    assert!(Checkpoint::new("o", 1, [0; 32], vec![String::new()]).is_err());
}
