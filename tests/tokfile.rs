//! Token files on disk: every kind of damage, opened through the memory map, gets its own
//! error; writes are atomic.

mod common;

use common::entries;
use rnnlm::files::corpus::tokfile::{self, TokFileError, HEADER_LEN};
use rnnlm::files::corpus::{FileErrorKind, Level, TokenFile};
use std::path::PathBuf;

/// A valid file of 6 two-byte ids over a vocabulary of 5.
fn valid() -> Vec<u8> {
    tokfile::encode(&[4, 0, 1, 1, 3, 2], 5, Level::Word, 0xABCD, 0x1234)
}

/// Rewrites the header checksum after a deliberate edit of a header field.
fn reseal(bytes: &mut [u8]) {
    let crc = crc32fast::hash(&bytes[..48]);
    bytes[48..52].copy_from_slice(&crc.to_le_bytes());
}

/// Writes `bytes` to a file and opens it; returns the format error.
fn open_error(bytes: &[u8]) -> TokFileError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.tok");
    std::fs::write(&path, bytes).unwrap();
    match TokenFile::open(&path) {
        Err(e) => {
            assert!(e.to_string().starts_with(&path.display().to_string()), "the error names the file: {e}");
            match e.kind {
                FileErrorKind::Format(f) => f,
                other => panic!("expected a format error, got {other:?}"),
            }
        }
        Ok(_) => panic!("a malformed file opened"),
    }
}

fn edited(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = valid();
    edit(&mut bytes);
    bytes
}

#[test]
fn a_valid_file_opens_with_its_header_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.tok");
    std::fs::write(&path, valid()).unwrap();
    let file = TokenFile::open(&path).unwrap();
    assert_eq!(file.ids().to_vec(), vec![4, 0, 1, 1, 3, 2]);
    let h = file.header();
    assert_eq!((h.id_bytes, h.vocab_size, h.token_count, h.level), (2, 5, 6, Level::Word));
    assert_eq!((h.vocab_crc, h.source_crc), (0xABCD, 0x1234));
}

#[test]
fn empty_file() {
    assert_eq!(open_error(&[]), TokFileError::Empty);
}

#[test]
fn wrong_magic() {
    assert_eq!(open_error(&edited(|b| b[3] = b'?')), TokFileError::BadMagic);
    assert_eq!(open_error(b"a text file, not tokens\n"), TokFileError::BadMagic);
}

#[test]
fn unknown_version() {
    let bytes = edited(|b| {
        b[8..12].copy_from_slice(&7u32.to_le_bytes());
        reseal(b);
    });
    assert_eq!(open_error(&bytes), TokFileError::UnsupportedVersion { version: 7 });
}

#[test]
fn truncated_header() {
    assert_eq!(open_error(&valid()[..40]), TokFileError::TruncatedHeader { len: 40 });
}

#[test]
fn truncated_payload() {
    let bytes = valid();
    assert_eq!(
        open_error(&bytes[..bytes.len() - 3]),
        TokFileError::Truncated { expected: bytes.len() as u64, actual: bytes.len() as u64 - 3 }
    );
}

#[test]
fn length_mismatch() {
    let bytes = edited(|b| b.extend_from_slice(&[0, 0]));
    assert_eq!(open_error(&bytes), TokFileError::TrailingBytes { expected: 76, actual: 78 });
}

#[test]
fn bad_checksum() {
    let bytes = edited(|b| b[HEADER_LEN + 2] ^= 0x01);
    assert!(matches!(open_error(&bytes), TokFileError::PayloadChecksum { .. }));
}

#[test]
fn corrupted_header() {
    assert_eq!(open_error(&edited(|b| b[17] ^= 0x40)), TokFileError::HeaderChecksum);
}

#[test]
fn id_out_of_range() {
    let bytes = tokfile::encode(&[1, 2, 9, 0], 5, Level::Char, 0, 0);
    assert_eq!(open_error(&bytes), TokFileError::IdOutOfRange { position: 2, id: 9, vocab_size: 5 });
}

#[test]
fn writing_an_id_out_of_range_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.tok");
    std::fs::write(&path, "the user's file").unwrap();
    let error = tokfile::write(&path, &[1, 2, 9, 0], 5, Level::Char, 0, 0).unwrap_err();
    assert!(matches!(
        error.kind,
        FileErrorKind::Format(TokFileError::IdOutOfRange { position: 2, id: 9, vocab_size: 5 })
    ));
    assert!(error.to_string().contains("train.tok"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "the user's file");
    assert_eq!(entries(dir.path()), ["train.tok"], "no temporary file is left");
}

#[test]
fn no_tokens() {
    let bytes = edited(|b| {
        b.truncate(HEADER_LEN);
        b[24..32].fill(0);
        reseal(b);
    });
    assert_eq!(open_error(&bytes), TokFileError::NoTokens);
}

#[test]
fn impossible_header_fields() {
    let width = edited(|b| {
        b[12] = 8;
        reseal(b);
    });
    assert_eq!(open_error(&width), TokFileError::BadHeaderField { field: "id width", value: 8 });
    let level = edited(|b| {
        b[32] = 9;
        reseal(b);
    });
    assert_eq!(open_error(&level), TokFileError::BadHeaderField { field: "level", value: 9 });
    let huge_count = edited(|b| {
        b[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        reseal(b);
    });
    assert!(matches!(open_error(&huge_count), TokFileError::BadHeaderField { field: "token count", .. }));
}

#[test]
fn a_failed_write_leaves_the_old_file_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let target: PathBuf = dir.path().join("train.tok");
    tokfile::write(&target, &[0, 1], 2, Level::Word, 0, 0).unwrap();
    let before = std::fs::read(&target).unwrap();
    // Writing into a directory that does not exist fails before anything is created.
    let missing_dir = dir.path().join("nope").join("train.tok");
    assert!(tokfile::write(&missing_dir, &[0], 1, Level::Word, 0, 0).is_err());
    // Renaming over a non-empty directory fails after the temporary file was written.
    let blocked = dir.path().join("blocked.tok");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), "x").unwrap();
    let error = tokfile::write(&blocked, &[0], 1, Level::Word, 0, 0).unwrap_err();
    assert!(error.to_string().contains("blocked.tok"), "{error}");
    assert_eq!(entries(dir.path()), ["blocked.tok", "train.tok"], "no temporary file is left");
    assert_eq!(std::fs::read(&target).unwrap(), before);
}
