//! The real Penn Treebank (found as `common::ptb_data` says; skipped without it): counts, ids, and a zero-copy open.

mod common;

use rnnlm::files::corpus::{Ids, Prepared, Split};
use rnnlm::files::data;
use std::collections::HashMap;

/// The spec's tokenizer, written independently: replace newlines, split, first-appearance ids.
fn spec_ids(text: &str, vocab: &mut HashMap<String, u32>, grow: bool) -> Vec<u32> {
    text.replace('\n', " <eos> ")
        .split_whitespace()
        .map(|word| {
            let next = vocab.len() as u32;
            if grow {
                *vocab.entry(word.to_owned()).or_insert(next)
            } else {
                vocab[word]
            }
        })
        .collect()
}

#[test]
fn prepared_ptb_has_the_spec_counts_vocabulary_and_ids() {
    let Some(data) = common::ptb_data() else { return };
    let source = data.join("ptb");
    let out = tempfile::tempdir().unwrap();
    let report = data::prepare_ptb(&source, out.path()).unwrap();
    assert_eq!(report.vocab_size, 10_000);

    let prepared = Prepared::open(out.path()).unwrap();
    assert_eq!(prepared.vocab.len(), 10_000);
    assert_eq!(&prepared.vocab.tokens()[..3], &["aer", "banknote", "berlitz"]);
    let mut spec_vocab = HashMap::new();
    for (split, name, count) in [
        (Split::Train, "ptb.train.txt", 929_589),
        (Split::Valid, "ptb.valid.txt", 73_760),
        (Split::Test, "ptb.test.txt", 82_430),
    ] {
        let file = prepared.split(split).unwrap();
        assert_eq!(file.header().token_count, count, "{name}");
        let text = std::fs::read_to_string(source.join(name)).unwrap();
        let want = spec_ids(&text, &mut spec_vocab, split == Split::Train);
        assert_eq!(file.ids().to_vec(), want, "{name}: ids differ from the spec tokenizer");
    }
    assert_eq!(spec_vocab.len(), 10_000);
}

#[test]
fn opening_a_token_file_does_not_copy_the_ids() {
    let Some(data) = common::ptb_data() else { return };
    let out = tempfile::tempdir().unwrap();
    data::prepare_ptb(&data.join("ptb"), out.path()).unwrap();
    let prepared = Prepared::open(out.path()).unwrap();
    let Ids::U16(ids) = prepared.train.ids() else { panic!("a 10,000-word vocabulary is stored in 2 bytes") };
    let mapped = prepared.train.mapped_range();
    let start = ids.as_ptr() as usize;
    assert_eq!(start, mapped.start + 64, "the ids start right after the header, inside the mapping");
    assert_eq!(start + ids.len() * 2, mapped.end);
}

#[test]
fn ptb_in_the_data_directory_is_verified_and_used_in_place() {
    let Some(data_dir) = common::ptb_data() else { return };
    let dir = data::ensure_ptb(&data_dir, "http://127.0.0.1:9/unused/", |line| panic!("no download expected: {line}"))
        .unwrap();
    assert_eq!(dir, data_dir.join("ptb"));
}
