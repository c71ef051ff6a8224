//! The chapter preset, run through the command line on the real PTB, against the reference
//! implementation started from the same initial weights.
//!
//! Tolerance: relative error of each iteration's loss <= 1e-4. The binary computes in f32 and
//! the reference in f64; each step's loss differs by f32 rounding (about 1e-6 relative, see
//! tests/equality.rs), and the parameters drift apart by the same rounding at every SGD step,
//! which after 57 steps at lr 0.1 stays one to two orders of magnitude below 1e-4.

mod common;

use rnnlm::files::corpus::Prepared;
use rnnlm::files::data;
use rnnlm::reference::ReferenceRnnlm;
use rnnlm::train::Batcher;
use rnnlm::{Dims, Rnnlm, Window};
use std::process::Command;

#[test]
fn chapter_preset_losses_equal_the_reference_for_three_epochs() {
    let Some(data) = common::ptb_data() else { return };
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("log.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_rnnlm"))
        .args(["train", "--epochs", "3", "--no-save", "--log", log.to_str().unwrap()])
        .env("RNNLM_DATA", &data)
        .env("RNNLM_CACHE", work.path().join("cache"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let losses: Vec<f64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter_map(|v| v.get("loss").map(|l| l.as_f64().unwrap()))
        .collect();
    // 999 training pairs / (10 x 5) = 19 iterations per epoch.
    assert_eq!(losses.len(), 57);

    // The same run in the reference: first 1,000 PTB words, V = 418, seed 1, lr 0.1.
    let prepared_dir = work.path().join("prepared");
    data::prepare_ptb(&data.join("ptb"), &prepared_dir).unwrap();
    let prepared = Prepared::open(&prepared_dir).unwrap();
    let corpus = prepared.train.ids().slice(0..1000);
    let dims = Dims { vocab: 418, embed: 100, hidden: 100 };
    assert_eq!(corpus.max(), Some(417));
    let window = Window { batch: 10, time: 5 };
    let init = Rnnlm::new(dims, window, 1).unwrap();
    let mut reference = ReferenceRnnlm::<f64>::from_params(dims, window, init.params());
    let mut batcher = Batcher::new(corpus.len(), window).unwrap();
    let (mut xs, mut ts) = (vec![0u32; 50], vec![0i32; 50]);
    for (iter, &loss) in losses.iter().enumerate() {
        batcher.next_window(corpus, &mut xs, &mut ts);
        let want = reference.train_step(&xs, &ts, 0.1, None);
        let error = (loss - want).abs() / want;
        assert!(error <= 1e-4, "iteration {}: binary {loss}, reference {want}", iter + 1);
    }
}
