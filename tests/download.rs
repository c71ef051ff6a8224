//! `download_ptb` against a loopback HTTP server started by the test.

mod common;

use common::{entries, ptb_files, LoopbackServer};
use rnnlm::files::data::{self, DataError};

#[test]
fn downloads_verifies_and_writes_all_three_files() {
    let Some(ptb) = common::ptb_data() else { return };
    let server = LoopbackServer::start(ptb_files(&ptb), 3);
    let dir = tempfile::tempdir().unwrap();
    let mut log = Vec::new();
    data::download_ptb(dir.path(), &server.base_url, |line| log.push(line.to_owned())).unwrap();
    assert_eq!(entries(dir.path()), ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]);
    for (name, bytes) in ptb_files(&ptb) {
        assert_eq!(std::fs::read(dir.path().join(&name)).unwrap(), bytes, "{name}");
    }
    assert!(log.iter().any(|l| l.contains("downloading") && l.contains("ptb.train.txt")), "{log:?}");
    // A second run verifies what is there and fetches nothing (the server would refuse).
    data::download_ptb(dir.path(), &LoopbackServer::down_url(), |_| {}).unwrap();
}

#[test]
fn a_corrupted_file_is_rejected_and_nothing_is_left_behind() {
    let Some(ptb) = common::ptb_data() else { return };
    let mut files = ptb_files(&ptb);
    let train = &mut files.iter_mut().find(|(name, _)| name == "ptb.train.txt").unwrap().1;
    train[1000] ^= 0x20;
    let server = LoopbackServer::start(files, 3);
    let dir = tempfile::tempdir().unwrap();
    let error = data::download_ptb(dir.path(), &server.base_url, |_| {}).unwrap_err();
    match &error {
        DataError::Checksum { what, expected, .. } => {
            assert!(what.contains("ptb.train.txt"), "{error}");
            assert_eq!(expected, data::PTB_FILES[0].2);
        }
        other => panic!("expected a checksum error, got {other}"),
    }
    assert!(error.to_string().contains("nothing was written"), "{error}");
    assert!(entries(dir.path()).is_empty(), "left behind: {:?}", entries(dir.path()));
}

#[test]
fn a_server_that_is_down_gives_a_clear_error() {
    let url = LoopbackServer::down_url();
    let dir = tempfile::tempdir().unwrap();
    let error = data::download_ptb(&dir.path().join("data/ptb"), &url, |_| {}).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, DataError::Download { .. }), "{message}");
    assert!(message.contains("cannot download") && message.contains("ptb.train.txt"), "{message}");
    // Neither the directory nor its parent, both made for the download, is left behind.
    assert!(entries(dir.path()).is_empty(), "left behind: {:?}", entries(dir.path()));
}

#[test]
fn a_missing_file_on_the_server_names_the_status() {
    let server = LoopbackServer::start(Vec::new(), 1);
    let dir = tempfile::tempdir().unwrap();
    let message = data::download_ptb(dir.path(), &server.base_url, |_| {}).unwrap_err().to_string();
    assert!(message.contains("404"), "{message}");
}
