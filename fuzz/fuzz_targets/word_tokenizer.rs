//! The word tokenizer on arbitrary UTF-8: tokenizing the detokenized text gives the same ids.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        rnnlm::files::corpus::properties::word_round_trip(text);
    }
});
