//! Checkpoints in the safetensors format.
//!
//! One f32 tensor per parameter, named and shaped as the model's definition writes them (`embed.W` V x D,
//! `rnn.Wx` D x H, `rnn.Wh` H x H, `rnn.b` H, `affine.W` H x V, `affine.b` V, row-major; for
//! other cells and layers, the names of [`Arch::name`]: `lstm.Wx` D x 4H, `gru.1.Wh` H x 3H,
//! and so on), so a checkpoint loads in numpy or PyTorch through the `safetensors` package, and
//! a file written there with those names, shapes and dtype loads here: the cell and the number
//! of layers follow from the names, the sizes from the shapes. The header's `__metadata__`
//! (string values) carries what `predict`, `eval` and `generate` need besides the weights:
//!
//! | key | value |
//! |-----|-------|
//! | `format` | `rnnlm.SimpleRnnlm.v1` |
//! | `vocab_size`, `embed`, `hidden` | the sizes, decimal |
//! | `cell`, `layers` | `tanh`, `lstm` or `gru`, and the number of recurrent layers |
//! | `tied` | `true` when the output layer uses `embed.W^T` (there is then no `affine.W`) |
//! | `level` | `word` or `char` |
//! | `lowercase` | `true` or `false` (char level: the text was lower-cased) |
//! | `dropout` | the dropout ratio the model trained with, `0` for none |
//! | `epoch` | epochs trained so far, decimal |
//! | `vocab` | the vocabulary, in the `vocab.txt` format (one escaped token per line) |
//! | `cutoffs`, `div_value` | with an adaptive softmax: its cutoffs (`2000,6000`) and div value (`4`) |
//!
//! A model with an adaptive softmax has, instead of `affine.W` and `affine.b`, the tensors of
//! PyTorch's `nn.AdaptiveLogSoftmaxWithLoss` state dict under the prefix `adaptive.`:
//! `adaptive.head.weight` ((cutoff0 + clusters) x H), `adaptive.head.bias` (if the head has a
//! bias), `adaptive.tail.{k}.0.weight` (h_k x H) and `adaptive.tail.{k}.1.weight` (n_k x h_k),
//! plus `adaptive.order`, an I64 tensor with `order[rank] = word id`. Built with the same
//! cutoffs and div value (and `head_bias`), PyTorch's module loads those tensors (prefix
//! removed, without `order`) and gives the same log-probabilities for the same hidden states,
//! word id `order[r]` being its class `r`.
//!
//! Metadata is optional on loading (a file made elsewhere may have none); commands that need
//! the vocabulary say so when it is missing.
//!
//! ```
//! use rnnlm::files::checkpoint::{self, CheckpointError, Meta};
//! use rnnlm::{Dims, Rnnlm, Window};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("model.safetensors");
//! let dims = Dims { vocab: 30, embed: 4, hidden: 6 };
//! let model = Rnnlm::new(dims, Window { batch: 1, time: 1 }, 3)?;
//! checkpoint::save(&path, model.arch(), model.params(), &Meta::default())?;
//! let loaded = checkpoint::load(&path)?;
//! assert_eq!((loaded.arch, &loaded.params[..]), (model.arch(), model.params()));
//! // A file that is not there is an I/O error, one that is not a checkpoint an invalid one.
//! assert!(matches!(checkpoint::load(&dir.path().join("none")), Err(CheckpointError::Io { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::files::atomic_file;
use crate::files::corpus::{Level, Vocab};
use crate::kernels::{AdaptiveShape, AdaptiveTensor};
use crate::model::{Arch, Cell, Dims, ModelError, Rnnlm, Softmax, Tensor, Window};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

mod error;
use error::{bad_metadata, invalid, io_error, missing, not_a_permutation, unwritable, wrong_dtype, wrong_shape};
pub use error::{CheckpointError, Problem};

/// The `format` metadata value of checkpoints written by this version.
pub const FORMAT: &str = "rnnlm.SimpleRnnlm.v1";

/// What a checkpoint says besides its weights.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    /// Word or character level of the vocabulary, if the checkpoint says.
    pub level: Option<Level>,
    /// Whether characters were lower-cased before tokenizing.
    pub lowercase: bool,
    /// Epochs trained.
    pub epoch: usize,
    /// The dropout ratio of training (0: none).
    pub dropout: f32,
    /// The vocabulary, when the checkpoint carries it.
    pub vocab: Option<Vocab>,
    /// With an adaptive softmax: the word id of each rank (`adaptive.order`), most frequent
    /// first ([`Rnnlm::word_order`]).
    pub word_order: Option<Vec<u32>>,
}

/// Weights and metadata read from a checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The architecture, from the tensor names and shapes.
    pub arch: Arch,
    /// Flat parameters in the layout of [`Arch::range`].
    pub params: Vec<f32>,
    /// What the checkpoint says besides its weights.
    pub meta: Meta,
}

impl Checkpoint {
    /// The model the checkpoint holds (its parameters and, with an adaptive softmax, its
    /// word order), with a workspace for `window`.
    pub fn model(&self, window: Window) -> Result<Rnnlm, ModelError> {
        let mut model = Rnnlm::from_params(self.arch, window, &self.params)?;
        if let Some(order) = &self.meta.word_order {
            model.set_word_order(order)?;
        }
        Ok(model)
    }
}

/// The tensor of an adaptive softmax's word order.
const ORDER: &str = "adaptive.order";
/// The adaptive softmax's head.
const HEAD: &str = "adaptive.head.weight";

/// The bytes of a checkpoint holding `params` (layout of [`Arch::range`]) and `meta`.
pub fn encode(arch: impl Into<Arch>, params: &[f32], meta: &Meta) -> Result<Vec<u8>, Problem> {
    let (header, bytes, data_start) = encode_parts(arch.into(), params, meta)?;
    let mut out = header;
    out.extend_from_slice(&bytes[data_start..]);
    Ok(out)
}

/// A checkpoint in two parts, so that it can be written without a third copy of the weights:
/// the length-prefixed header (keys sorted), and safetensors' own bytes with the tensors
/// from `data_start` on.
fn encode_parts(arch: Arch, params: &[f32], meta: &Meta) -> Result<(Vec<u8>, Vec<u8>, usize), Problem> {
    let expected = arch.param_count().ok_or_else(|| unwritable("the model's sizes overflow"))?;
    if params.len() != expected {
        return Err(unwritable(format!("{} parameters given, the model has {expected}", params.len())));
    }
    if let Some(index) = params.iter().position(|v| !v.is_finite()) {
        let tensor =
            arch.tensors().find(|&t| arch.range(t).contains(&index)).map_or_else(String::new, |t| arch.name(t));
        return Err(unwritable(format!("refusing to write non-finite weights ({} in {tensor})", params[index])));
    }
    let bytes: &[u8] = bytemuck::cast_slice(params);
    let mut views = Vec::new();
    for tensor in arch.tensors() {
        let range = arch.range(tensor);
        let view = TensorView::new(Dtype::F32, arch.spec_shape(tensor), &bytes[range.start * 4..range.end * 4])
            .map_err(|e| unwritable(e.to_string()))?;
        views.push((arch.name(tensor), view));
    }
    let order_bytes: Vec<u8> = match (arch.adaptive(), &meta.word_order) {
        (None, _) => Vec::new(),
        (Some(_), Some(order)) if order.len() == arch.dims.vocab => {
            order.iter().flat_map(|&id| (id as i64).to_le_bytes()).collect()
        }
        (Some(_), _) => {
            return Err(unwritable(format!("an adaptive softmax needs its word order ({} ids)", arch.dims.vocab)))
        }
    };
    if !order_bytes.is_empty() {
        let view =
            TensorView::new(Dtype::I64, vec![arch.dims.vocab], &order_bytes).map_err(|e| unwritable(e.to_string()))?;
        views.push((ORDER.to_owned(), view));
    }
    let dims = arch.dims;
    let mut metadata = HashMap::new();
    metadata.insert("format".to_owned(), FORMAT.to_owned());
    metadata.insert("vocab_size".to_owned(), dims.vocab.to_string());
    metadata.insert("embed".to_owned(), dims.embed.to_string());
    metadata.insert("hidden".to_owned(), dims.hidden.to_string());
    metadata.insert("cell".to_owned(), arch.cell.name().to_owned());
    metadata.insert("layers".to_owned(), arch.layers.to_string());
    metadata.insert("tied".to_owned(), arch.tied.to_string());
    metadata.insert("epoch".to_owned(), meta.epoch.to_string());
    metadata.insert("lowercase".to_owned(), meta.lowercase.to_string());
    metadata.insert("dropout".to_owned(), meta.dropout.to_string());
    if let Some(level) = meta.level {
        metadata.insert("level".to_owned(), level.name().to_owned());
    }
    if let Some(vocab) = &meta.vocab {
        metadata.insert("vocab".to_owned(), vocab.to_file_text());
    }
    if let Some(shape) = arch.adaptive() {
        let cutoffs: Vec<String> = shape.cutoffs().iter().map(usize::to_string).collect();
        metadata.insert("cutoffs".to_owned(), cutoffs.join(","));
        metadata.insert("div_value".to_owned(), shape.div_value().to_string());
    }
    let bytes = safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| unwritable(e.to_string()))?;
    let (header, data_start) = sorted_header(&bytes)?;
    Ok((header, bytes, data_start))
}

/// The file's length-prefixed JSON header rewritten with every object's keys in sorted order
/// (the order of `serde_json`'s maps), and where the tensors start in `bytes`: `safetensors` writes the metadata in a `HashMap`'s order,
/// which changes from run to run, so the same weights would give files with different bytes
/// and a checksum could not tell that two runs agree. The tensors' offsets count from the end
/// of the header, so they stay valid.
fn sorted_header(bytes: &[u8]) -> Result<(Vec<u8>, usize), Problem> {
    let header_len = bytes.get(..8).map(|len| u64::from_le_bytes(len.try_into().expect("eight bytes")));
    let header_end = header_len.and_then(|len| usize::try_from(len).ok()).and_then(|len| len.checked_add(8));
    let header_end =
        header_end.filter(|&end| end <= bytes.len()).ok_or_else(|| unwritable("safetensors wrote no header"))?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..header_end]).map_err(|e| unwritable(e.to_string()))?;
    let mut sorted = serde_json::to_vec(&header).map_err(|e| unwritable(e.to_string()))?;
    // safetensors pads the header with spaces to a multiple of 8 bytes, to align the tensors.
    sorted.resize(sorted.len().next_multiple_of(8), b' ');
    let mut header = Vec::with_capacity(8 + sorted.len());
    header.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    header.extend_from_slice(&sorted);
    Ok((header, header_end))
}

/// Writes a checkpoint atomically (temporary file, then rename): an existing file at `path`
/// is replaced only by a complete new one.
pub fn save(path: &Path, arch: impl Into<Arch>, params: &[f32], meta: &Meta) -> Result<(), CheckpointError> {
    let (header, bytes, data_start) =
        encode_parts(arch.into(), params, meta).map_err(|problem| invalid(path, problem))?;
    let write = || -> std::io::Result<()> {
        let mut temp = atomic_file::stage(path, &header)?;
        temp.write_all(&bytes[data_start..])?;
        atomic_file::commit(temp, path)
    };
    write().map_err(|e| io_error(path, e))
}

/// Reads and validates a checkpoint: every tensor of its architecture present, f32, with
/// mutually consistent shapes (and consistent with the metadata, when there is any), and no
/// other tensor.
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    decode(&bytes).map_err(|problem| invalid(path, problem))
}

/// [`load`] on bytes in memory.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, Problem> {
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| describe_format_error(bytes, e))?;
    let tensor = |name: &str| -> Result<TensorView<'_>, Problem> {
        let view = tensors.tensor(name).map_err(|_| missing(name))?;
        if view.dtype() != Dtype::F32 {
            return Err(wrong_dtype(name, format!("the tensor {name} is {:?}, rnnlm needs F32", view.dtype())));
        }
        Ok(view)
    };
    let arch = infer_arch(&tensors, &tensor("embed.W")?, bytes)?;
    let mut params = Vec::new();
    for t in arch.tensors() {
        let name = arch.name(t);
        let view = tensor(&name)?;
        let expected = arch.spec_shape(t);
        if view.shape() != expected {
            let why = format!(
                "{name} has shape {:?}, but embed.W {:?} and {} {:?} make it {expected:?}",
                view.shape(),
                tensor("embed.W")?.shape(),
                arch.name(Tensor::Wh(0)),
                tensor(&arch.name(Tensor::Wh(0)))?.shape(),
            );
            return Err(wrong_shape(&name, why));
        }
        params.extend(view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))));
    }
    let mut known: Vec<String> = arch.tensors().map(|t| arch.name(t)).collect();
    if arch.adaptive().is_some() {
        known.push(ORDER.to_owned());
    }
    let mut names = tensors.names();
    names.sort();
    if let Some(extra) = names.into_iter().find(|name| !known.iter().any(|k| k == *name)) {
        let why = format!("the tensor {extra} is not part of a {}-layer {} model", arch.layers, arch.cell.name());
        return Err(Problem::ExtraTensor { tensor: extra.to_owned(), why });
    }
    let mut meta = read_meta(bytes, arch)?;
    if arch.adaptive().is_some() {
        meta.word_order = Some(read_order(&tensors, arch.dims.vocab)?);
    }
    Ok(Checkpoint { arch, params, meta })
}

/// The architecture the tensor names and shapes describe: the cell from the prefix of the
/// first layer's `Wh` (`rnn`, `lstm` or `gru`), the layers from the consecutive `{cell}.{l}.Wh`
/// present, `V` and `D` from `embed.W`, `H` from the first layer's `Wh` (`H x G H`).
fn infer_arch(tensors: &SafeTensors<'_>, embed: &TensorView<'_>, bytes: &[u8]) -> Result<Arch, Problem> {
    let has = |name: &str| tensors.tensor(name).is_ok();
    let cells: Vec<Cell> = Cell::ALL.into_iter().filter(|c| has(&format!("{}.Wh", c.name()))).collect();
    let cell = match cells[..] {
        [cell] => cell,
        [] => {
            let why = "the tensor rnn.Wh (or lstm.Wh, gru.Wh) is missing".to_owned();
            return Err(Problem::MissingTensor { tensor: "rnn.Wh".to_owned(), why });
        }
        _ => {
            let names: Vec<String> = cells.iter().map(|c| format!("{}.Wh", c.name())).collect();
            let why = format!("the tensors {} belong to different cells", names.join(" and "));
            return Err(Problem::ExtraTensor { tensor: names[1].clone(), why });
        }
    };
    let prefix = cell.name();
    let layers = 1 + (1..).take_while(|l| has(&format!("{prefix}.{l}.Wh"))).count();
    let (vocab, embed_dim) = match embed.shape() {
        &[v, d] => (v, d),
        other => return Err(wrong_shape("embed.W", format!("embed.W has shape {other:?}, expected [vocab, embed]"))),
    };
    let wh = tensors.tensor(&format!("{prefix}.Wh")).map_err(|_| missing(&format!("{prefix}.Wh")))?;
    let gates = cell.gates();
    let hidden = match wh.shape() {
        &[h, width] if width == gates * h => h,
        other => {
            let want =
                if gates == 1 { "a square [hidden, hidden]".to_owned() } else { format!("[hidden, {gates} hidden]") };
            return Err(wrong_shape(
                &format!("{prefix}.Wh"),
                format!("{prefix}.Wh has shape {other:?}, expected {want}"),
            ));
        }
    };
    let dims = Dims { vocab, embed: embed_dim, hidden };
    if vocab == 0 || embed_dim == 0 || hidden == 0 {
        return Err(wrong_shape("embed.W", format!("a size is zero: {dims:?}")));
    }
    let output = match tensors.tensor("adaptive.head.weight") {
        Ok(head) => Softmax::Adaptive(infer_adaptive(tensors, &head, dims, bytes)?),
        Err(_) => Softmax::Full,
    };
    // Without an affine.W of its own, a full softmax reads embed.W transposed.
    let tied = output == Softmax::Full && !has("affine.W");
    if tied && embed_dim != hidden {
        let why = format!(
            "the tensor affine.W is missing (tied weights need embed.W's {embed_dim} columns to equal the hidden size {hidden})"
        );
        return Err(Problem::MissingTensor { tensor: "affine.W".to_owned(), why });
    }
    Ok(Arch { dims, cell, layers, tied, output })
}

/// The adaptive softmax the `adaptive.*` tensors and the metadata describe: the clusters from
/// the consecutive `adaptive.tail.{k}.1.weight` present, the cutoffs from their rows (and the
/// head's), the div value from the metadata (which must then agree on the cutoffs too).
fn infer_adaptive(
    tensors: &SafeTensors<'_>,
    head: &TensorView<'_>,
    dims: Dims,
    bytes: &[u8],
) -> Result<AdaptiveShape, Problem> {
    let rows_of = |name: &str| -> Result<usize, Problem> {
        let view = tensors.tensor(name).map_err(|_| missing(name))?;
        match view.shape() {
            &[rows, _] => Ok(rows),
            other => Err(wrong_shape(name, format!("{name} has shape {other:?}, expected a matrix"))),
        }
    };
    let cluster_name = |k: usize| format!("adaptive.{}", AdaptiveTensor::ClusterWeight(k).name());
    let clusters = (0..).take_while(|&k| tensors.tensor(&cluster_name(k)).is_ok()).count();
    let head_rows = match head.shape() {
        &[rows, _] => rows,
        other => return Err(wrong_shape(HEAD, format!("{HEAD} has shape {other:?}, expected a matrix"))),
    };
    let mut cutoffs = vec![head_rows.checked_sub(clusters).filter(|&c| c > 0).ok_or_else(|| {
        wrong_shape(HEAD, format!("{HEAD} has {head_rows} rows, too few for a shortlist and {clusters} clusters"))
    })?];
    for k in 0..clusters.saturating_sub(1) {
        cutoffs.push(cutoffs[k] + rows_of(&cluster_name(k))?);
    }
    let words = cutoffs[clusters.saturating_sub(1)] + rows_of(&cluster_name(clusters.saturating_sub(1)))?;
    if clusters == 0 || words != dims.vocab {
        let why =
            format!("the adaptive softmax's head and clusters hold {words} words, but embed.W has {} rows", dims.vocab);
        return Err(wrong_shape(HEAD, why));
    }
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| describe_format_error(bytes, e))?;
    let values = metadata.metadata().clone().unwrap_or_default();
    let div_value = match values.get("div_value").map(|v| (v, v.parse::<f32>())) {
        Some((_, Ok(div))) => div,
        Some((text, Err(_))) => {
            return Err(bad_metadata("div_value", format!("metadata div_value = {text:?} is not a number")))
        }
        None => return Err(bad_metadata("div_value", "metadata div_value is missing: an adaptive softmax needs it")),
    };
    let stated = cutoffs.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    if let Some(given) = values.get("cutoffs").filter(|&given| *given != stated) {
        let why = format!("metadata cutoffs = {given:?} contradicts the tensors, which make them {stated}");
        return Err(bad_metadata("cutoffs", why));
    }
    let head_bias = tensors.tensor("adaptive.head.bias").is_ok();
    AdaptiveShape::new(dims.vocab, dims.hidden, &cutoffs, div_value, head_bias)
        .map_err(|e| bad_metadata("div_value", format!("metadata div_value = {div_value} and cutoffs {stated}: {e}")))
}

/// The word order of an adaptive checkpoint: `adaptive.order`, integers forming a permutation
/// of `0..vocab`.
fn read_order(tensors: &SafeTensors<'_>, vocab: usize) -> Result<Vec<u32>, Problem> {
    let view = tensors.tensor(ORDER).map_err(|_| missing(ORDER))?;
    let values: Vec<i64> = match view.dtype() {
        Dtype::I64 => view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect(),
        Dtype::I32 => {
            view.data().chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as i64).collect()
        }
        other => return Err(wrong_dtype(ORDER, format!("the tensor {ORDER} is {other:?}, rnnlm needs I64 (or I32)"))),
    };
    if view.shape() != [vocab] {
        return Err(wrong_shape(ORDER, format!("{ORDER} has shape {:?}, expected [{vocab}]", view.shape())));
    }
    let mut seen = vec![false; vocab];
    let mut order = Vec::with_capacity(vocab);
    for &id in &values {
        match usize::try_from(id).ok().filter(|&id| id < vocab) {
            Some(id) if !seen[id] => {
                seen[id] = true;
                order.push(id as u32);
            }
            Some(_) => return Err(not_a_permutation(format!("id {id} appears twice"), vocab)),
            None => return Err(not_a_permutation(format!("it holds {id}"), vocab)),
        }
    }
    Ok(order)
}

/// A clearer message than the parser's for the usual ways a file is not a checkpoint.
fn describe_format_error(bytes: &[u8], e: safetensors::SafeTensorError) -> Problem {
    let why = if bytes.len() < 8 {
        format!("truncated or not a safetensors file ({} bytes)", bytes.len())
    } else {
        let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        if header_len > bytes.len() as u64 - 8 {
            format!(
                "truncated or not a safetensors file (the header claims {header_len} bytes, the file has {})",
                bytes.len()
            )
        } else {
            format!("not a valid safetensors file ({e})")
        }
    };
    Problem::NotSafetensors { why }
}

fn read_meta(bytes: &[u8], arch: Arch) -> Result<Meta, Problem> {
    let dims = arch.dims;
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| describe_format_error(bytes, e))?;
    let Some(values) = metadata.metadata() else { return Ok(Meta::default()) };
    let number = |key: &str| -> Result<Option<usize>, Problem> {
        values
            .get(key)
            .map(|v| {
                v.parse::<usize>().map_err(|_| bad_metadata(key, format!("metadata {key} = {v:?} is not a number")))
            })
            .transpose()
    };
    let sizes = [("vocab_size", dims.vocab), ("embed", dims.embed), ("hidden", dims.hidden), ("layers", arch.layers)];
    for (key, actual) in sizes {
        if let Some(stated) = number(key)? {
            if stated != actual {
                return Err(bad_metadata(key, format!("metadata {key} = {stated} contradicts the tensors' {actual}")));
            }
        }
    }
    if let Some(stated) = values.get("tied").filter(|&stated| *stated != arch.tied.to_string()) {
        let have = if arch.tied { "no affine.W" } else { "an affine.W" };
        return Err(bad_metadata(
            "tied",
            format!("metadata tied = {stated:?} contradicts the tensors, which have {have}"),
        ));
    }
    if let Some(stated) = values.get("cell") {
        if Cell::from_name(stated) != Some(arch.cell) {
            let why = format!("metadata cell = {stated:?} contradicts the tensors, which are {}'s", arch.cell.name());
            return Err(bad_metadata("cell", why));
        }
    }
    let level = values
        .get("level")
        .map(|v| v.parse::<Level>().map_err(|e| bad_metadata("level", format!("metadata level: {e}"))));
    let level = level.transpose()?;
    let lowercase = match values.get("lowercase").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad_metadata("lowercase", format!("metadata lowercase = {other:?} is not true or false")))
        }
    };
    let vocab = match values.get("vocab") {
        None => None,
        Some(text) => {
            let vocab = Vocab::from_file_bytes(text.as_bytes())
                .map_err(|e| bad_metadata("vocab", format!("metadata vocab: {e}")))?;
            if vocab.len() != dims.vocab {
                let why = format!("metadata vocab has {} tokens, the tensors {}", vocab.len(), dims.vocab);
                return Err(bad_metadata("vocab", why));
            }
            Some(vocab)
        }
    };
    let dropout = match values.get("dropout") {
        None => 0.0,
        Some(text) => match text.parse::<f32>() {
            Ok(p) if (0.0..1.0).contains(&p) => p,
            _ => return Err(bad_metadata("dropout", format!("metadata dropout = {text:?} is not a ratio in [0, 1)"))),
        },
    };
    Ok(Meta { level, lowercase, epoch: number("epoch")?.unwrap_or(0), dropout, vocab, word_order: None })
}

/// Checks that a model whose vocabulary is `model_vocab` can read ids made with
/// `corpus_vocab`: the corpus vocabulary must start with exactly the model's tokens (it may be
/// longer when the model was trained on the first tokens of the corpus only).
pub fn check_vocab_compatible(model_vocab: &Vocab, corpus_vocab: &Vocab, corpus: &str) -> Result<(), String> {
    let n = model_vocab.len();
    if corpus_vocab.len() < n || corpus_vocab.tokens()[..n] != *model_vocab.tokens() {
        let first_difference = model_vocab
            .tokens()
            .iter()
            .zip(corpus_vocab.tokens())
            .position(|(a, b)| a != b)
            .unwrap_or(n.min(corpus_vocab.len()));
        return Err(format!(
            "the checkpoint's vocabulary ({n} tokens) does not match {corpus}'s ({} tokens; they differ from id {first_difference})",
            corpus_vocab.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Arch, Vec<f32>, Meta) {
        let dims = Arch::from(Dims { vocab: 5, embed: 3, hidden: 2 });
        let count = dims.param_count().unwrap();
        let params = (0..count).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut vocab = Vocab::new();
        for t in ["a", "b", "\n", "d", "e"] {
            vocab.intern(t);
        }
        (
            dims,
            params,
            Meta {
                level: Some(Level::Char),
                lowercase: true,
                epoch: 7,
                dropout: 0.25,
                vocab: Some(vocab),
                word_order: None,
            },
        )
    }

    #[test]
    fn round_trip() {
        let (dims, params, meta) = sample();
        let back = decode(&encode(dims, &params, &meta).unwrap()).unwrap();
        assert_eq!(back.arch, dims);
        assert_eq!(back.params, params);
        assert_eq!(back.meta, meta);
    }

    #[test]
    fn the_same_checkpoint_gives_the_same_bytes() {
        // Each encoding builds its metadata map with its own random hash order.
        let (dims, params, meta) = sample();
        let first = encode(dims, &params, &meta).unwrap();
        for _ in 0..8 {
            assert_eq!(encode(dims, &params, &meta).unwrap(), first);
        }
        let header_len = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0);
        let header = std::str::from_utf8(&first[8..8 + header_len]).unwrap();
        assert!(
            header.starts_with(r#"{"__metadata__":{"cell":"rnn","dropout":"0.25","embed":"3","epoch":"7","format":"#),
            "{header}"
        );
    }

    #[test]
    fn truncated_files_are_named_as_such() {
        let (dims, params, meta) = sample();
        let bytes = encode(dims, &params, &meta).unwrap();
        for cut in [0, 5, 20, bytes.len() - 1] {
            let problem = decode(&bytes[..cut]).unwrap_err();
            assert!(matches!(problem, Problem::NotSafetensors { .. }), "{cut}: {problem:?}");
            let message = problem.to_string();
            assert!(message.contains("truncated") || message.contains("not a valid"), "{cut}: {message}");
        }
    }
}
