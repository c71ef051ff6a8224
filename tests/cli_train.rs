//! `rnnlm train`, `eval`, `predict` and `generate`, run as a user runs them.

mod common;

use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary with `data` as its data directory (PTB, if any, in `data/ptb`) and `cache`
/// as its cache. PTB is never downloaded: the download address is one where nothing listens.
fn rnnlm(args: &[&str], data: &Path, cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnnlm"))
        .args(args)
        .env("RNNLM_DATA", data)
        .env("RNNLM_CACHE", cache)
        .env("RNNLM_PTB_URL", common::LoopbackServer::down_url())
        .output()
        .expect("run rnnlm")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A failure whose error is one line, the last on stderr, containing `needle`. Progress lines
/// (preparing PTB, "training on ...") may come before it.
fn assert_one_line_error(output: &Output, needle: &str) {
    assert!(!output.status.success(), "expected failure: {}", stdout(output));
    let message = stderr(output);
    let last = message.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("error:"), "{message:?}");
    assert_eq!(message.matches("error").count(), 1, "one error line: {message:?}");
    assert!(last.contains(needle), "{needle:?} missing from {message:?}");
}

#[test]
fn bad_flag_values_fail_with_one_line_and_keep_an_existing_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let text = dir.path().join("tiny.txt");
    std::fs::write(&text, "a b c d e f g h i j\n").unwrap();
    let save = dir.path().join("keep.safetensors");
    std::fs::write(&save, "the user's previous checkpoint").unwrap();
    let (t, s) = (text.to_str().unwrap(), save.to_str().unwrap());
    // Flag errors come before any work, so they need no corpus.
    let flag_cases: [(&[&str], &str); 5] = [
        (&["train", "--batch", "0", "--save", s], "--batch"),
        (&["train", "--lr", "-1", "--save", s], "positive"),
        (&["train", "--lr", "abc", "--save", s], "not a number"),
        (&["train", "--text", t, "--level", "klingon", "--save", s], "klingon"),
        (&["train", "--lr-decay", "0.5", "--save", s], "at least 1"),
    ];
    let check = |args: &[&str], needle: &str| {
        let output = rnnlm(args, dir.path(), &cache);
        assert_one_line_error(&output, needle);
        assert_eq!(std::fs::read_to_string(&save).unwrap(), "the user's previous checkpoint", "{args:?}");
        output
    };
    for (args, needle) in flag_cases {
        let output = check(args, needle);
        assert_eq!(stderr(&output).lines().count(), 1, "flag errors come before any work: {}", stderr(&output));
    }
    check(&["train", "--text", t, "--batch", "10", "--time", "5", "--save", s], "shorter than one");
}

#[test]
fn a_ptb_prefix_shorter_than_one_window_fails_and_keeps_an_existing_checkpoint() {
    let Some(data) = common::ptb_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("keep.safetensors");
    std::fs::write(&save, "the user's previous checkpoint").unwrap();
    let output = rnnlm(&["train", "--corpus-size", "30", "--save", save.to_str().unwrap()], &data, dir.path());
    assert_one_line_error(&output, "shorter than one");
    assert_eq!(std::fs::read_to_string(&save).unwrap(), "the user's previous checkpoint");
}

#[test]
fn a_diverging_run_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("words.txt");
    let words: Vec<String> = (0..300).map(|i| format!("w{}", i * 7 % 40)).collect();
    std::fs::write(&text, words.join(" ")).unwrap();
    let save = dir.path().join("m.safetensors");
    std::fs::write(&save, "old").unwrap();
    let args = ["train", "--text", text.to_str().unwrap(), "--lr", "1e30", "--epochs", "2", "--save"];
    let output = rnnlm(&[&args[..], &[save.to_str().unwrap()]].concat(), dir.path(), &dir.path().join("c"));
    assert_one_line_error(&output, "diverged");
    assert_eq!(std::fs::read_to_string(&save).unwrap(), "old");
    assert!(!save.with_extension("png").exists());
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 1000, "an image of plausible size, not {} bytes", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn chapter_run_writes_checkpoint_and_chart_then_predict_eval_and_generate_read_it() {
    let Some(data) = common::ptb_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let rnnlm = |args: &[&str], cache: &Path| rnnlm(args, &data, cache);
    let save = dir.path().join("runs/chapter.safetensors");
    let s = save.to_str().unwrap();
    let output = rnnlm(&["train", "--epochs", "30", "--save", s], &cache);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    let epochs: Vec<&str> = printed.lines().filter(|l| l.starts_with("epoch")).collect();
    assert_eq!(epochs.len(), 30, "{printed}");
    assert!(epochs[0].contains("valid ppl         -"), "{}", epochs[0]);
    assert_eq!(png_size(&std::fs::read(save.with_extension("png")).unwrap()), (800, 500));

    let predict = rnnlm(&["predict", "--checkpoint", s], &cache);
    assert!(predict.status.success(), "{}", stderr(&predict));
    let shown = stdout(&predict);
    assert!(shown.contains("row 10") && shown.contains("input  aer"), "{shown}");
    assert!(shown.lines().last().unwrap().starts_with("accuracy: "), "{shown}");

    let eval = rnnlm(&["eval", "--checkpoint", s, "--split", "train", "--batch", "10", "--time", "5"], &cache);
    assert_one_line_error(&eval, "outside the checkpoint's 418-token vocabulary");

    let generated = rnnlm(&["generate", "--checkpoint", s, "--start", "the", "--len", "20", "--seed", "3"], &cache);
    assert!(generated.status.success(), "{}", stderr(&generated));
    let text = stdout(&generated);
    assert!(text.starts_with("the "), "{text}");
    let again = rnnlm(&["generate", "--checkpoint", s, "--start", "the", "--len", "20", "--seed", "3"], &cache);
    assert_eq!(stdout(&again), text, "the same seed gives the same text");
    assert_one_line_error(
        &rnnlm(&["generate", "--checkpoint", s, "--start", "zyzzyva"], &cache),
        "\"zyzzyva\" is not in the training vocabulary",
    );
}

#[test]
fn init_checks_shapes_against_the_corpus_and_flags() {
    let Some(data) = common::ptb_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let rnnlm = |args: &[&str], cache: &Path| rnnlm(args, &data, cache);
    let first = dir.path().join("first.safetensors");
    let f = first.to_str().unwrap();
    assert!(rnnlm(&["train", "--epochs", "1", "--save", f], &cache).status.success());
    let output = rnnlm(&["train", "--epochs", "1", "--hidden", "50", "--init", f, "--no-save"], &cache);
    assert_one_line_error(&output, "hidden 100, but the corpus and flags give vocabulary 418, embed 100, hidden 50");
    let resumed = dir.path().join("resumed.safetensors");
    let output = rnnlm(&["train", "--epochs", "2", "--init", f, "--save", resumed.to_str().unwrap()], &cache);
    assert!(output.status.success(), "{}", stderr(&output));
    let ckpt = rnnlm::files::checkpoint::load(&resumed).unwrap();
    assert_eq!(ckpt.meta.epoch, 3, "epochs add up across --init");
}

#[test]
fn japanese_characters_train_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/samples/japanese.txt");
    let save = dir.path().join("ja.safetensors");
    let (t, s) = (sample.to_str().unwrap(), save.to_str().unwrap());
    let output = rnnlm(
        &["train", "--text", t, "--level", "char", "--corpus-size", "1000", "--epochs", "60", "--save", s],
        dir.path(),
        &cache,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let last = stdout(&output).lines().rfind(|l| l.starts_with("epoch")).unwrap().to_owned();
    let ppl: f64 = last.split('|').nth(1).unwrap().trim().trim_start_matches("train ppl").trim().parse().unwrap();
    assert!(ppl < 60.0, "60 epochs bring character perplexity well below the vocabulary size: {last}");
    let predict = rnnlm(&["predict", "--checkpoint", s, "--text", t], dir.path(), &cache);
    assert!(predict.status.success(), "{}", stderr(&predict));
    let shown = stdout(&predict);
    assert!(shown.contains("input  小 さ な 港 町"), "{shown}");
}

#[test]
fn bench_reports_its_json_fields_and_the_speed_up_over_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = ["--vocab", "50", "--embed", "8", "--hidden", "12", "--batch", "3", "--time", "4"];
    let rounds = ["--iters", "3", "--repeats", "3", "--threads", "2"];
    let args: Vec<&str> =
        ["bench"].iter().chain(&sizes).chain(&rounds).copied().chain(["--scaling", "--json"]).collect();
    let output = rnnlm(&args, dir.path(), dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(json["config"], "custom");
    assert_eq!(json["threads"], 2);
    assert_eq!((json["vocab"].clone(), json["hidden"].clone(), json["time"].clone()), (50.into(), 12.into(), 4.into()));
    let number = |field: &str| json[field].as_f64().unwrap_or_else(|| panic!("{field} missing from {json}"));
    for field in ["tokens_per_sec", "gflops", "ceiling_gflops", "one_thread_tokens_per_sec", "speedup"] {
        assert!(number(field) > 0.0, "{field} in {json}");
    }
    assert!(number("tokens_per_sec_min") <= number("tokens_per_sec"));
    assert!(number("tokens_per_sec") <= number("tokens_per_sec_max"));
    assert!(number("speedup_min") <= number("speedup") && number("speedup") <= number("speedup_max"));
    let fractions = number("rnn_fraction") + number("affine_fraction") + number("update_fraction");
    assert!((fractions - 1.0).abs() < 1e-9, "{json}");
    let phases = json["phases"].as_array().unwrap_or_else(|| panic!("phases missing from {json}"));
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    let all = ["embedding", "recurrent forward", "output forward", "output backward", "recurrent backward", "update"];
    assert_eq!(names, all);
    let shares: f64 = phases.iter().map(|p| p["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-9, "{json}");
    assert!(phases.iter().all(|p| p["tasks"].as_u64().is_some_and(|t| t >= 1) && p["gflops"].as_f64() >= Some(0.0)));
    assert!(phases[2]["gflops"].as_f64() > Some(0.0) && phases[0]["gflops"].as_f64() == Some(0.0), "{json}");

    let text =
        rnnlm(&["bench"].iter().chain(&sizes).chain(&rounds).copied().collect::<Vec<_>>(), dir.path(), dir.path());
    assert!(text.status.success(), "{}", stderr(&text));
    let text = stdout(&text);
    for needle in ["tokens/s (median; range", "GFLOP/s", "ceiling:", "time split: embedding", "output backward"] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    assert!(!text.contains("1 thread:"), "no one-thread rounds without --scaling: {text}");

    // An adaptive softmax counts the FLOPs its clusters do: fewer than the full layer's.
    let adaptive: Vec<&str> = ["bench"]
        .iter()
        .chain(&sizes)
        .chain(&rounds)
        .copied()
        .chain(["--output", "adaptive", "--cutoffs", "10,30", "--json"])
        .collect();
    let output = rnnlm(&adaptive, dir.path(), dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let adaptive: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!((adaptive["output"].as_str(), json["output"].as_str()), (Some("adaptive"), Some("full")));
    let flops = |json: &serde_json::Value| json["flops_per_token"].as_f64().unwrap();
    assert!(0.0 < flops(&adaptive) && flops(&adaptive) < flops(&json), "{adaptive} against {json}");
}

#[test]
fn gated_stacked_models_train_save_and_load_through_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/samples/japanese.txt");
    let save = dir.path().join("lstm.safetensors");
    let (t, s) = (sample.to_str().unwrap(), save.to_str().unwrap());
    let corpus = ["--text", t, "--level", "char", "--corpus-size", "600"];
    let sizes = ["--embed", "16", "--hidden", "16", "--epochs", "2", "--lr", "1"];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = ["train"].iter().chain(&corpus).chain(&sizes).chain(extra).copied().collect();
        rnnlm(&args, dir.path(), &cache)
    };
    let output = run(&["--cell", "lstm", "--layers", "2", "--dropout", "0.3", "--save", s]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("2 x lstm, dropout 0.3"), "{}", stderr(&output));
    let ckpt = rnnlm::files::checkpoint::load(&save).unwrap();
    assert_eq!((ckpt.arch.cell, ckpt.arch.layers, ckpt.meta.dropout), (rnnlm::Cell::Lstm, 2, 0.3));

    // --init takes the cell and the layers from the checkpoint, and refuses flags that differ.
    let again = dir.path().join("again.safetensors");
    let output = run(&["--init", s, "--save", again.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(rnnlm::files::checkpoint::load(&again).unwrap().arch, ckpt.arch);
    assert_one_line_error(&run(&["--init", s, "--cell", "gru", "--no-save"]), "has lstm layers, but --cell says gru");
    assert_one_line_error(&run(&["--init", s, "--layers", "3", "--no-save"]), "has 2 layers, but --layers says 3");
    assert_one_line_error(&run(&["--init", s, "--tie", "--no-save"]), "has an affine.W of its own, but --tie");

    let tied = dir.path().join("tied.safetensors");
    let output = run(&["--cell", "gru", "--tie", "--save", tied.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let ckpt = rnnlm::files::checkpoint::load(&tied).unwrap();
    assert!(ckpt.arch.tied && ckpt.arch.cell == rnnlm::Cell::Gru, "{:?}", ckpt.arch);

    let predict = rnnlm(&["predict", "--checkpoint", s, "--text", t], dir.path(), &cache);
    assert!(predict.status.success(), "{}", stderr(&predict));
    let generated = rnnlm(&["generate", "--checkpoint", s, "--start", "小さな", "--len", "5"], dir.path(), &cache);
    assert!(generated.status.success(), "{}", stderr(&generated));
}

#[test]
fn bad_model_options_fail_with_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("tiny.txt");
    std::fs::write(&text, "a b c d e f g h i j\n").unwrap();
    let t = text.to_str().unwrap();
    for (args, needle) in [
        (["--cell", "elman"], "\"elman\" is not a cell: rnn, lstm or gru"),
        (["--layers", "0"], "--layers"),
        (["--dropout", "1"], "--dropout"),
        (["--dropout", "-0.1"], "must be at least 0 and below 1"),
        (["--tie", "--hidden=50"], "--tie needs --embed equal to --hidden (D = 100, H = 50)"),
    ] {
        let all: Vec<&str> = ["train", "--text", t, "--no-save"].iter().chain(&args).copied().collect();
        let output = rnnlm(&all, dir.path(), &dir.path().join("cache"));
        assert_one_line_error(&output, needle);
        assert_eq!(stderr(&output).lines().count(), 1, "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn an_adaptive_softmax_trains_and_every_command_reads_it_and_bad_cutoffs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/samples/japanese.txt");
    let save = dir.path().join("adaptive.safetensors");
    let (t, s) = (sample.to_str().unwrap(), save.to_str().unwrap());
    let corpus = ["--text", t, "--level", "char", "--corpus-size", "600"];
    let run = |extra: &[&str]| {
        let args: Vec<&str> =
            ["train"].iter().chain(&corpus).chain(&["--embed", "16", "--hidden", "16"]).chain(extra).copied().collect();
        rnnlm(&args, dir.path(), &cache)
    };
    let output = run(&[
        "--epochs",
        "2",
        "--lr",
        "1",
        "--cell",
        "lstm",
        "--output",
        "adaptive",
        "--cutoffs",
        "20,60",
        "--div-value",
        "2",
        "--save",
        s,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("adaptive softmax (cutoffs [20, 60], div value 2)"), "{}", stderr(&output));
    let ckpt = rnnlm::files::checkpoint::load(&save).unwrap();
    let shape = ckpt.arch.adaptive().expect("an adaptive softmax");
    assert_eq!((shape.cutoffs(), shape.div_value(), shape.projection(0)), (&[20, 60][..], 2.0, 8));
    let order = ckpt.meta.word_order.clone().expect("the ranking");
    assert_eq!(order.len(), ckpt.arch.dims.vocab);

    // The first characters of the sample, all in the vocabulary of its first 600.
    let head: String = std::fs::read_to_string(&sample).unwrap().chars().take(300).collect();
    let head_file = dir.path().join("head.txt");
    std::fs::write(&head_file, head).unwrap();
    let h = head_file.to_str().unwrap();
    for args in [
        &["eval", "--checkpoint", s, "--text", h, "--batch", "2", "--time", "5"][..],
        &["predict", "--checkpoint", s, "--text", t],
        &["generate", "--checkpoint", s, "--start", "小さな", "--len", "5"],
        &["score", "--checkpoint", s, h],
        &["score", "--checkpoint", s, "--per-word", h],
    ] {
        let output = rnnlm(args, dir.path(), &cache);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
    // --init keeps the checkpoint's ranking and layer, and refuses another.
    let again = dir.path().join("again.safetensors");
    let output = run(&["--epochs", "1", "--init", s, "--save", again.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let continued = rnnlm::files::checkpoint::load(&again).unwrap();
    assert_eq!((continued.arch, continued.meta.word_order), (ckpt.arch, Some(order)));
    assert_one_line_error(
        &run(&["--init", s, "--output", "full", "--no-save"]),
        "has an adaptive softmax with cutoffs [20, 60] and div value 2, but the flags ask for a full softmax",
    );

    let keep = dir.path().join("keep.safetensors");
    std::fs::write(&keep, "the user's previous checkpoint").unwrap();
    let k = keep.to_str().unwrap();
    for (args, needle) in [
        (
            &["--output", "adaptive", "--cutoffs", "60,20"][..],
            "--cutoffs 60,20: the cutoffs must be strictly ascending: 20 comes after a larger one",
        ),
        (&["--output", "adaptive", "--cutoffs", "20,20"], "20 is repeated"),
        (&["--output", "adaptive", "--cutoffs", "20,1000"], "the cutoff 1000 is not below the vocabulary size"),
        (&["--output", "adaptive", "--cutoffs", "0,20"], "leaves the head's shortlist with no word"),
        (&["--output", "adaptive"], "--output adaptive needs --cutoffs"),
        (&["--cutoffs", "20"], "--cutoffs and --div-value need --output adaptive"),
        (&["--output", "adaptive", "--cutoffs", "20", "--tie"], "--tie needs the full softmax"),
        (&["--output", "adaptive", "--cutoffs", "20", "--div-value", "0"], "--div-value"),
        (&["--output", "adaptive", "--cutoffs", "20", "--div-value", "nan"], "--div-value"),
        (&["--output", "adaptive", "--cutoffs", "20,x"], "is not a comma-separated list of word ranks"),
        (&["--output", "adaptive", "--cutoffs", ""], "is not a comma-separated list of word ranks"),
    ] {
        let output = run(&[args, &["--save", k]].concat());
        assert_one_line_error(&output, needle);
        assert_eq!(std::fs::read_to_string(&keep).unwrap(), "the user's previous checkpoint", "{args:?}");
    }
}

#[test]
#[cfg(not(feature = "mpi"))]
fn distributed_runs_need_an_rnnlm_built_with_mpi() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    let train = rnnlm(&["train", "--distributed"], &data, &cache);
    assert_one_line_error(&train, "--distributed needs an rnnlm built with MPI: cargo install rnnlm --features mpi");
    let bench =
        ["bench", "--distributed", "--vocab", "50", "--embed", "8", "--hidden", "8", "--batch", "2", "--time", "3"];
    assert_one_line_error(&rnnlm(&bench, &data, &cache), "--distributed needs an rnnlm built with MPI");
    assert!(!data.exists(), "nothing was read or written");
}
