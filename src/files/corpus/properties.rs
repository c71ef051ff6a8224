//! The properties that the fuzz targets (`fuzz/`) and the property tests below check on
//! arbitrary input. Each function panics when its property does not hold. Public only with the
//! feature `fuzzing`, which the fuzz targets turn on.

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

/// The same properties, run as ordinary property tests.
#[cfg(test)]
mod tests {
    use super as properties;
    use proptest::prelude::*;

    /// Text drawn from scripts and characters that stress tokenizers: ASCII and whitespace of every
    /// kind, Japanese, emoji with joiners, combining marks, case pairs that lower-case to several
    /// characters.
    fn awkward_text() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a",
            "Z",
            " ",
            "  ",
            "\n",
            "\r\n",
            "\t",
            "\u{3000}",
            "\u{85}",
            "\u{2028}",
            "吾輩",
            "は",
            "猫",
            "。",
            "👩‍👩‍👧",
            "🇯🇵",
            "e\u{301}",
            "\u{301}",
            "İ",
            "ß",
            "Ǆ",
            "<eos>",
            "\\",
            "\\n",
            "x",
            "ünï",
        ]);
        prop::collection::vec(pieces, 0..60).prop_map(|parts| parts.concat())
    }

    /// A valid header with random fields followed by arbitrary bytes, so the reader's checks past
    /// the header get exercised, not only the magic check.
    fn token_file_like() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec(0u32..70_000, 1..40),
            1u64..80_000,
            prop::collection::vec(any::<u8>(), 0..8),
            0usize..200,
        )
            .prop_map(|(ids, vocab, noise, cut)| {
                let ids: Vec<u32> = ids.into_iter().map(|id| id % vocab.max(1) as u32).collect();
                let mut bytes =
                    crate::files::corpus::tokfile::encode(&ids, vocab, crate::files::corpus::Level::Word, 0, 0);
                for (i, b) in noise.iter().enumerate() {
                    let at = (cut + i * 7) % bytes.len();
                    bytes[at] ^= b;
                }
                bytes.truncate(bytes.len().saturating_sub(cut % 5));
                bytes
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn token_file_reader_never_panics_on_bytes(data in prop::collection::vec(any::<u8>(), 0..300)) {
            properties::token_file_reader(&data);
        }

        #[test]
        fn token_file_reader_on_damaged_files(data in token_file_like()) {
            properties::token_file_reader(&data);
        }

        #[test]
        fn token_files_round_trip(ids in prop::collection::vec(any::<u32>(), 1..100), vocab in 1u64..=(1 << 32)) {
            let ids: Vec<u32> = ids.into_iter().map(|id| (id as u64 % vocab) as u32).collect();
            properties::token_file_writer(&ids, vocab);
        }

        #[test]
        fn vocab_reader_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
            properties::vocab_reader(&data);
        }

        #[test]
        fn vocab_reader_on_text(text in awkward_text()) {
            properties::vocab_reader(text.as_bytes());
        }

        #[test]
        fn vocab_files_round_trip(tokens in prop::collection::vec(awkward_text(), 0..20)) {
            properties::vocab_writer(&tokens);
        }

        #[test]
        fn characters_round_trip(text in awkward_text(), lowercase in any::<bool>()) {
            properties::char_round_trip(&text, lowercase);
        }

        #[test]
        fn characters_round_trip_on_any_string(text in any::<String>()) {
            properties::char_round_trip(&text, false);
        }

        #[test]
        fn words_round_trip(text in awkward_text()) {
            properties::word_round_trip(&text);
        }
    }
}
