//! The properties that the fuzz targets (`fuzz/`) and the property tests (`tests/properties.rs`)
//! check on arbitrary input. Each function panics when its property does not hold.

use super::tokenize::{Level, Tokenizer, Unknown};
use super::tokfile;
use super::vocab::Vocab;

/// Token-file reader: any bytes give either an error or ids that all lie in the vocabulary,
/// as many as the header says, which re-encode to a file that reads back the same; never a
/// panic. (Input is copied to an aligned buffer first, as a memory map would be.)
pub fn token_file_reader(data: &[u8]) {
    if let Ok((header, ids)) = tokfile::parse_owned(data) {
        assert_eq!(ids.len() as u64, header.token_count);
        assert!(ids.iter().all(|&id| (id as u64) < header.vocab_size));
        let encoded = tokfile::encode(&ids, header.vocab_size, header.level, header.vocab_crc, header.source_crc);
        assert_eq!(tokfile::parse_owned(&encoded).map(|(_, again)| again), Ok(ids));
    }
}

/// Token-file writer: any ids below any vocabulary size read back unchanged.
pub fn token_file_writer(ids: &[u32], vocab_size: u64) {
    if ids.is_empty() || ids.iter().any(|&id| id as u64 >= vocab_size) {
        return;
    }
    let encoded = tokfile::encode(ids, vocab_size, Level::Char, 1, 2);
    let (header, again) = tokfile::parse_owned(&encoded).expect("a freshly encoded file is valid");
    assert_eq!(again, ids);
    assert_eq!(header.id_bytes, if vocab_size <= 1 << 16 { 2 } else { 4 });
}

/// Vocabulary reader: any bytes give an error or a vocabulary that survives writing and
/// reading back unchanged.
pub fn vocab_reader(data: &[u8]) {
    if let Ok(vocab) = Vocab::from_file_bytes(data) {
        assert!(!vocab.is_empty());
        let text = vocab.to_file_text();
        assert_eq!(Vocab::from_file_bytes(text.as_bytes()).as_ref(), Ok(&vocab));
    }
}

/// Vocabulary writer: any set of distinct non-empty tokens round-trips through the file.
pub fn vocab_writer(tokens: &[String]) {
    let mut vocab = Vocab::new();
    for token in tokens.iter().filter(|t| !t.is_empty()) {
        vocab.intern(token);
    }
    if !vocab.is_empty() {
        assert_eq!(Vocab::from_file_bytes(vocab.to_file_text().as_bytes()), Ok(vocab));
    }
}

/// Character tokenizer: `ids -> text` gives the text back exactly (lower-cased when asked).
pub fn char_round_trip(text: &str, lowercase: bool) {
    let tokenizer = Tokenizer { level: Level::Char, lowercase };
    let mut vocab = Vocab::new();
    let ids = tokenizer.tokenize_growing(text, &mut vocab, None);
    let expected = if lowercase { text.to_lowercase() } else { text.to_owned() };
    assert_eq!(ids.len(), expected.chars().count());
    assert_eq!(tokenizer.detokenize(ids.iter().copied(), &vocab), expected);
    assert_eq!(tokenizer.tokenize_fixed(text, &vocab, Unknown::Reject, None).as_ref(), Ok(&ids));
}

/// Word tokenizer: tokens never contain whitespace, and tokenizing the detokenized text gives
/// the same ids.
pub fn word_round_trip(text: &str) {
    let tokenizer = Tokenizer { level: Level::Word, lowercase: false };
    let mut vocab = Vocab::new();
    let ids = tokenizer.tokenize_growing(text, &mut vocab, None);
    assert!(vocab.tokens().iter().all(|t| !t.is_empty() && !t.contains(char::is_whitespace)));
    let again = tokenizer.detokenize(ids.iter().copied(), &vocab);
    assert_eq!(tokenizer.tokenize_fixed(&again, &vocab, Unknown::Reject, None), Ok(ids));
}
