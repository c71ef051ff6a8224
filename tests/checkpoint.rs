//! Checkpoints: round trip, every kind of bad file, and interoperability with Python's
//! `safetensors` package (numpy).

mod common;

use rnnlm::checkpoint::{self, Meta};
use rnnlm::corpus::{Level, Vocab};
use rnnlm::{Dims, SimpleRnnlm, Tensor, Window};
use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;
use std::process::Command;

fn small_model() -> (SimpleRnnlm, Meta) {
    let dims = Dims { vocab: 12, embed: 5, hidden: 7 };
    let model = SimpleRnnlm::new(dims, Window { batch: 3, time: 4 }, 42).unwrap();
    let mut vocab = Vocab::new();
    for i in 0..12 {
        vocab.intern(&format!("w{i}"));
    }
    (model, Meta { level: Some(Level::Word), lowercase: false, epoch: 3, vocab: Some(vocab) })
}

#[test]
fn save_load_gives_identical_predictions() {
    let (mut model, meta) = small_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    checkpoint::save(&path, model.dims(), model.params(), &meta).unwrap();
    let loaded = checkpoint::load(&path).unwrap();
    assert_eq!(loaded.dims, model.dims());
    assert_eq!(loaded.meta, meta);
    let mut again = SimpleRnnlm::from_params(loaded.dims, model.window(), &loaded.params).unwrap();
    let xs: Vec<u32> = (0..12).map(|i| (i * 5 % 12) as u32).collect();
    let (mut a, mut b) = (vec![0; 12], vec![0; 12]);
    model.predict(&xs, &mut a).unwrap();
    again.predict(&xs, &mut b).unwrap();
    assert_eq!(a, b);
    assert!(model.params().iter().zip(again.params()).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// A checkpoint of the small model with one tensor replaced (or dropped, with `None`).
fn with_tensor(name: &str, replacement: Option<(Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    let (model, _) = small_model();
    let dims = model.dims();
    let bytes: &[u8] = bytemuck::cast_slice(model.params());
    let mut tensors = Vec::new();
    for t in Tensor::ALL {
        let r = t.range(dims);
        tensors.push((t.name().to_owned(), Dtype::F32, t.spec_shape(dims), bytes[r.start * 4..r.end * 4].to_vec()));
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
    let bytes = checkpoint::encode(model.dims(), model.params(), &meta).unwrap();
    for cut in [3, 100, bytes.len() - 10] {
        let message = load_error(&bytes[..cut]);
        assert!(message.contains("truncated") || message.contains("not a valid"), "cut {cut}: {message}");
    }
}

#[test]
fn metadata_that_contradicts_the_tensors_is_rejected() {
    let (model, mut meta) = small_model();
    meta.vocab = Some(Vocab::new());
    let message = checkpoint::decode(&checkpoint::encode(model.dims(), model.params(), &meta).unwrap());
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
    checkpoint::save(&dir.path().join("ours.safetensors"), model.dims(), model.params(), &meta).unwrap();
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
    let dims = model.dims();
    for t in Tensor::ALL {
        let shape = format!("{:?}", t.spec_shape(dims));
        let last = model.param(t).last().unwrap();
        let want = format!("{} float32 {shape} {:?}", t.name(), *last as f64);
        assert!(printed.contains(&want), "{want:?} not in:\n{printed}");
    }
    assert!(printed.contains("meta 12 word 3 ['w0', 'w1']"), "{printed}");

    let theirs = checkpoint::load(&dir.path().join("theirs.safetensors")).unwrap();
    assert_eq!(theirs.dims, dims);
    assert_eq!(theirs.meta, Meta::default(), "a file without metadata loads with none");
    for (a, b) in theirs.params.iter().zip(model.params()) {
        assert_eq!(*a, b * 2.0);
    }
}
