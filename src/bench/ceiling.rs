//! The GEMM ceiling: exactly the GEMMs of one training step, with the same shapes and the same
//! GEMM code, and nothing else: the speed a step would have if everything that is not a GEMM were
//! free.

use super::step_flops;
use crate::kernels::{gemm_parallel, AdaptiveShape, Transpose};
use crate::model::{Arch, Dims, Softmax, Window};
use std::time::Instant;

/// Buffers for the GEMMs of one training step, filled with small values.
pub struct GemmCeiling {
    arch: Arch,
    window: Window,
    /// Floating-point operations of one step's GEMMs.
    flops: f64,
    x: Vec<f32>,
    output: OutputGemms,
    layers: Vec<LayerGemms>,
}

/// The output layer's operands.
enum OutputGemms {
    /// `W` (`H x V`), the logits (`T*B x V`) and `dW`.
    Full { w: Vec<f32>, logits: Vec<f32>, dw: Vec<f32> },
    /// The head's (its weights `classes x H`) and each cluster's.
    Adaptive { head: SoftmaxGemms, clusters: Vec<ClusterGemms> },
}

/// A softmax layer with weights stored `classes x inputs` over `rows` rows: `W`, the logits, `dW`.
struct SoftmaxGemms {
    rows: usize,
    inputs: usize,
    classes: usize,
    w: Vec<f32>,
    logits: Vec<f32>,
    dw: Vec<f32>,
}

impl SoftmaxGemms {
    fn new(rows: usize, inputs: usize, classes: usize) -> Self {
        SoftmaxGemms {
            rows,
            inputs,
            classes,
            w: fill(classes * inputs),
            logits: fill(rows * classes),
            dw: fill(classes * inputs),
        }
    }

    /// `logits = x W^T`, `dW = logits^T x`, `dx = logits W`.
    fn run(&mut self, x: &[f32], dx: &mut [f32]) {
        let (m, k, c) = (self.rows, self.inputs, self.classes);
        let (no, yes) = (Transpose::No, Transpose::Yes);
        gemm_parallel(m, c, k, 1.0, x, k, no, &self.w, k, yes, 0.0, &mut self.logits, c);
        gemm_parallel(c, k, m, 1.0, &self.logits, c, yes, x, k, no, 0.0, &mut self.dw, k);
        gemm_parallel(m, k, c, 1.0, &self.logits, c, no, &self.w, k, no, 0.0, dx, k);
    }
}

/// One cluster of an adaptive softmax over its rows: the gathered states and their gradient,
/// the projection `P` (`h_k x H`) with its gradient and output, and the cluster's softmax.
struct ClusterGemms {
    inputs: Vec<f32>,
    d_inputs: Vec<f32>,
    p: Vec<f32>,
    dp: Vec<f32>,
    projected: Vec<f32>,
    d_projected: Vec<f32>,
    softmax: SoftmaxGemms,
}

impl ClusterGemms {
    fn new(rows: usize, shape: &AdaptiveShape, k: usize) -> Self {
        let (hidden, width) = (shape.hidden(), shape.projection(k));
        ClusterGemms {
            inputs: fill(rows * hidden),
            d_inputs: fill(rows * hidden),
            p: fill(width * hidden),
            dp: fill(width * hidden),
            projected: fill(rows * width),
            d_projected: fill(rows * width),
            softmax: SoftmaxGemms::new(rows, width, shape.cluster_size(k)),
        }
    }

    /// The projection, the cluster's softmax, and the projection's two gradients.
    fn run(&mut self) {
        let (m, width, hidden) = (self.softmax.rows, self.softmax.inputs, self.p.len() / self.softmax.inputs);
        let (no, yes) = (Transpose::No, Transpose::Yes);
        gemm_parallel(
            m,
            width,
            hidden,
            1.0,
            &self.inputs,
            hidden,
            no,
            &self.p,
            hidden,
            yes,
            0.0,
            &mut self.projected,
            width,
        );
        self.softmax.run(&self.projected, &mut self.d_projected);
        gemm_parallel(
            width,
            hidden,
            m,
            1.0,
            &self.d_projected,
            width,
            yes,
            &self.inputs,
            hidden,
            no,
            0.0,
            &mut self.dp,
            hidden,
        );
        gemm_parallel(
            m,
            hidden,
            width,
            1.0,
            &self.d_projected,
            width,
            no,
            &self.p,
            hidden,
            no,
            0.0,
            &mut self.d_inputs,
            hidden,
        );
    }
}

impl OutputGemms {
    /// The output layer's GEMMs over `top` (`n x H`), the gradient at it into `dhs`.
    fn run(&mut self, top: &[f32], dhs: &mut [f32], (n, h): (usize, usize)) {
        let (no, yes) = (Transpose::No, Transpose::Yes);
        match self {
            OutputGemms::Full { w, logits, dw } => {
                let v = w.len() / h;
                gemm_parallel(n, v, h, 1.0, top, h, no, w, v, no, 0.0, logits, v);
                gemm_parallel(h, v, n, 1.0, top, h, yes, logits, v, no, 0.0, dw, v);
                gemm_parallel(n, h, v, 1.0, logits, v, no, w, v, yes, 0.0, dhs, h);
            }
            OutputGemms::Adaptive { head, clusters } => {
                head.run(top, dhs);
                clusters.iter_mut().for_each(ClusterGemms::run);
            }
        }
    }
}

/// One recurrent layer's operands: `input` values per position in, `G H` gate columns.
struct LayerGemms {
    input: usize,
    wx: Vec<f32>,
    wh: Vec<f32>,
    /// `T + 1` blocks of `B x H` states; the last `T` are the layer's output.
    states: Vec<f32>,
    /// `T` blocks of `B x G H`: pre-activations, then their gradient.
    gates: Vec<f32>,
    /// The gradient at the outputs (`T*B x H`) and at the inputs (`T*B x input`).
    dhs: Vec<f32>,
    dx: Vec<f32>,
    dwx: Vec<f32>,
    dwh: Vec<f32>,
}

fn fill(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919) % 201) as f32 * 1e-3 - 0.1).collect()
}

impl GemmCeiling {
    /// The GEMMs of one training step of `arch` on `window`, with operands of their shapes
    /// (allocated here, once); with an adaptive softmax, cluster `k` over `cluster_rows[k]`
    /// rows (none without rows).
    pub fn new(arch: impl Into<Arch>, window: Window, cluster_rows: &[usize]) -> GemmCeiling {
        let arch = arch.into();
        let Dims { vocab: v, embed: d, hidden: h } = arch.dims;
        let (n, width) = (window.tokens(), arch.cell.gates() * h);
        let layers = (0..arch.layers)
            .map(|l| {
                let input = arch.input_size(l);
                LayerGemms {
                    input,
                    wx: fill(input * width),
                    wh: fill(h * width),
                    states: fill((n + window.batch) * h),
                    gates: fill(n * width),
                    dhs: fill(n * h),
                    dx: fill(n * input),
                    dwx: fill(input * width),
                    dwh: fill(h * width),
                }
            })
            .collect();
        let output = match arch.output {
            Softmax::Full => OutputGemms::Full { w: fill(h * v), logits: fill(n * v), dw: fill(h * v) },
            Softmax::Adaptive(shape) => OutputGemms::Adaptive {
                head: SoftmaxGemms::new(n, h, shape.head_classes()),
                clusters: (0..shape.clusters())
                    .filter_map(|k| {
                        let rows = cluster_rows.get(k).copied().unwrap_or(0);
                        (rows > 0).then(|| ClusterGemms::new(rows, &shape, k))
                    })
                    .collect(),
            },
        };
        let flops = step_flops(arch, n, cluster_rows);
        GemmCeiling { arch, window, flops, x: fill(n * d), output, layers }
    }

    /// GFLOP/s of `iters` rounds of the step's GEMMs.
    pub fn measure(&mut self, iters: usize) -> f64 {
        let start = Instant::now();
        for _ in 0..iters {
            self.step();
        }
        iters as f64 * self.flops / start.elapsed().as_secs_f64() / 1e9
    }

    /// The GEMMs of one training step, in the model's order and with its shapes.
    fn step(&mut self) {
        let h = self.arch.dims.hidden;
        let Window { batch, time } = self.window;
        let (n, block, width) = (batch * time, batch * h, self.arch.cell.gates() * h);
        let (no, yes) = (Transpose::No, Transpose::Yes);
        for l in 0..self.layers.len() {
            let (below, from_here) = self.layers.split_at_mut(l);
            let layer = &mut from_here[0];
            let inputs = below.last().map_or(&self.x[..], |lower| &lower.states[block..]);
            let input = layer.input;
            gemm_parallel(n, width, input, 1.0, inputs, input, no, &layer.wx, width, no, 0.0, &mut layer.gates, width);
            for t in 0..time {
                let a = &mut layer.gates[t * batch * width..(t + 1) * batch * width];
                gemm_parallel(
                    batch,
                    width,
                    h,
                    1.0,
                    &layer.states[t * block..],
                    h,
                    no,
                    &layer.wh,
                    width,
                    no,
                    1.0,
                    a,
                    width,
                );
            }
        }
        let top = self.layers.last_mut().expect("at least one layer");
        self.output.run(&top.states[block..], &mut top.dhs, (n, h));
        for l in (0..self.layers.len()).rev() {
            let (below, from_here) = self.layers.split_at_mut(l);
            let layer = &mut from_here[0];
            let input = layer.input;
            for t in (1..time).rev() {
                let da = &layer.gates[t * batch * width..(t + 1) * batch * width];
                let dh_prev = &mut layer.dhs[(t - 1) * block..t * block];
                gemm_parallel(batch, h, width, 1.0, da, width, no, &layer.wh, width, yes, 1.0, dh_prev, h);
            }
            let da = &layer.gates;
            gemm_parallel(h, width, n, 1.0, &layer.states[..n * h], h, yes, da, width, no, 0.0, &mut layer.dwh, width);
            let inputs = below.last().map_or(&self.x[..], |lower| &lower.states[block..]);
            gemm_parallel(input, width, n, 1.0, inputs, input, yes, da, width, no, 0.0, &mut layer.dwx, width);
            let d_inputs = below.last_mut().map_or(&mut layer.dx[..], |lower| &mut lower.dhs[..]);
            gemm_parallel(n, input, width, 1.0, da, width, no, &layer.wx, width, yes, 0.0, d_inputs, input);
        }
    }
}
