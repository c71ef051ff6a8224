//! Checkpoints: round trip, every kind of bad file, and interoperability with Python's
//! `safetensors` package (numpy).

mod common;

use rnnlm::checkpoint::{self, Meta};
use rnnlm::corpus::{Level, Vocab};
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

fn load_error(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let message = checkpoint::load(&path).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "the error names the file: {message}");
    message
}

#[test]
fn a_wrong_shape_is_named() {
    let message = load_error(&with_tensor("affine.b", Some((Dtype::F32, vec![11], vec![0; 44]))));
    assert!(message.contains("affine.b has shape [11]") && message.contains("[12]"), "{message}");
}

#[test]
fn a_missing_tensor_is_named() {
    let message = load_error(&with_tensor("rnn.Wx", None));
    assert!(message.contains("rnn.Wx is missing"), "{message}");
}

#[test]
fn a_non_f32_tensor_is_named() {
    let message = load_error(&with_tensor("rnn.b", Some((Dtype::F64, vec![7], vec![0; 56]))));
    assert!(message.contains("rnn.b is F64") && message.contains("F32"), "{message}");
}

#[test]
fn a_truncated_file_is_named() {
    let (model, meta) = small_model();
    let bytes = checkpoint::encode(model.arch(), model.params(), &meta).unwrap();
    for cut in [3, 100, bytes.len() - 10] {
        let message = load_error(&bytes[..cut]);
        assert!(message.contains("truncated") || message.contains("not a valid"), "cut {cut}: {message}");
    }
}

#[test]
fn metadata_that_contradicts_the_tensors_is_rejected() {
    let (model, mut meta) = small_model();
    meta.vocab = Some(Vocab::new());
    let message = checkpoint::decode(&checkpoint::encode(model.arch(), model.params(), &meta).unwrap());
    assert!(message.is_err());
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
        [gated(Cell::Lstm, 1), gated(Cell::Lstm, 2), gated(Cell::Gru, 3), gated(Cell::Tanh, 2), tied(Cell::Lstm, 2)];
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
    let message = load_error(&with_tensor_of(lstm, "lstm.Wh", Some((Dtype::F32, vec![7, 21], vec![0; 7 * 21 * 4]))));
    assert!(message.contains("lstm.Wh has shape [7, 21], expected [hidden, 4 hidden]"), "{message}");
    let message = load_error(&with_tensor_of(lstm, "lstm.1.b", Some((Dtype::F32, vec![21], vec![0; 21 * 4]))));
    assert!(message.contains("lstm.1.b has shape [21]") && message.contains("[28]"), "{message}");
    let message = load_error(&with_tensor_of(lstm, "lstm.1.Wx", None));
    assert!(message.contains("lstm.1.Wx is missing"), "{message}");
    // A layer whose Wh is gone ends the stack there: its other tensors are then extra.
    let message = load_error(&with_tensor_of(lstm, "lstm.1.Wh", None));
    assert!(message.contains("lstm.1.Wx is not part of a 1-layer lstm model"), "{message}");
    let message = load_error(&with_tensor_of(lstm, "gru.Wh", Some((Dtype::F32, vec![7, 21], vec![0; 7 * 21 * 4]))));
    assert!(message.contains("lstm.Wh and gru.Wh belong to different cells"), "{message}");
    // No affine.W means tied weights, which need D = H: here D = 5 and H = 7.
    let message = load_error(&with_tensor_of(lstm, "affine.W", None));
    assert!(message.contains("affine.W is missing (tied weights need embed.W's 5 columns"), "{message}");
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
    let message = checkpoint::decode(&edit(r#""cell":"lstm""#, r#""cell":"gru ""#)).unwrap_err();
    assert!(message.contains("metadata cell = \"gru \" contradicts the tensors, which are lstm's"), "{message}");
    let message = checkpoint::decode(&edit(r#""layers":"2""#, r#""layers":"3""#)).unwrap_err();
    assert!(message.contains("metadata layers = 3 contradicts the tensors' 2"), "{message}");
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
    let message = load_error(&std::fs::read(dir.path().join("two_blocks.safetensors")).unwrap());
    assert!(message.contains("gru.1.Wh has shape [4, 8]") && message.contains("[4, 12]"), "{message}");
}
