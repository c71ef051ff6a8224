//! The core of the book's model classes (`SimpleRnnlm`, `Rnnlm`, `BetterRnnlm` in
//! `rnnlm/book.py`): one crate model whose parameter and gradient buffers the Python side sees
//! as numpy arrays, and the book's calls (`forward`, `backward`, `predict`, `reset_state`) on
//! windows of any shape.
//!
//! The book's layers keep their state between calls (`stateful=True`) until `reset_state`;
//! so does this model: the number of rows may change only after a reset, the number of time
//! steps whenever the caller likes.

use crate::errors::model_error;
use crate::threads::install;
use ndarray::{ArrayView, IxDyn, ShapeBuilder};
use numpy::{PyArray3, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use rnnlm::{Arch, Cell, Dims, Rnnlm, Softmax, Tensor, Window};

/// A model of the book's kind on the crate's kernels.
#[pyclass(module = "rnnlm._native")]
pub struct BookModel {
    model: Rnnlm,
    /// Whether a state is carried into the next call (the book's `h` is not `None`).
    carrying: bool,
    /// The last window's ids, row-major `B x T`, as the crate takes them.
    ids: Vec<u32>,
    targets: Vec<i32>,
}

/// One parameter or gradient as the book lists it: where it starts in its buffer, its shape
/// and its strides (in elements).
struct BookTensor {
    start: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

impl BookModel {
    /// The book's parameter list: every tensor in the crate's order (which is the book's), the
    /// biases one-dimensional; with tied weights `embed_W.T` before the affine bias, a
    /// transposed view of `embed_W` as the book's `TimeAffine(embed_W.T, ...)` holds it.
    fn book_tensors(arch: Arch) -> Vec<BookTensor> {
        let mut list = Vec::new();
        for tensor in arch.tensors() {
            if tensor == Tensor::AffineB && arch.tied {
                let (vocab, embed) = arch.shape(Tensor::EmbedW);
                list.push(BookTensor { start: 0, shape: vec![embed, vocab], strides: vec![1, embed] });
            }
            let (rows, cols) = arch.shape(tensor);
            let start = arch.range(tensor).start;
            let one_dimensional = matches!(tensor, Tensor::B(_) | Tensor::AffineB);
            list.push(if one_dimensional {
                BookTensor { start, shape: vec![cols], strides: vec![1] }
            } else {
                BookTensor { start, shape: vec![rows, cols], strides: vec![cols, 1] }
            });
        }
        list
    }

    /// numpy arrays onto `base` (a buffer of the model `slf` holds) for `tensors`; each keeps
    /// the model alive.
    fn views<'py>(
        slf: &Bound<'py, Self>,
        tensors: &[(BookTensor, *mut f32)],
    ) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        let container = slf.clone().into_any();
        tensors
            .iter()
            .map(|(tensor, base)| {
                let shape = IxDyn(&tensor.shape).strides(IxDyn(&tensor.strides));
                // SAFETY: `base` points into a buffer of the model, which never moves or frees
                // it while the model lives (`Rnnlm::buffer_pointers`), and every view stays
                // inside its tensor (shape and strides from the architecture's ranges); the
                // array keeps the model object alive through `container`. The buffer is also
                // written by the model's passes: they run while the caller waits for them, as
                // numpy's own operations on the array would.
                unsafe {
                    let view = ArrayView::from_shape_ptr(shape, base.add(tensor.start) as *const f32);
                    Ok(PyArrayDyn::borrow_from_array(&view, container.clone()))
                }
            })
            .collect()
    }

    /// Checks the shape of a window against the carried state, makes the model's window that
    /// shape and takes its input ids `xs` (checked by [`read_ids`]).
    fn fit_window(&mut self, rows: usize, steps: usize, xs: &[i64]) -> PyResult<()> {
        let current = self.model.window();
        if self.carrying && rows != current.batch {
            return Err(PyValueError::new_err(format!(
                "xs has {rows} rows, but the state carried from the last call has {}: call reset_state() first",
                current.batch
            )));
        }
        let window = Window { batch: rows, time: steps };
        self.model.set_window(window).map_err(|e| model_error("xs", e))?;
        if !self.carrying {
            self.model.reset_state();
        }
        self.ids.clear();
        self.ids.extend(xs.iter().map(|&id| id as u32));
        self.targets.resize(window.tokens(), 0);
        Ok(())
    }
}

/// The ids of a `B x T` integer numpy array, checked to be below `vocab` (or `-1`, the
/// ignored target, when `allow_ignored`); the error names the argument.
fn read_ids(
    name: &str,
    array: &Bound<'_, PyAny>,
    vocab: usize,
    allow_ignored: bool,
) -> PyResult<(usize, usize, Vec<i64>)> {
    let array = array.cast::<PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err(format!("{name} must be a numpy array of integer ids, got {}", type_name(array)))
    })?;
    let dtype = array.dtype();
    if !matches!(dtype.kind(), b'i' | b'u') {
        return Err(PyTypeError::new_err(format!("{name} must hold integer ids (int32 or int64), got {dtype}")));
    }
    if array.ndim() != 2 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a 2-D array (batch x time), got {} dimensions",
            array.ndim()
        )));
    }
    let (rows, steps) = (array.shape()[0], array.shape()[1]);
    if rows == 0 || steps == 0 {
        return Err(PyValueError::new_err(format!("{name} is empty ({rows} x {steps})")));
    }
    let as_i64 = array.call_method1("astype", ("int64",))?;
    let as_i64 = as_i64.cast::<PyArrayDyn<i64>>()?.readonly();
    let values: Vec<i64> = as_i64.as_array().iter().copied().collect();
    let lowest = if allow_ignored { -1 } else { 0 };
    if let Some(i) = values.iter().position(|&id| id < lowest || id >= vocab as i64) {
        let ignored = if allow_ignored { " (or -1, an ignored target)" } else { "" };
        return Err(PyValueError::new_err(format!(
            "{name}[{}, {}] = {} is not a word id: ids are 0 to {}{ignored}",
            i / steps,
            i % steps,
            values[i],
            vocab - 1
        )));
    }
    Ok((rows, steps, values))
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "an object".into())
}

#[pymethods]
impl BookModel {
    /// A model of `cell` (`rnn`, `lstm` or `gru`) with `layers` layers, parameters zeroed (the
    /// Python class initialises them), dropout `dropout` drawn from `seed`.
    #[new]
    #[pyo3(signature = (vocab_size, wordvec_size, hidden_size, cell, layers, tied, dropout, seed))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        vocab_size: usize,
        wordvec_size: usize,
        hidden_size: usize,
        cell: &str,
        layers: usize,
        tied: bool,
        dropout: f32,
        seed: u64,
    ) -> PyResult<Self> {
        let cell = Cell::from_name(cell).ok_or_else(|| PyValueError::new_err(format!("unknown cell {cell:?}")))?;
        let dims = Dims { vocab: vocab_size, embed: wordvec_size, hidden: hidden_size };
        let arch = Arch { dims, cell, layers, tied, output: Softmax::Full };
        let mut model =
            Rnnlm::from_params(arch, Window { batch: 1, time: 1 }, &vec![0.0; arch.param_count().unwrap_or(0)])
                .map_err(|e| model_error("model", e))?;
        model.set_dropout(dropout, seed).map_err(|e| model_error("dropout_ratio", e))?;
        model.set_open_gradients(true).map_err(|e| model_error("model", e))?;
        Ok(BookModel { model, carrying: false, ids: Vec::new(), targets: Vec::new() })
    }

    /// The parameters in the book's order, as numpy arrays onto the model's buffer.
    fn params<'py>(slf: &Bound<'py, Self>) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        let (params, _, _) = slf.borrow_mut().model.buffer_pointers();
        let tensors = Self::book_tensors(slf.borrow().model.arch());
        let tensors: Vec<_> = tensors.into_iter().map(|t| (t, params)).collect();
        Self::views(slf, &tensors)
    }

    /// The gradients in the book's order, as numpy arrays onto the model's gradient buffers:
    /// with tied weights, `embed_W`'s is the embedding's own and `embed_W.T`'s the affine
    /// layer's (two arrays, as the book has them).
    fn grads<'py>(slf: &Bound<'py, Self>) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        let (_, grads, apart) = slf.borrow_mut().model.buffer_pointers();
        let arch = slf.borrow().model.arch();
        let tensors: Vec<_> = Self::book_tensors(arch)
            .into_iter()
            .enumerate()
            .map(|(i, t)| match apart {
                // The embedding's own gradient of a tied model is apart; the transposed view
                // (the affine layer's) is the main buffer's.
                Some(apart) if i == 0 => (t, apart),
                _ => (t, grads),
            })
            .collect();
        Self::views(slf, &tensors)
    }

    /// The mean loss over the window's targets (those not `-1`), as the book's
    /// `TimeSoftmaxWithLoss`; with `train`, dropout (if the model has it) applies.
    #[pyo3(signature = (xs, ts, train=false))]
    fn forward(&mut self, py: Python<'_>, xs: &Bound<'_, PyAny>, ts: &Bound<'_, PyAny>, train: bool) -> PyResult<f64> {
        let vocab = self.model.dims().vocab;
        let (rows, steps, x) = read_ids("xs", xs, vocab, false)?;
        let (t_rows, t_steps, t) = read_ids("ts", ts, vocab, true)?;
        if (t_rows, t_steps) != (rows, steps) {
            return Err(PyValueError::new_err(format!(
                "ts has shape ({t_rows}, {t_steps}), xs ({rows}, {steps}): they must be the same"
            )));
        }
        self.fit_window(rows, steps, &x)?;
        for (slot, &id) in self.targets.iter_mut().zip(&t) {
            *slot = id as i32;
        }
        let BookModel { model, ids, targets, .. } = self;
        model.params_written();
        let loss = py.detach(|| {
            install(|| if train { model.forward_training(ids, targets) } else { model.forward(ids, targets) })
        });
        self.carrying = true;
        loss.map(f64::from).map_err(|e| model_error("forward", e))
    }

    /// Every gradient of the last `forward`, overwritten.
    fn backward(&mut self, py: Python<'_>) -> PyResult<()> {
        let model = &mut self.model;
        py.detach(|| install(|| model.backward())).map_err(|e| model_error("backward", e))
    }

    /// The scores (logits) after every input, `B x T x V`; advances the state like `forward`.
    fn predict<'py>(&mut self, py: Python<'py>, xs: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let vocab = self.model.dims().vocab;
        let (rows, steps, x) = read_ids("xs", xs, vocab, false)?;
        self.fit_window(rows, steps, &x)?;
        let scores = PyArray3::<f32>::zeros(py, [rows, steps, vocab], false);
        // SAFETY: the array was just made here and nothing else refers to it yet.
        let out = unsafe { scores.as_slice_mut()? };
        let BookModel { model, ids, .. } = self;
        model.params_written();
        py.detach(|| install(|| model.logits(ids, out))).map_err(|e| model_error("predict", e))?;
        self.carrying = true;
        Ok(scores)
    }

    /// Forgets the carried state: the next call starts from zeros, with any number of rows.
    fn reset_state(&mut self) {
        self.carrying = false;
    }
}
