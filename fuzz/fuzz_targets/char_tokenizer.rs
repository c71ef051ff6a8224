//! The character tokenizer on arbitrary UTF-8: ids -> text gives the text back.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&flags, rest)) = data.split_first() {
        if let Ok(text) = std::str::from_utf8(rest) {
            rnnlm::files::corpus::properties::char_round_trip(text, flags & 1 == 1);
        }
    }
});
