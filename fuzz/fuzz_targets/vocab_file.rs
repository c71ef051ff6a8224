//! The vocabulary reader on arbitrary bytes: an error, or a vocabulary that round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rnnlm::files::corpus::properties::vocab_reader(data);
});
