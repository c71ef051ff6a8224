//! The corpus subcommands, run as a user runs them: spawning the binary.

mod common;

use common::{entries, ptb_files, LoopbackServer};
use std::path::Path;
use std::process::{Command, Output};

fn rnnlm(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rnnlm"));
    command.args(args).env_remove("RNNLM_DATA").env_remove("RNNLM_CACHE").env_remove("RNNLM_PTB_URL");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("run rnnlm")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a failure with a one-line message on stderr that contains every one of `needles`.
fn assert_one_line_error(output: &Output, needles: &[&str]) {
    assert!(!output.status.success(), "expected failure, got success: {}", stderr(output));
    let message = stderr(output);
    assert_eq!(message.trim_end().lines().count(), 1, "not one line: {message:?}");
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} missing from {message:?}");
    }
}

#[test]
fn prepare_rejects_missing_non_utf8_and_empty_files_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.txt");
    std::fs::write(&good, "a b c\n").unwrap();
    let latin1 = dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait\n").unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let blank = dir.path().join("blank.txt");
    std::fs::write(&blank, b"  \t ").unwrap();
    let missing = dir.path().join("missing.txt");
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();

    let cases: [(&[&str], &Path, &str); 5] = [
        (&["--train", missing.to_str().unwrap()], &missing, "No such file"),
        (&["--train", latin1.to_str().unwrap()], &latin1, "not UTF-8"),
        (&["--train", empty.to_str().unwrap()], &empty, "empty"),
        (&["--train", good.to_str().unwrap(), "--valid", latin1.to_str().unwrap()], &latin1, "line 1"),
        (&["--train", good.to_str().unwrap(), "--test", blank.to_str().unwrap()], &blank, "no tokens"),
    ];
    for (args, culprit, why) in cases {
        let mut all = vec!["prepare", "--out", out_s];
        all.extend_from_slice(args);
        let output = rnnlm(&all, &[]);
        assert_one_line_error(&output, &[culprit.to_str().unwrap(), why]);
        assert!(entries(&out).is_empty(), "{args:?} left {:?}", entries(&out));
    }
}

#[test]
fn an_unknown_validation_word_is_named_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.txt"), "the cat sat\n").unwrap();
    std::fs::write(dir.path().join("valid.txt"), "the cat\nthe dog sat\n").unwrap();
    let out = dir.path().join("out");
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let args = ["prepare", "--train", &p("train.txt"), "--valid", &p("valid.txt"), "--out", out.to_str().unwrap()];
    let output = rnnlm(&args, &[]);
    assert_one_line_error(&output, &[&p("valid.txt"), "line 2", "\"dog\"", "--unk"]);
    assert!(entries(&out).is_empty());
}

#[test]
fn japanese_text_prepares_at_char_level_and_inspects_back_as_text() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/samples/japanese.txt");
    let out = tempfile::tempdir().unwrap();
    let output = rnnlm(
        &["prepare", "--level", "char", "--train", sample.to_str().unwrap(), "--out", out.path().to_str().unwrap()],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let report = String::from_utf8(output.stdout).unwrap();
    let chars = std::fs::read_to_string(&sample).unwrap().chars().count();
    assert!(report.contains(&format!("{chars} tokens")), "{report}");
    let inspect = rnnlm(&["inspect", out.path().join("train.tok").to_str().unwrap(), "--show", "12"], &[]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let shown = String::from_utf8(inspect.stdout).unwrap();
    assert!(shown.contains("level:      char"), "{shown}");
    assert!(shown.contains("小さな港町の坂の上に、古"), "{shown}");
}

#[test]
fn inspect_reports_a_damaged_file_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.txt");
    std::fs::write(&train, "a b a c\n").unwrap();
    let out = dir.path().join("out");
    assert!(rnnlm(&["prepare", "--train", train.to_str().unwrap(), "--out", out.to_str().unwrap()], &[])
        .status
        .success());
    let tok = out.join("train.tok");
    let mut bytes = std::fs::read(&tok).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&tok, &bytes).unwrap();
    let output = rnnlm(&["inspect", tok.to_str().unwrap()], &[]);
    assert_one_line_error(&output, &[tok.to_str().unwrap(), "corrupted"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("checksum:   MISMATCH"));

    std::fs::write(&tok, &bytes[..70]).unwrap();
    assert_one_line_error(&rnnlm(&["inspect", tok.to_str().unwrap()], &[]), &["truncated"]);
}

#[test]
fn download_command_fetches_ptb_into_the_given_directory() {
    let Some(ptb) = common::ptb_data() else { return };
    let server = LoopbackServer::start(ptb_files(&ptb), 3);
    let dir = tempfile::tempdir().unwrap();
    let output =
        rnnlm(&["download", "ptb", "--dir", dir.path().to_str().unwrap(), "--base-url", &server.base_url], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(entries(dir.path()), ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]);
}

#[test]
fn prepare_ptb_with_an_unwritable_data_directory_uses_the_cache() {
    let Some(ptb) = common::ptb_data() else { return };
    let server = LoopbackServer::start(ptb_files(&ptb), 3);
    let dir = tempfile::tempdir().unwrap();
    // A data directory below a regular file cannot be created, not even by root.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    let data = blocker.join("data");
    let cache = dir.path().join("cache");
    let url = Path::new(&server.base_url);
    let envs = [("RNNLM_CACHE", cache.as_path()), ("RNNLM_PTB_URL", url)];
    let output = rnnlm(&["--data", data.to_str().unwrap(), "prepare", "--ptb"], &envs);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("downloading"), "{}", stderr(&output));
    let listing = entries(&cache.join("ptb"));
    for name in ["ptb.train.txt", "test.tok", "train.tok", "valid.tok", "vocab.txt"] {
        assert!(listing.iter().any(|e| e == name), "{name} missing from {listing:?}");
    }
    // A second run reuses everything: no download (the server is spent), nothing prepared.
    let again = rnnlm(&["--data", data.to_str().unwrap(), "prepare", "--ptb"], &envs);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).is_empty(), "{}", stderr(&again));
}

#[test]
fn missing_ptb_with_no_way_to_download_says_where_to_put_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let url = LoopbackServer::down_url();
    let envs = [("RNNLM_CACHE", cache.as_path()), ("RNNLM_PTB_URL", Path::new(&url))];
    let data = dir.path().join("data");
    let output = rnnlm(&["--data", data.to_str().unwrap(), "prepare", "--ptb"], &envs);
    assert!(!output.status.success());
    let message = stderr(&output);
    let last = message.trim_end().lines().last().unwrap();
    assert!(last.starts_with("error:") && last.contains(&data.join("ptb").display().to_string()), "{message}");
    assert!(last.contains("ptb.train.txt"), "{message}");
    // The directories made for the download are gone again.
    assert!(!data.exists() && !cache.exists(), "left behind: {:?}", entries(dir.path()));
}
