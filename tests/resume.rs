//! Long runs you can trust: a run stopped (by `--stop-after`, SIGINT, SIGTERM or `kill -9`)
//! and resumed ends with the same checkpoint, byte for byte, as the run left alone; a run
//! that diverges goes back to its last save point at half the rate; bad resumes are refused.

use rnnlm::train::RunState;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory with a small prepared corpus (train and valid splits).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// `lines` training lines of a 16-word language (a seeded generator: the same every run).
    fn new(lines: usize) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let words = [
            "the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "house", "big", "small", "red", "blue", "and",
            "then",
        ];
        let mut state = 5u64;
        let mut next = |n: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        for (name, n) in [("train.txt", lines), ("valid.txt", 60)] {
            let text: String = (0..n)
                .map(|_| {
                    let len = 3 + next(10);
                    let line: Vec<&str> = (0..len).map(|_| words[next(words.len())]).collect();
                    line.join(" ") + "\n"
                })
                .collect();
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let scratch = Scratch { dir };
        let prep = scratch.path("prep");
        let (train, valid) = (scratch.path("train.txt"), scratch.path("valid.txt"));
        let output = scratch.run(&["prepare", "--train", &train, "--valid", &valid, "--out", &prep]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        scratch
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rnnlm"));
        command.args(args).env("RNNLM_CACHE", self.dir.path().join("cache")).current_dir(self.dir.path());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run rnnlm")
    }

    /// `rnnlm train` on the prepared corpus with `model` flags, saving to `name`.
    fn train(&self, name: &str, model: &[&str], extra: &[&str]) -> Output {
        let (prep, save, log) = (self.path("prep"), self.path(name), self.path(&format!("{name}.log")));
        let base = ["train", "--prepared", &prep, "--save", &save, "--log", &log];
        self.run(&[&base[..], model, extra].concat())
    }

    fn resume(&self, name: &str, extra: &[&str]) -> Output {
        self.run(&[&["train", "--resume", &self.path(name)][..], extra].concat())
    }

    fn bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_status(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "stderr: {}", stderr(output));
}

/// The log's per-window lines (loss and rate; no timings), which a resumed run must repeat.
fn window_lines(log: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(log)
        .lines()
        .filter(|l| l.starts_with("{\"epoch\"") && l.contains("\"loss\""))
        .map(str::to_owned)
        .collect()
}

/// Small models of every cell, with dropout, stacking, tying and an adaptive softmax among
/// them, under `newbob` (so that rollbacks to the best epoch happen) and a save point every 7
/// windows.
const MODELS: [&[&str]; 4] = [
    &["--cell", "rnn", "--embed", "12", "--hidden", "16"],
    &["--cell", "lstm", "--layers", "2", "--embed", "12", "--hidden", "16", "--dropout", "0.3"],
    &["--cell", "gru", "--embed", "16", "--hidden", "16", "--tie", "--dropout", "0.2"],
    &[
        "--cell",
        "lstm",
        "--embed",
        "12",
        "--hidden",
        "16",
        "--output",
        "adaptive",
        "--cutoffs",
        "4,10",
        "--dropout",
        "0.2",
    ],
];
const RECIPE: [&str; 12] = [
    "--batch",
    "4",
    "--time",
    "5",
    "--lr",
    "2",
    "--epochs",
    "5",
    "--lr-schedule",
    "newbob:0.05",
    "--checkpoint-every",
    "7",
];

#[test]
fn a_run_stopped_anywhere_and_resumed_ends_byte_identical() {
    let scratch = Scratch::new(300);
    for (m, model) in MODELS.iter().enumerate() {
        let whole = format!("whole{m}.safetensors");
        assert_status(&scratch.train(&whole, model, &RECIPE), 0);
        let epochs = String::from_utf8_lossy(&scratch.bytes(&format!("{whole}.log")))
            .lines()
            .filter(|l| l.contains("train_ppl"))
            .count();
        assert!(epochs >= 3, "the run trains several epochs");
        // Windows per epoch: 300 lines of ~7.5 words, B x T = 20: about 120; stop mid-epoch,
        // at a save point (14), and across epochs.
        for stops in [&[1][..], &[14], &[50], &[130], &[33, 170]] {
            let cut = format!("cut{m}-{}.safetensors", stops[0]);
            let first = format!("{}", stops[0]);
            assert_status(&scratch.train(&cut, model, &[&RECIPE[..], &["--stop-after", &first]].concat()), 130);
            for later in &stops[1..] {
                assert_status(&scratch.resume(&cut, &["--stop-after", &later.to_string()]), 130);
            }
            let output = scratch.resume(&cut, &[]);
            assert_status(&output, 0);
            assert!(stderr(&output).contains("resuming the run"), "{}", stderr(&output));
            assert!(scratch.bytes(&cut) == scratch.bytes(&whole), "model {m}, stops {stops:?}: checkpoints differ");
            assert_eq!(
                window_lines(&scratch.bytes(&format!("{cut}.log"))),
                window_lines(&scratch.bytes(&format!("{whole}.log"))),
                "model {m}, stops {stops:?}"
            );
        }
    }
}

/// Starts a run long enough to be stopped from outside (several seconds) in the background.
fn spawn_long_run(scratch: &Scratch, name: &str, extra: &[&str]) -> std::process::Child {
    let (prep, save, log) = (scratch.path("prep"), scratch.path(name), scratch.path(&format!("{name}.log")));
    let args = ["train", "--prepared", &prep, "--save", &save, "--log", &log, "--batch", "20", "--time", "20"];
    let model = ["--embed", "64", "--hidden", "512", "--lr", "0.5", "--epochs", "60"];
    scratch
        .command(&[&args[..], &model, extra].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rnnlm")
}

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn wait_for(path: &str, timeout: Duration) {
    let start = Instant::now();
    while !Path::new(path).exists() {
        assert!(start.elapsed() < timeout, "{path} did not appear");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_and_sigterm_save_a_resumable_state_and_exit_130_and_143() {
    let scratch = Scratch::new(600);
    let mut reference = spawn_long_run(&scratch, "whole.safetensors", &["--checkpoint-every", "20"]);
    assert!(reference.wait().unwrap().success());
    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let save = format!("{name}.safetensors");
        let child = spawn_long_run(&scratch, &save, &["--checkpoint-every", "20"]);
        wait_for(&scratch.path(&format!("{save}.state")), Duration::from_secs(60));
        signal(&child, name);
        let output = child.wait_with_output().unwrap();
        assert_status(&output, code);
        assert!(stderr(&output).contains(&format!("resume with: rnnlm train --resume {}", scratch.path(&save))));
        assert_status(&scratch.resume(&save, &[]), 0);
        assert!(scratch.bytes(&save) == scratch.bytes("whole.safetensors"), "SIG{name}: checkpoints differ");
    }
}

/// Every file a save point writes can be read: the checkpoint loads, the state reads back,
/// every log line is JSON, the chart is a PNG.
fn assert_files_whole(scratch: &Scratch, name: &str) {
    rnnlm::files::checkpoint::load(Path::new(&scratch.path(name))).expect("the checkpoint loads");
    RunState::read(&scratch.bytes(&format!("{name}.state"))).expect("the state reads");
    for line in String::from_utf8_lossy(&scratch.bytes(&format!("{name}.log"))).lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("log line {line:?}: {e}"));
    }
    // The chart comes with the first epoch's end.
    if let Ok(png) = std::fs::read(scratch.path(&name.replace(".safetensors", ".png"))) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}

#[test]
fn kill_9_at_any_moment_leaves_the_last_save_point_whole_and_resumable() {
    let scratch = Scratch::new(600);
    let save = "killed.safetensors";
    // The same save points in both runs: a divergence (this rate has one) goes back to the
    // last of them.
    let mut reference = spawn_long_run(&scratch, "whole.safetensors", &["--checkpoint-every", "3"]);
    assert!(reference.wait().unwrap().success());
    let mut child = spawn_long_run(&scratch, save, &["--checkpoint-every", "3"]);
    // Saves come every few milliseconds: kills land before, during and after them.
    let mut kills = 0;
    for delay_ms in [1500u64, 1237, 1411, 1100] {
        wait_for(&scratch.path(&format!("{save}.state")), Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        assert_files_whole(&scratch, save);
        child = scratch
            .command(&["train", "--resume", &scratch.path(save)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    assert!(kills >= 2, "the run was killed {kills} times");
    assert_files_whole(&scratch, save);
    assert!(std::fs::read(scratch.path("killed.png")).is_ok_and(|png| png.starts_with(b"\x89PNG")));
    assert!(scratch.bytes(save) == scratch.bytes("whole.safetensors"), "checkpoints differ after {kills} kills");
}

#[test]
fn a_diverging_run_goes_back_at_half_the_rate_and_ends_as_the_slower_run() {
    let scratch = Scratch::new(300);
    let model = ["--batch", "4", "--time", "5", "--embed", "16", "--hidden", "16", "--epochs", "4"];
    assert_status(&scratch.train("slow.safetensors", &model, &["--lr", "2"]), 0);
    // At lr 8 the first windows blow the loss past 2 ln V; two halvings later the run is the
    // lr 2 run from its first window on.
    let output = scratch.train("fast.safetensors", &model, &["--lr", "8"]);
    assert_status(&output, 0);
    let messages = stderr(&output);
    assert_eq!(messages.matches("divergence in epoch 1").count(), 2, "{messages}");
    assert!(messages.contains("learning rate 2"), "{messages}");
    assert!(scratch.bytes("fast.safetensors") == scratch.bytes("slow.safetensors"));
    // Two recoveries more than the lr 2 run, which may have some of its own later on.
    let recoveries = |name: &str| {
        let log = String::from_utf8_lossy(&scratch.bytes(name)).into_owned();
        log.matches("\"event\":\"recovered\"").count()
    };
    assert_eq!(recoveries("fast.safetensors.log"), recoveries("slow.safetensors.log") + 2);
}

#[test]
fn a_run_that_keeps_diverging_stops_naming_the_epoch_and_window_and_writes_nothing() {
    let scratch = Scratch::new(100);
    std::fs::write(scratch.path("m.safetensors"), "the user's model").unwrap();
    let output = scratch.train("m.safetensors", &["--batch", "4", "--time", "5"], &["--lr", "1e30"]);
    assert_status(&output, 1);
    let last = stderr(&output).trim_end().lines().last().unwrap().to_owned();
    assert!(last.starts_with("error: training diverged in epoch 1, window "), "{last}");
    assert!(last.contains("after 3 recoveries"), "{last}");
    assert_eq!(std::fs::read_to_string(scratch.path("m.safetensors")).unwrap(), "the user's model");
    assert!(!Path::new(&scratch.path("m.safetensors.state")).exists());
    assert!(!Path::new(&scratch.path("m.png")).exists());
}

#[test]
fn bad_schedules_and_bad_resumes_fail_with_one_line_and_touch_nothing() {
    let scratch = Scratch::new(100);
    let model = ["--batch", "4", "--time", "5", "--embed", "8", "--hidden", "8", "--epochs", "2"];
    assert_status(&scratch.train("m.safetensors", &model, &["--stop-after", "5"]), 130);
    let state = scratch.bytes("m.safetensors.state");
    let checkpoint = scratch.bytes("m.safetensors");
    let one_line_error = |output: Output, needle: &str| {
        assert!(!output.status.success());
        let message = stderr(&output);
        let last = message.trim_end().lines().last().unwrap_or_default().to_owned();
        assert!(last.starts_with("error:") && last.contains(needle), "{needle:?} not in {message:?}");
        assert_eq!(message.lines().filter(|l| l.starts_with("error")).count(), 1, "{message}");
        assert!(scratch.bytes("m.safetensors.state") == state && scratch.bytes("m.safetensors") == checkpoint);
    };
    for (schedule, says) in [
        ("step:0:2", "the epoch of `step:0:2` must be a whole number >= 1"),
        ("newbob:-1", "the threshold of `newbob:-1`"),
        ("cosine", "unknown schedule `cosine`"),
    ] {
        one_line_error(scratch.train("m.safetensors", &model, &["--lr-schedule", schedule]), says);
    }
    one_line_error(scratch.resume("m.safetensors", &["--lr", "3"]), "--lr 3 contradicts the run saved in");
    one_line_error(scratch.resume("m.safetensors", &["--hidden", "9"]), "--hidden 9 contradicts");
    one_line_error(scratch.resume("m.safetensors", &["--tie"]), "--tie contradicts");
    one_line_error(scratch.resume("nothing.safetensors", &[]), "nothing.safetensors.state");
    // A corpus that changed under the run: the same words, the lines in reverse order.
    let prepare = |train: &str| {
        let (valid, prep) = (scratch.path("valid.txt"), scratch.path("prep"));
        assert!(scratch.run(&["prepare", "--train", train, "--valid", &valid, "--out", &prep]).status.success());
    };
    let text = std::fs::read_to_string(scratch.path("train.txt")).unwrap();
    let reversed: Vec<&str> = text.lines().rev().collect();
    std::fs::write(scratch.path("reversed.txt"), reversed.join("\n") + "\n").unwrap();
    prepare(&scratch.path("reversed.txt"));
    one_line_error(scratch.resume("m.safetensors", &[]), "with SHA-256");
    prepare(&scratch.path("train.txt"));
    // Truncated and damaged state files (copies: the run's own must stay as it is).
    for (name, bytes, says) in [
        ("t.safetensors", state[..state.len() / 2].to_vec(), "truncated"),
        (
            "d.safetensors",
            {
                let mut d = state.clone();
                d[100] ^= 4;
                d
            },
            "damaged",
        ),
        ("j.safetensors", b"junk".to_vec(), "not an rnnlm run state file"),
    ] {
        std::fs::write(scratch.path(&format!("{name}.state")), bytes).unwrap();
        one_line_error(scratch.resume(name, &[]), says);
    }
    // What was refused left the run resumable.
    assert_status(&scratch.resume("m.safetensors", &[]), 0);
}

#[test]
fn a_time_budget_ends_the_run_after_the_window_that_crosses_it() {
    let scratch = Scratch::new(600);
    let child = spawn_long_run(&scratch, "budget.safetensors", &["--time-budget", "1.5"]);
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert_status(&output, 0);
    assert!(stderr(&output).contains("stopped: the time budget is spent"), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(8), "the 60-epoch run stopped early");
    // The last (cut) epoch was evaluated and recorded like any other.
    let log = String::from_utf8_lossy(&scratch.bytes("budget.safetensors.log")).into_owned();
    let epochs: Vec<&str> = log.lines().filter(|l| l.contains("\"valid_ppl\"")).collect();
    assert!(!epochs.is_empty() && epochs.len() < 60, "{} epochs", epochs.len());
    assert!(
        epochs.last().unwrap().contains("\"valid_ppl\":") && !epochs.last().unwrap().contains("\"valid_ppl\":null")
    );
    rnnlm::files::checkpoint::load(Path::new(&scratch.path("budget.safetensors"))).unwrap();
}

#[test]
fn a_finished_run_resumed_with_more_epochs_equals_the_longer_run() {
    let scratch = Scratch::new(100);
    let model = ["--batch", "4", "--time", "5", "--embed", "8", "--hidden", "8", "--lr", "1", "--dropout", "0.1"];
    assert_status(&scratch.train("five.safetensors", &model, &["--epochs", "5"]), 0);
    assert_status(&scratch.train("three.safetensors", &model, &["--epochs", "3"]), 0);
    let unchanged = scratch.bytes("three.safetensors");
    let output = scratch.resume("three.safetensors", &[]);
    assert_status(&output, 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains("has ended (3 epochs"));
    assert!(scratch.bytes("three.safetensors") == unchanged, "resuming an ended run changes nothing");
    assert_status(&scratch.resume("three.safetensors", &["--epochs", "5"]), 0);
    assert!(scratch.bytes("three.safetensors") == scratch.bytes("five.safetensors"));
}

#[test]
fn a_second_sigint_aborts_at_once_and_leaves_the_last_save_point_whole() {
    let scratch = Scratch::new(600);
    let save = "twice.safetensors";
    let child = spawn_long_run(&scratch, save, &["--checkpoint-every", "3"]);
    wait_for(&scratch.path(&format!("{save}.state")), Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    // Either the second signal ended the process in the middle of its window or save (130 at
    // once), or the first had already finished them (130 with the resume hint): both leave
    // whole files, and the run resumes.
    assert_status(&output, 130);
    assert_files_whole(&scratch, save);
    assert_status(&scratch.resume(save, &["--epochs", "1"]), 0);
}

#[test]
fn a_save_point_whose_weights_already_diverge_ends_the_run_at_once() {
    // At this rate the update of window 10 spoils the weights: window 11, the first after the
    // save point of window 10, has a loss above 2 ln V whatever the rate, so going back there
    // cannot help and the run says so instead of retrying.
    let scratch = Scratch::new(600);
    let child = spawn_long_run(&scratch, "spoilt.safetensors", &["--checkpoint-every", "2"]);
    let output = child.wait_with_output().unwrap();
    assert_status(&output, 1);
    let last = stderr(&output).trim_end().lines().last().unwrap().to_owned();
    assert!(
        last.contains("the first window after the save point of window 10, whose weights give that loss at any rate"),
        "{last}"
    );
    assert!(!stderr(&output).contains("back to the state"), "no futile recoveries: {}", stderr(&output));
}
