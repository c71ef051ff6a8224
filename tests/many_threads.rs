//! A host's core count changes how fast training runs, never what it computes: checkpoints
//! trained on full PTB with 1, 2, 3, 16 and 64 threads are the same file, byte for byte. The
//! pools are larger than this machine has cores; every kernel splits its work by the shape
//! alone (or, where the split does not touch the order of any sum, by the pool), so the
//! oversubscribed pools take the same code paths as a 64-core host.

mod common;

use std::path::Path;
use std::process::Command;

/// Trains `cell` (2 layers, tied, dropout, clipping) for a few full-PTB windows of `B = 20`,
/// `T = 35` with `threads` threads; returns the checkpoint's bytes.
fn train(data: &Path, cache: &Path, cell: &str, threads: usize) -> Vec<u8> {
    let save = cache.join(format!("{cell}-{threads}.safetensors"));
    // Sizes at which every kernel takes its parallel paths: the recurrences' row groups (up to
    // five threads) and blocks of hidden units (beyond), the output layer's panels and tasks,
    // the update's pieces.
    let args = [
        "train",
        "--full-corpus",
        "--max-iters",
        "3",
        "--cell",
        cell,
        "--layers",
        "2",
        "--tie",
        "--dropout",
        "0.5",
        "--embed",
        "320",
        "--hidden",
        "320",
        "--batch",
        "20",
        "--time",
        "35",
        "--clip",
        "0.25",
    ];
    let output = Command::new(env!("CARGO_BIN_EXE_rnnlm"))
        .args(args)
        .args(["--threads", &threads.to_string(), "--save", save.to_str().unwrap()])
        .env("RNNLM_DATA", data)
        .env("RNNLM_CACHE", cache)
        .env("RNNLM_PTB_URL", common::LoopbackServer::down_url())
        .output()
        .expect("run rnnlm");
    assert!(output.status.success(), "{cell}, {threads} threads: {}", String::from_utf8_lossy(&output.stderr));
    std::fs::read(&save).unwrap()
}

#[test]
fn checkpoints_are_the_same_bytes_for_1_2_3_16_and_64_threads() {
    let Some(data) = common::ptb_data() else { return };
    let cache = tempfile::tempdir().unwrap();
    for cell in ["rnn", "lstm", "gru"] {
        let one = train(&data, cache.path(), cell, 1);
        for threads in [2, 3, 16, 64] {
            let many = train(&data, cache.path(), cell, threads);
            let differing = one.iter().zip(&many).filter(|(a, b)| a != b).count();
            assert!(
                one.len() == many.len() && differing == 0,
                "{cell}: {differing} bytes differ with {threads} threads"
            );
        }
    }
}
