//! Checkpoints: round trip, every kind of bad file, and interoperability with Python's
//! `safetensors` package (numpy).

mod common;

use rnnlm::files::checkpoint::{self, Meta, Problem};
use rnnlm::files::corpus::{Level, Vocab};
use rnnlm::{Arch, Cell, Dims, Rnnlm, Softmax, Window};
use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;
use std::process::Command;

fn small_model() -> (Rnnlm, Meta) {
    let dims = Dims { vocab: 12, embed: 5, hidden: 7 };
    let model = Rnnlm::new(dims, Window { batch: 3, time: 4 }, 42).unwrap();
    let mut vocab = Vocab::new();
    for i in 0..12 {
        vocab.intern(&format!("w{i}"));
    }
    (
        model,
        Meta {
            level: Some(Level::Word),
            lowercase: false,
            epoch: 3,
            dropout: 0.0,
            vocab: Some(vocab),
            word_order: None,
        },
    )
}

#[test]
fn save_load_gives_identical_predictions() {
    let (mut model, meta) = small_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    checkpoint::save(&path, model.arch(), model.params(), &meta).unwrap();
    let loaded = checkpoint::load(&path).unwrap();
    assert_eq!(loaded.arch, model.arch());
    assert_eq!(loaded.meta, meta);
    let mut again = Rnnlm::from_params(loaded.arch, model.window(), &loaded.params).unwrap();
    let xs: Vec<u32> = (0..12).map(|i| (i * 5 % 12) as u32).collect();
    let (mut a, mut b) = (vec![0; 12], vec![0; 12]);
    model.predict(&xs, &mut a).unwrap();
    again.predict(&xs, &mut b).unwrap();
    assert_eq!(a, b);
    assert!(model.params().iter().zip(again.params()).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// A checkpoint of the small model with one tensor replaced (or dropped, with `None`).
fn with_tensor(name: &str, replacement: Option<(Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    with_tensor_of(small_model().0.arch(), name, replacement)
}

/// A checkpoint without metadata of a model of `arch` with one tensor replaced, added or
/// dropped (with `None`).
fn with_tensor_of(arch: Arch, name: &str, replacement: Option<(Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    let model = Rnnlm::new(arch, Window { batch: 3, time: 4 }, 42).unwrap();
    let bytes: &[u8] = bytemuck::cast_slice(model.params());
    let mut tensors = Vec::new();
    for t in arch.tensors() {
        let r = arch.range(t);
        tensors.push((arch.name(t), Dtype::F32, arch.spec_shape(t), bytes[r.start * 4..r.end * 4].to_vec()));
    }
    tensors.retain(|t| t.0 != name);
    if let Some((dtype, shape, data)) = replacement {
        tensors.push((name.to_owned(), dtype, shape, data));
    }
    let views: Vec<(String, TensorView<'_>)> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::tensor::serialize(views, None).unwrap()
}

/// Loads `bytes` from a file, which must fail as invalid: the kind of problem with the tensor
/// or key it names ([`kind`]), and the message.
fn load_error(bytes: &[u8]) -> ((&'static str, String), String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let error = checkpoint::load(&path).unwrap_err();
    assert_eq!(error.path(), path);
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "the error names the file: {message}");
    let checkpoint::CheckpointError::Invalid { problem, .. } = &error else { panic!("{error:?}") };
    assert!(message.ends_with(problem.why()), "{message}");
    (kind(problem), message)
}

/// A problem's kind and the tensor or key it names, as a caller matching on it sees them.
fn kind(problem: &Problem) -> (&'static str, String) {
    match problem {
        Problem::NotSafetensors { .. } => ("not safetensors", String::new()),
        Problem::MissingTensor { tensor, .. } => ("missing", tensor.clone()),
        Problem::WrongDtype { tensor, .. } => ("dtype", tensor.clone()),
        Problem::WrongShape { tensor, .. } => ("shape", tensor.clone()),
        Problem::BadValues { tensor, .. } => ("values", tensor.clone()),
        Problem::ExtraTensor { tensor, .. } => ("extra", tensor.clone()),
        Problem::Metadata { key, .. } => ("metadata", key.clone()),
        Problem::Unwritable { .. } => ("unwritable", String::new()),
        _ => ("other", String::new()),
    }
}

#[test]
fn a_file_that_cannot_be_read_or_written_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.safetensors");
    let error = checkpoint::load(&missing).unwrap_err();
    let checkpoint::CheckpointError::Io { path, source } = &error else { panic!("{error:?}") };
    assert_eq!((path.as_path(), source.kind()), (missing.as_path(), std::io::ErrorKind::NotFound));
    assert!(error.to_string().contains("missing.safetensors"), "{error}");
    let into_missing_dir = dir.path().join("no such dir").join("m.safetensors");
    let dims = Dims { vocab: 3, embed: 2, hidden: 2 };
    let params = vec![0.0; Arch::from(dims).param_count().unwrap()];
    let error = checkpoint::save(&into_missing_dir, dims, &params, &Meta::default()).unwrap_err();
    assert!(matches!(error, checkpoint::CheckpointError::Io { .. }), "{error:?}");
}

#[test]
fn a_wrong_shape_is_named() {
    let (kind, message) = load_error(&with_tensor("affine.b", Some((Dtype::F32, vec![11], vec![0; 44]))));
    assert_eq!(kind, ("shape", "affine.b".to_owned()));
    assert!(message.contains("affine.b has shape [11]") && message.contains("[12]"), "{message}");
}

#[test]
fn a_missing_tensor_is_named() {
    let (kind, message) = load_error(&with_tensor("rnn.Wx", None));
    assert_eq!(kind, ("missing", "rnn.Wx".to_owned()));
    assert!(message.contains("rnn.Wx is missing"), "{message}");
}

#[test]
fn a_non_f32_tensor_is_named() {
    let (kind, message) = load_error(&with_tensor("rnn.b", Some((Dtype::F64, vec![7], vec![0; 56]))));
    assert_eq!(kind, ("dtype", "rnn.b".to_owned()));
    assert!(message.contains("rnn.b is F64") && message.contains("F32"), "{message}");
}

#[test]
fn a_truncated_file_is_named() {
    let (model, meta) = small_model();
    let bytes = checkpoint::encode(model.arch(), model.params(), &meta).unwrap();
    for cut in [3, 100, bytes.len() - 10] {
        let (kind, message) = load_error(&bytes[..cut]);
        assert_eq!(kind.0, "not safetensors");
        assert!(message.contains("truncated") || message.contains("not a valid"), "cut {cut}: {message}");
    }
}

#[test]
fn metadata_that_contradicts_the_tensors_is_rejected() {
    let (model, mut meta) = small_model();
    meta.vocab = Some(Vocab::new());
    let problem = checkpoint::decode(&checkpoint::encode(model.arch(), model.params(), &meta).unwrap()).unwrap_err();
    assert_eq!(kind(&problem), ("metadata", "vocab".to_owned()));
}

/// Runs a Python script that needs the `safetensors` and `numpy` packages (.ci/run installs
/// them; see `common::python_with_safetensors`).
fn python(script: &str, dir: &Path) -> String {
    let output =
        Command::new("python3").arg("-c").arg(script).current_dir(dir).output().expect("python3 must be installed");
    assert!(
        output.status.success(),
        "python failed (pip install safetensors numpy):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn checkpoints_load_in_python_and_python_files_load_here() {
    if !common::python_with_safetensors() {
        return;
    }
    let (model, meta) = small_model();
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(&dir.path().join("ours.safetensors"), model.arch(), model.params(), &meta).unwrap();
    let printed = python(
        r#"
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
import numpy as np
t = load_file("ours.safetensors")
with safe_open("ours.safetensors", "np") as f:
    m = f.metadata()
for name in ["embed.W", "rnn.Wx", "rnn.Wh", "rnn.b", "affine.W", "affine.b"]:
    print(name, t[name].dtype, list(t[name].shape), repr(float(t[name].ravel()[-1])))
print("meta", m["vocab_size"], m["level"], m["epoch"], m["vocab"].split("\n")[:2])
out = {k: (v * 2).astype(np.float32) for k, v in t.items()}
save_file(out, "theirs.safetensors")
"#,
        dir.path(),
    );
    let arch = model.arch();
    for t in arch.tensors() {
        let shape = format!("{:?}", arch.spec_shape(t));
        let last = model.param(t).last().unwrap();
        let want = format!("{} float32 {shape} {:?}", arch.name(t), *last as f64);
        assert!(printed.contains(&want), "{want:?} not in:\n{printed}");
    }
    assert!(printed.contains("meta 12 word 3 ['w0', 'w1']"), "{printed}");

    let theirs = checkpoint::load(&dir.path().join("theirs.safetensors")).unwrap();
    assert_eq!(theirs.arch, arch);
    assert_eq!(theirs.meta, Meta::default(), "a file without metadata loads with none");
    for (a, b) in theirs.params.iter().zip(model.params()) {
        assert_eq!(*a, b * 2.0);
    }
}

fn gated(cell: Cell, layers: usize) -> Arch {
    Arch { dims: Dims { vocab: 12, embed: 5, hidden: 7 }, cell, layers, tied: false, output: Softmax::Full }
}

#[test]
fn gated_and_stacked_models_round_trip_with_their_names() {
    let tied =
        |cell, layers| Arch { dims: Dims { embed: 7, ..gated(cell, layers).dims }, tied: true, ..gated(cell, layers) };
    let archs =
        [gated(Cell::Lstm, 1), gated(Cell::Lstm, 2), gated(Cell::Gru, 3), gated(Cell::Rnn, 2), tied(Cell::Lstm, 2)];
    for arch in archs {
        let (_, meta) = small_model();
        let model = Rnnlm::new(arch, Window { batch: 3, time: 4 }, 5).unwrap();
        let bytes = checkpoint::encode(arch, model.params(), &meta).unwrap();
        let loaded = checkpoint::decode(&bytes).unwrap();
        assert_eq!(loaded.arch, arch);
        assert_eq!(loaded.params, model.params());
        // Files written elsewhere carry no metadata: the names and shapes say it all.
        let bare = checkpoint::decode(&with_tensor_of(arch, "none", None)).unwrap();
        assert_eq!(bare.arch, arch);
    }
    let names = String::from_utf8_lossy(&with_tensor_of(gated(Cell::Gru, 3), "none", None)).into_owned();
    for name in ["gru.Wx", "gru.1.Wh", "gru.2.b", "affine.W"] {
        assert!(names.contains(&format!("\"{name}\"")), "{name} missing from {names}");
    }
}

#[test]
fn a_gated_checkpoint_with_a_missing_gate_block_or_layer_is_named() {
    let lstm = gated(Cell::Lstm, 2);
    // Wh of three gate blocks instead of four.
    let (kind, message) =
        load_error(&with_tensor_of(lstm, "lstm.Wh", Some((Dtype::F32, vec![7, 21], vec![0; 7 * 21 * 4]))));
    assert!(message.contains("lstm.Wh has shape [7, 21], expected [hidden, 4 hidden]"), "{message}");
    assert_eq!(kind, ("shape", "lstm.Wh".to_owned()));
    let (kind, message) = load_error(&with_tensor_of(lstm, "lstm.1.b", Some((Dtype::F32, vec![21], vec![0; 21 * 4]))));
    assert!(message.contains("lstm.1.b has shape [21]") && message.contains("[28]"), "{message}");
    assert_eq!(kind, ("shape", "lstm.1.b".to_owned()));
    let (kind, message) = load_error(&with_tensor_of(lstm, "lstm.1.Wx", None));
    assert!(message.contains("lstm.1.Wx is missing"), "{message}");
    assert_eq!(kind, ("missing", "lstm.1.Wx".to_owned()));
    // A layer whose Wh is gone ends the stack there: its other tensors are then extra.
    let (kind, message) = load_error(&with_tensor_of(lstm, "lstm.1.Wh", None));
    assert!(message.contains("lstm.1.Wx is not part of a 1-layer lstm model"), "{message}");
    assert_eq!(kind, ("extra", "lstm.1.Wx".to_owned()));
    let (kind, message) =
        load_error(&with_tensor_of(lstm, "gru.Wh", Some((Dtype::F32, vec![7, 21], vec![0; 7 * 21 * 4]))));
    assert!(message.contains("lstm.Wh and gru.Wh belong to different cells"), "{message}");
    assert_eq!(kind, ("extra", "gru.Wh".to_owned()));
    // No affine.W means tied weights, which need D = H: here D = 5 and H = 7.
    let (kind, message) = load_error(&with_tensor_of(lstm, "affine.W", None));
    assert!(message.contains("affine.W is missing (tied weights need embed.W's 5 columns"), "{message}");
    assert_eq!(kind, ("missing", "affine.W".to_owned()));
}

#[test]
fn metadata_that_contradicts_the_cell_or_layers_is_rejected() {
    let (_, meta) = small_model();
    let lstm = gated(Cell::Lstm, 2);
    let model = Rnnlm::new(lstm, Window { batch: 3, time: 4 }, 5).unwrap();
    let bytes = checkpoint::encode(lstm, model.params(), &meta).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let edit = |from: &str, to: &str| {
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap().replace(from, to);
        assert_eq!(header.len(), header_len, "same-length edits keep the offsets");
        [&bytes[..8], header.as_bytes(), &bytes[8 + header_len..]].concat()
    };
    let message = checkpoint::decode(&edit(r#""cell":"lstm""#, r#""cell":"gru ""#)).unwrap_err().to_string();
    assert!(message.contains("metadata cell = \"gru \" contradicts the tensors, which are lstm's"), "{message}");
    let message = checkpoint::decode(&edit(r#""layers":"2""#, r#""layers":"3""#)).unwrap_err().to_string();
    assert!(message.contains("metadata layers = 3 contradicts the tensors' 2"), "{message}");
}

/// `bytes` with its safetensors header edited by `edit` (re-padded, its length updated; the
/// tensors' offsets count from the end of the header, so they stay valid).
fn with_header(bytes: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header = edit(std::str::from_utf8(&bytes[8..8 + header_len]).unwrap().trim_end());
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    [&(header.len() as u64).to_le_bytes()[..], header.as_bytes(), &bytes[8 + header_len..]].concat()
}

#[test]
fn a_plain_rnn_checkpoint_of_an_earlier_version_loads() {
    // Earlier versions called the plain RNN cell `tanh` in the metadata (its tensors were
    // already `rnn.*`); such files load as the same model.
    let (model, meta) = small_model();
    let bytes = checkpoint::encode(model.arch(), model.params(), &meta).unwrap();
    let old = with_header(&bytes, |header| {
        assert!(header.contains(r#""cell":"rnn""#), "{header}");
        header.replace(r#""cell":"rnn""#, r#""cell":"tanh""#)
    });
    assert_ne!(old, bytes);
    let loaded = checkpoint::decode(&old).unwrap();
    assert_eq!((loaded.arch, &loaded.meta), (model.arch(), &meta));
    assert_eq!(loaded.params, model.params());
    assert_eq!(checkpoint::encode(loaded.arch, &loaded.params, &loaded.meta).unwrap(), bytes);
}

#[test]
fn a_gated_tied_model_written_by_numpy_loads_as_the_model_its_names_describe() {
    if !common::python_with_safetensors() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Two GRU layers of 4, tied to a 6 x 4 embedding, written by numpy with no metadata.
    let printed = python(
        r#"
from safetensors.numpy import save_file
import numpy as np
rng = np.random.default_rng(0)
t = {"embed.W": rng.standard_normal((6, 4)), "affine.b": np.zeros(6)}
for prefix in ["gru", "gru.1"]:
    t[prefix + ".Wx"] = rng.standard_normal((4, 12))
    t[prefix + ".Wh"] = rng.standard_normal((4, 12))
    t[prefix + ".b"] = np.zeros(12)
save_file({k: v.astype(np.float32) for k, v in t.items()}, "numpy.safetensors")
bad = dict(t)
bad["gru.1.Wh"] = rng.standard_normal((4, 8))
save_file({k: v.astype(np.float32) for k, v in bad.items()}, "two_blocks.safetensors")
print(repr(float(t["gru.1.Wh"][3, 11].astype(np.float32))))
"#,
        dir.path(),
    );
    let ckpt = checkpoint::load(&dir.path().join("numpy.safetensors")).unwrap();
    let arch = Arch {
        dims: Dims { vocab: 6, embed: 4, hidden: 4 },
        cell: Cell::Gru,
        layers: 2,
        tied: true,
        output: Softmax::Full,
    };
    assert_eq!(ckpt.arch, arch);
    let last = ckpt.params[arch.range(rnnlm::Tensor::Wh(1))].last().copied().unwrap();
    assert_eq!(format!("{:?}", last as f64), printed.trim());
    // The model it describes runs.
    let mut model = Rnnlm::from_params(ckpt.arch, Window { batch: 2, time: 3 }, &ckpt.params).unwrap();
    assert!(model.forward(&[0, 1, 2, 3, 4, 5], &[1, 2, 3, 4, 5, 0]).unwrap().is_finite());
    let (_, message) = load_error(&std::fs::read(dir.path().join("two_blocks.safetensors")).unwrap());
    assert!(message.contains("gru.1.Wh has shape [4, 8]") && message.contains("[4, 12]"), "{message}");
}

/// A two-layer LSTM over 23 words with an adaptive softmax (cutoffs 5 and 12, div 2), its
/// words ranked in a shuffled order.
fn adaptive_model() -> (Rnnlm, Meta) {
    let shape = rnnlm::kernels::AdaptiveShape::new(23, 8, &[5, 12], 2.0, true).unwrap();
    let arch = Arch {
        dims: Dims { vocab: 23, embed: 6, hidden: 8 },
        cell: Cell::Lstm,
        layers: 2,
        tied: false,
        output: Softmax::Adaptive(shape),
    };
    let mut model = Rnnlm::new(arch, Window { batch: 2, time: 3 }, 7).unwrap();
    let order: Vec<u32> = (0..23).map(|i| (i * 7 + 3) % 23).collect();
    model.set_word_order(&order).unwrap();
    let meta = Meta { epoch: 2, word_order: Some(order), ..Meta::default() };
    (model, meta)
}

#[test]
fn an_adaptive_model_round_trips_with_its_ranking() {
    let (mut model, meta) = adaptive_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.safetensors");
    checkpoint::save(&path, model.arch(), model.params(), &meta).unwrap();
    let loaded = checkpoint::load(&path).unwrap();
    assert_eq!(loaded.arch, model.arch());
    assert_eq!(loaded.meta, meta);
    let names: Vec<String> = model.arch().tensors().map(|t| model.arch().name(t)).collect();
    assert_eq!(
        names[7..],
        [
            "adaptive.head.weight",
            "adaptive.head.bias",
            "adaptive.tail.0.0.weight",
            "adaptive.tail.0.1.weight",
            "adaptive.tail.1.0.weight",
            "adaptive.tail.1.1.weight"
        ]
    );
    let mut again = loaded.model(model.window()).unwrap();
    let xs = [1, 5, 9, 22, 0, 3];
    let (mut a, mut b) = (vec![0.0; 6 * 23], vec![0.0; 6 * 23]);
    model.logits(&xs, &mut a).unwrap();
    again.logits(&xs, &mut b).unwrap();
    assert_eq!(a, b, "the same log-probabilities, word by word");
}

/// The adaptive model's checkpoint with one tensor replaced (or dropped) and metadata `meta`.
fn adaptive_with(name: &str, replacement: Option<(Dtype, Vec<usize>, Vec<u8>)>, meta: &[(&str, &str)]) -> Vec<u8> {
    let (model, saved) = adaptive_model();
    let bytes = checkpoint::encode(model.arch(), model.params(), &saved).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != name)
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    if let Some((dtype, shape, data)) = replacement {
        tensors.push((name.to_owned(), dtype, shape, data));
    }
    let views: Vec<(String, TensorView<'_>)> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    let meta: std::collections::HashMap<String, String> =
        meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    safetensors::tensor::serialize(views, Some(meta)).unwrap()
}

fn order_bytes(order: &[i64]) -> Vec<u8> {
    order.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn a_bad_adaptive_checkpoint_is_refused_naming_the_tensor_or_key() {
    let div = [("div_value", "2")];
    let mut repeated: Vec<i64> = (0..23).collect();
    repeated[4] = 3;
    let order = "adaptive.order";
    let cases: [(Vec<u8>, (&str, &str), &str); 7] = [
        (adaptive_with(order, None, &div), ("missing", order), "adaptive.order is missing"),
        (
            adaptive_with(order, Some((Dtype::I64, vec![23], order_bytes(&repeated))), &div),
            ("values", order),
            "adaptive.order is not a permutation of 0..23: id 3 appears twice",
        ),
        (
            adaptive_with(order, Some((Dtype::I64, vec![23], order_bytes(&[23; 23]))), &div),
            ("values", order),
            "adaptive.order is not a permutation of 0..23: it holds 23",
        ),
        (
            adaptive_with(order, Some((Dtype::F32, vec![23], vec![0; 92])), &div),
            ("dtype", order),
            "adaptive.order is F32",
        ),
        (adaptive_with("", None, &[]), ("metadata", "div_value"), "metadata div_value is missing"),
        (
            adaptive_with("", None, &[("div_value", "2"), ("cutoffs", "5,13")]),
            ("metadata", "cutoffs"),
            "metadata cutoffs = \"5,13\"",
        ),
        (
            adaptive_with("adaptive.tail.1.1.weight", None, &div),
            ("shape", "adaptive.head.weight"),
            "hold 13 words, but embed.W has 23 rows",
        ),
    ];
    for (bytes, (expected_kind, name), expected) in cases {
        let (kind, message) = load_error(&bytes);
        assert_eq!(kind, (expected_kind, name.to_owned()), "{message}");
        assert!(message.contains(expected), "{expected:?} not in {message:?}");
    }
    let fine = load_error_or_ok(&adaptive_with("", None, &div));
    assert!(fine.is_ok(), "{fine:?}");
}

fn load_error_or_ok(bytes: &[u8]) -> Result<(), Problem> {
    checkpoint::decode(bytes).map(|_| ())
}

/// Hidden states, and the adaptive softmax's log-probabilities of every word (by id) for
/// them, computed by the crate from the checkpoint's tensors.
fn adaptive_log_probs(ckpt: &checkpoint::Checkpoint, rows: usize) -> (Vec<f32>, Vec<f32>) {
    let shape = ckpt.arch.adaptive().unwrap();
    let (hidden, vocab) = (shape.hidden(), shape.vocab());
    let hs: Vec<f32> = (0..rows * hidden).map(|i| ((i * 37 % 19) as f32 - 9.0) * 0.2).collect();
    let mut layer = rnnlm::kernels::AdaptiveOutput::new(rows, shape).unwrap();
    layer.forward_log_probs(&hs, &ckpt.params[ckpt.arch.output_range()], None);
    let order = ckpt.meta.word_order.as_ref().unwrap();
    let mut by_rank = vec![0.0; vocab];
    let mut by_id = vec![0.0; rows * vocab];
    for r in 0..rows {
        layer.log_probs_row(r, &mut by_rank);
        for (rank, &id) in order.iter().enumerate() {
            by_id[r * vocab + id as usize] = by_rank[rank];
        }
    }
    (hs, by_id)
}

/// Writes the model's checkpoint and `hs.safetensors` (hidden states and our log-probabilities
/// by word id) into `dir`.
fn adaptive_files(dir: &Path) {
    let (model, meta) = adaptive_model();
    checkpoint::save(&dir.join("adaptive.safetensors"), model.arch(), model.params(), &meta).unwrap();
    let ckpt = checkpoint::load(&dir.join("adaptive.safetensors")).unwrap();
    let rows = 5;
    let (hs, ours) = adaptive_log_probs(&ckpt, rows);
    let (hs, ours): (&[u8], &[u8]) = (bytemuck::cast_slice(&hs), bytemuck::cast_slice(&ours));
    let views = [
        ("hs", TensorView::new(Dtype::F32, vec![rows, 8], hs).unwrap()),
        ("ours", TensorView::new(Dtype::F32, vec![rows, 23], ours).unwrap()),
    ];
    std::fs::write(dir.join("hs.safetensors"), safetensors::tensor::serialize(views, None).unwrap()).unwrap();
}

/// PyTorch's `AdaptiveLogSoftmaxWithLoss.log_prob`, transcribed into numpy over the
/// checkpoint's `adaptive.*` tensors, then put in word-id order through `adaptive.order`.
const NUMPY_ADAPTIVE: &str = r#"
from safetensors.numpy import load_file
from safetensors import safe_open
import numpy as np
t = load_file("adaptive.safetensors")
with safe_open("adaptive.safetensors", "np") as f:
    m = f.metadata()
cutoffs = [int(c) for c in m["cutoffs"].split(",")] + [t["embed.W"].shape[0]]
x = load_file("hs.safetensors")
h, ours = x["hs"].astype(np.float64), x["ours"].astype(np.float64)
def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
head = log_softmax(h @ t["adaptive.head.weight"].T + t["adaptive.head.bias"])
out = np.empty((h.shape[0], cutoffs[-1]))
out[:, :cutoffs[0]] = head[:, :cutoffs[0]]
for i in range(len(cutoffs) - 1):
    u = (h @ t["adaptive.tail.%d.0.weight" % i].T) @ t["adaptive.tail.%d.1.weight" % i].T
    out[:, cutoffs[i]:cutoffs[i + 1]] = log_softmax(u) + head[:, cutoffs[0] + i:cutoffs[0] + i + 1]
by_id = np.empty_like(out)
by_id[:, t["adaptive.order"]] = out
print("order", t["adaptive.order"].dtype, "div", m["div_value"], "cutoffs", m["cutoffs"])
print("max difference %.3g" % np.abs(by_id - ours).max())
"#;

#[test]
fn adaptive_checkpoints_give_pytorchs_log_probabilities_in_numpy() {
    if !common::python_with_safetensors() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    adaptive_files(dir.path());
    let printed = python(NUMPY_ADAPTIVE, dir.path());
    assert!(printed.contains("order int64 div 2 cutoffs 5,12"), "{printed}");
    let difference: f64 = printed.split("max difference ").nth(1).unwrap().trim().parse().unwrap();
    assert!(difference < 1e-5, "{printed}");
}

/// PyTorch itself: the module built with the checkpoint's cutoffs and div value loads the
/// `adaptive.*` tensors (prefix removed, strict) and gives the same log-probabilities. Runs
/// where `RNNLM_TORCH_PYTHON` names a Python with torch, safetensors and numpy.
#[test]
fn adaptive_checkpoints_load_into_pytorchs_module() {
    let Ok(python) = std::env::var("RNNLM_TORCH_PYTHON") else {
        eprintln!(
            "skipped adaptive_checkpoints_load_into_pytorchs_module: set RNNLM_TORCH_PYTHON to a Python with torch"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    adaptive_files(dir.path());
    let script = r#"
import torch
from safetensors.torch import load_file
from safetensors import safe_open
t = load_file("adaptive.safetensors")
with safe_open("adaptive.safetensors", "pt") as f:
    m = f.metadata()
vocab, hidden = t["embed.W"].shape[0], t["adaptive.head.weight"].shape[1]
cutoffs = [int(c) for c in m["cutoffs"].split(",")]
module = torch.nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab, cutoffs, div_value=float(m["div_value"]), head_bias=True)
state = {k[len("adaptive."):]: v for k, v in t.items() if k.startswith("adaptive.") and k != "adaptive.order"}
module.load_state_dict(state, strict=True)
x = load_file("hs.safetensors")
with torch.no_grad():
    by_rank = module.log_prob(x["hs"].double().float())
by_id = torch.empty_like(by_rank)
by_id[:, t["adaptive.order"]] = by_rank
print("max difference %.3g" % (by_id - x["ours"]).abs().max().item())
"#;
    let output = Command::new(python).arg("-c").arg(script).current_dir(dir.path()).output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let difference: f64 = printed.split("max difference ").nth(1).unwrap().trim().parse().unwrap();
    assert!(difference < 1e-5, "{printed}");
}
