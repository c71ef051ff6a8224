//! `rnnlm score` as a user runs it: per-line, per-word and n-best output, OOV lines, bad input,
//! and carried-state scoring against `rnnlm eval`.

use rnnlm::files::checkpoint::{self, Meta};
use rnnlm::files::corpus::{Level, Vocab};
use rnnlm::{Arch, Cell, Dims, Rnnlm, Softmax, Window};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WORDS: [&str; 8] = ["<eos>", "the", "cat", "sat", "on", "mat", "a", "dog"];

/// A checkpoint of a word-level model with an initialisation scaled up (so that tokens get
/// different probabilities), over `WORDS` and, if `unk`, `<unk>`.
fn word_checkpoint(dir: &Path, name: &str, cell: Cell, unk: bool) -> PathBuf {
    let mut vocab = Vocab::new();
    for word in WORDS.iter().chain(unk.then_some(&"<unk>")) {
        vocab.intern(word);
    }
    save(dir, name, cell, vocab, Level::Word)
}

fn save(dir: &Path, name: &str, cell: Cell, vocab: Vocab, level: Level) -> PathBuf {
    let dims = Dims { vocab: vocab.len(), embed: 6, hidden: 7 };
    let arch = Arch { dims, cell, layers: 2, tied: false, output: Softmax::Full };
    let mut params = Rnnlm::new(arch, Window { batch: 1, time: 1 }, 3).unwrap().into_params();
    for p in &mut params {
        *p *= 3.0;
    }
    let meta =
        Meta { level: Some(level), lowercase: false, epoch: 1, dropout: 0.0, vocab: Some(vocab), word_order: None };
    let path = dir.join(name);
    checkpoint::save(&path, arch, &params, &meta).unwrap();
    path
}

fn rnnlm(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rnnlm"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A run that fails early may not read its input.
    let _ = input.write_all(stdin.unwrap_or_default());
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout_of(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn numbers(text: &str) -> Vec<f64> {
    text.lines().map(|line| line.parse().unwrap_or(f64::NAN)).collect()
}

const TEXT: &str =
    "the cat sat on the mat\n\na dog sat\nthe cat ran\n  dog  \r\nthe the the the the the the the the the\n";

#[test]
fn every_line_gets_its_log10_probability_and_oov_lines_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let model = word_checkpoint(dir.path(), "m.safetensors", Cell::Lstm, false);
    let text = dir.path().join("text.txt");
    std::fs::write(&text, TEXT).unwrap();
    let output = rnnlm(&["score", "--checkpoint", model.to_str().unwrap(), text.to_str().unwrap()], None);
    let out = stdout_of(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "one line out per line in: {out}");
    assert_eq!(lines[3], "OOV", "`ran` is not in the vocabulary and there is no <unk>");
    let scores = numbers(&out);
    for (i, &score) in scores.iter().enumerate().filter(|&(i, _)| i != 3) {
        assert!(score.is_finite() && score < 0.0, "line {}: {score}", i + 1);
    }
    // The empty line is the empty sentence: the probability of <eos> after <eos>.
    assert!(scores[1] > scores[5], "one token is likelier than eleven");
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("5 sentences, 25 tokens (0 mapped to <unk>), 1 lines left out"), "{summary}");
    // Standard input, `-` or none, gives the same.
    let piped = stdout_of(&rnnlm(&["score", "--checkpoint", model.to_str().unwrap(), "-"], Some(TEXT.as_bytes())));
    assert_eq!(piped, out);
    let piped = stdout_of(&rnnlm(&["score", "--checkpoint", model.to_str().unwrap()], Some(TEXT.as_bytes())));
    assert_eq!(piped, out);
}

#[test]
fn the_output_does_not_depend_on_the_batch_the_window_or_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let model = word_checkpoint(dir.path(), "m.safetensors", Cell::Gru, true);
    let text: String = (0..300).map(|i| WORDS[1 + i % 7..].join(" ") + "\n").collect();
    let model = model.to_str().unwrap();
    let run = |extra: &[&str]| {
        let args = [&["score", "--checkpoint", model, "--per-word"][..], extra].concat();
        stdout_of(&rnnlm(&args, Some(text.as_bytes())))
    };
    let alone = run(&["--batch", "1", "--threads", "1"]);
    assert_eq!(run(&["--batch", "64", "--time", "3", "--threads", "2"]), alone);
    assert_eq!(run(&["--batch", "7", "--threads", "3"]), alone);
}

#[test]
fn per_word_output_reads_as_mikolovs_debug_2_and_adds_up_to_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let model = word_checkpoint(dir.path(), "m.safetensors", Cell::Rnn, true);
    let model = model.to_str().unwrap();
    let lines = stdout_of(&rnnlm(&["score", "--checkpoint", model], Some(TEXT.as_bytes())));
    let words = stdout_of(&rnnlm(&["score", "--checkpoint", model, "--per-word"], Some(TEXT.as_bytes())));
    let mut rows = words.lines();
    assert_eq!(rows.next(), Some("Index   P(NET)          Word"));
    assert_eq!(rows.next(), Some("----------------------------------"));
    // Each sentence's words end with <eos>; their log10 probabilities add up to its line.
    let mut sums = vec![0.0f64];
    let mut trailer = Vec::new();
    for row in rows {
        let fields: Vec<&str> = row.split('\t').collect();
        if fields.len() != 3 {
            trailer.push(row);
            continue;
        }
        let (index, probability, word) = (fields[0], fields[1].parse::<f64>().unwrap(), fields[2]);
        assert!(index.parse::<u32>().is_ok() && probability > 0.0 && probability <= 1.0, "{row}");
        *sums.last_mut().unwrap() += probability.log10();
        if word == "<eos>" {
            sums.push(0.0);
        }
    }
    sums.pop();
    let scores = numbers(&lines);
    assert_eq!(sums.len(), scores.len());
    for (sum, score) in sums.iter().zip(&scores) {
        assert!((sum - score).abs() < 1e-6 * score.abs().max(1.0), "{sum} vs {score}");
    }
    // `ran` became <unk>; the trailer gives the total and the perplexity as Mikolov's does.
    assert!(words.contains("\t<unk>\n"));
    let total: f64 = scores.iter().sum();
    assert_eq!(trailer[1], format!("test log probability: {total:.6}"), "{trailer:?}");
    assert!(trailer[3].starts_with("PPL net: "), "{trailer:?}");
}

#[test]
fn nbest_lists_get_one_score_per_hypothesis_with_the_acoustic_score_added() {
    let dir = tempfile::tempdir().unwrap();
    let model = word_checkpoint(dir.path(), "m.safetensors", Cell::Lstm, false);
    let model = model.to_str().unwrap();
    let hypotheses = ["the cat sat", "a cat sat on the mat", "", "the cat ran"];
    let plain = numbers(&stdout_of(&rnnlm(&["score", "--checkpoint", model], Some(hypotheses.join("\n").as_bytes()))));
    let nbest: String = hypotheses.iter().enumerate().map(|(i, h)| format!("utt1-{i} {h}\n")).collect();
    let out = stdout_of(&rnnlm(&["score", "--checkpoint", model, "--nbest"], Some(nbest.as_bytes())));
    let expected: Vec<String> =
        (0..4).map(|i| if i == 3 { "utt1-3 OOV".to_owned() } else { format!("utt1-{i} {:.6}", plain[i]) }).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);

    let with_acoustic: String =
        hypotheses[..3].iter().enumerate().map(|(i, h)| format!("u-{i}\t-{}.5 {h}\n", 100 + i)).collect();
    let args = ["score", "--checkpoint", model, "--nbest", "--acoustic", "--lm-scale", "12"];
    let out = stdout_of(&rnnlm(&args, Some(with_acoustic.as_bytes())));
    for (i, line) in out.lines().enumerate() {
        let (id, score) = line.split_once(' ').unwrap();
        assert_eq!(id, format!("u-{i}"));
        let want = -(100.5 + i as f64) + 12.0 * plain[i];
        assert!((score.parse::<f64>().unwrap() - want).abs() < 1e-4, "{line} vs {want}");
    }
}

#[test]
fn carried_state_scoring_gives_evals_perplexity() {
    let dir = tempfile::tempdir().unwrap();
    let model = word_checkpoint(dir.path(), "m.safetensors", Cell::Lstm, false);
    let model = model.to_str().unwrap();
    // 30 tokens (lines and their <eos>). A stream starts with <eos> as its input: evaluation
    // of the same text after an empty line (whose <eos> is that first input) predicts exactly
    // the stream's 30 tokens in its 1 x 5 windows.
    let text = "the cat sat on the mat\na dog sat on a mat\nthe dog sat\nthe cat sat on the dog\na cat sat on\n";
    let (path, after_empty_line) = (dir.path().join("text.txt"), dir.path().join("eval.txt"));
    std::fs::write(&path, text).unwrap();
    std::fs::write(&after_empty_line, format!("\n{text}")).unwrap();
    let (path, after_empty_line) = (path.to_str().unwrap(), after_empty_line.to_str().unwrap());
    let args = ["eval", "--checkpoint", model, "--text", after_empty_line, "--batch", "1", "--time", "5"];
    let eval = stdout_of(&rnnlm(&args, None));
    let eval_ppl: f64 = eval.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(eval.contains("(31 tokens, 1 x 5 windows)"), "{eval}");
    let words = stdout_of(&rnnlm(&["score", "--checkpoint", model, "--carry-state", "--per-word", path], None));
    let log10: Vec<f64> =
        words.lines().filter_map(|row| row.split('\t').nth(1)?.parse::<f64>().ok()).map(f64::log10).collect();
    assert_eq!(log10.len(), 30);
    // eval prints two decimals.
    let ppl = 10f64.powf(-log10.iter().sum::<f64>() / 30.0);
    assert!((ppl - eval_ppl).abs() <= 0.006, "score {ppl:.4} vs eval {eval_ppl}");
    // Sentences scored independently differ: the state is not carried.
    let independent = stdout_of(&rnnlm(&["score", "--checkpoint", model, "--per-word", path], None));
    assert_ne!(independent, words);
}

#[test]
fn character_models_score_characters_and_end_lines_with_a_line_break() {
    let dir = tempfile::tempdir().unwrap();
    let mut vocab = Vocab::new();
    for c in ["\n", "a", "b", " ", "c"] {
        vocab.intern(c);
    }
    let model = save(dir.path(), "c.safetensors", Cell::Rnn, vocab, Level::Char);
    let model = model.to_str().unwrap();
    let out = stdout_of(&rnnlm(&["score", "--checkpoint", model, "--per-word"], Some(b"ab c\nd\n")));
    let words: Vec<&str> = out.lines().skip(2).take(6).map(|row| row.rsplit('\t').next().unwrap()).collect();
    assert_eq!(words, ["a", "b", "␣", "c", "↵", "OOV"], "{out}");
    let out = stdout_of(&rnnlm(&["score", "--checkpoint", model], Some(b"ab c\nd\n")));
    assert_eq!(out.lines().nth(1), Some("OOV"));
    // A word-level reading of a character model is refused, not guessed at.
    let refused = rnnlm(&["score", "--checkpoint", model, "--level", "word"], Some(b"ab\n"));
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("is a char-level model; --level word does not match"), "{message}");
}

#[test]
fn bad_input_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = word_checkpoint(dir.path(), "m.safetensors", Cell::Rnn, false);
    let model = model.to_str().unwrap();
    let cases: [(&[&str], &[u8], &str); 4] = [
        (&[], b"the cat\nthe \xff mat\n", "standard input, line 2: not valid UTF-8 (byte 5 of the line)"),
        (&["--nbest"], b"u1 the cat\n   \n", "standard input, line 2: no utterance id"),
        (&["--nbest", "--acoustic"], b"u1 -3 the cat\nu2 cat sat\n", "line 2: the acoustic score \"cat\" after u2"),
        (&["--level", "char"], b"the\n", "is a word-level model; --level char does not match"),
    ];
    for (extra, input, message) in cases {
        let args = [&["score", "--checkpoint", model][..], extra].concat();
        let output = rnnlm(&args, Some(input));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(message), "{extra:?}: {stderr}");
    }
    // A vocabulary without <eos> cannot start or end a sentence.
    let mut vocab = Vocab::new();
    vocab.intern("the");
    vocab.intern("cat");
    let no_end = save(dir.path(), "n.safetensors", Cell::Rnn, vocab, Level::Word);
    let output = rnnlm(&["score", "--checkpoint", no_end.to_str().unwrap()], Some(b"the cat\n"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("has no end-of-line token \"<eos>\""));
}

#[test]
fn a_closed_output_stops_the_scores_but_not_the_summary() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let model = word_checkpoint(dir.path(), "m.safetensors", Cell::Rnn, false);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rnnlm"))
        .args(["score", "--checkpoint", model.to_str().unwrap(), "--per-word"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let text = "the cat sat on the mat\n".repeat(20_000);
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || input.write_all(text.as_bytes()));
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first, "Index   P(NET)          Word\n");
    // The reader is dropped: the rest of the output has nowhere to go (`| head -1`).
    writer.join().unwrap().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.starts_with("20000 sentences, 140000 tokens"), "{summary}");
}
