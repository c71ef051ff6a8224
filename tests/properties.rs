//! The fuzz targets' properties (`rnnlm::corpus::properties`), run as ordinary property tests.

use proptest::prelude::*;
use rnnlm::corpus::properties;

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
    (prop::collection::vec(0u32..70_000, 1..40), 1u64..80_000, prop::collection::vec(any::<u8>(), 0..8), 0usize..200)
        .prop_map(|(ids, vocab, noise, cut)| {
            let ids: Vec<u32> = ids.into_iter().map(|id| id % vocab.max(1) as u32).collect();
            let mut bytes = rnnlm::corpus::tokfile::encode(&ids, vocab, rnnlm::corpus::Level::Word, 0, 0);
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
