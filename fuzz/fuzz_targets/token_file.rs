//! The token-file reader on arbitrary bytes: an error or valid ids, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rnnlm::files::corpus::properties::token_file_reader(data);
});
