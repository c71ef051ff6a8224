//! What one training window costs, part by part.
//!
//! Every part of the model reports its own work: the GEMMs of its passes (shapes and counts,
//! as its kernels run them), how many parallel tasks each pass splits into, and the bytes of
//! its window buffers. Whatever a benchmark says about work — a step's FLOP count, the GEMM
//! ceiling (the same shapes run alone), each phase's share — is derived from these reports, so
//! a new cell or output layer brings its figures with it.
//!
//! ```
//! use rnnlm::{Arch, Cell, Dims, Phase, Rnnlm, Softmax, Window};
//!
//! let dims = Dims { vocab: 1000, embed: 32, hidden: 32 };
//! let arch = Arch { dims, cell: Cell::Lstm, layers: 1, tied: false, output: Softmax::Full };
//! let model = Rnnlm::new(arch, Window { batch: 4, time: 5 }, 1).unwrap();
//! let cost = model.window_cost(&[]);
//! // The output layer's three GEMMs: 6 H V multiply-adds and adds per token.
//! assert_eq!(cost.phase_flops(Phase::OutputForward) + cost.phase_flops(Phase::OutputBackward), 6.0 * 32.0 * 1000.0 * 20.0);
//! assert!(cost.layers.iter().any(|layer| layer.name == "lstm 0"));
//! ```

use super::Rnnlm;
use crate::kernels::{gather_pieces, recurrent_split, update_pieces, GemmShape, Transpose};

/// The parts of a training step, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Gathering the word vectors, and scattering their gradient.
    Embedding,
    /// Every recurrent layer's input projection and recurrence (and dropout).
    RecurrentForward,
    /// The output layer's logits, softmax and loss.
    OutputForward,
    /// The output layer's weight gradients (or folded update) and the gradient at its input.
    OutputBackward,
    /// Every recurrent layer's backward recurrence and weight gradients.
    RecurrentBackward,
    /// Clipping and the SGD update.
    Update,
}

impl Phase {
    /// Every phase, in the order a step runs them.
    pub const ALL: [Phase; 6] = [
        Phase::Embedding,
        Phase::RecurrentForward,
        Phase::OutputForward,
        Phase::OutputBackward,
        Phase::RecurrentBackward,
        Phase::Update,
    ];

    /// Its name in reports: `embedding`, `recurrent forward`, ...
    pub fn name(self) -> &'static str {
        match self {
            Phase::Embedding => "embedding",
            Phase::RecurrentForward => "recurrent forward",
            Phase::OutputForward => "output forward",
            Phase::OutputBackward => "output backward",
            Phase::RecurrentBackward => "recurrent backward",
            Phase::Update => "update",
        }
    }

    /// Its place in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What one part of the model costs per training window.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerCost {
    /// What the part is: `embedding`, `lstm 0`, `full softmax`, `adaptive softmax`, `update`.
    pub name: String,
    /// Its GEMMs and the phase each runs in.
    pub gemms: Vec<(Phase, GemmShape)>,
    /// How many parallel tasks its pass in each phase splits into, in the current thread pool.
    pub tasks: Vec<(Phase, usize)>,
    /// Bytes of its window buffers (activations, gradients at them, scratch, packed copies;
    /// not the parameters).
    pub buffer_bytes: usize,
}

impl LayerCost {
    /// Floating-point operations of all its GEMMs.
    pub fn flops(&self) -> f64 {
        self.gemms.iter().fold(0.0, |sum, (_, gemm)| sum + gemm.flops())
    }
}

/// What one training window costs: every part's [`LayerCost`], in the order a step runs them.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowCost {
    /// Tokens per window, `B * T`.
    pub tokens: usize,
    /// The embedding, each recurrent layer, the output layer, the update.
    pub layers: Vec<LayerCost>,
}

impl WindowCost {
    /// Floating-point operations of every GEMM of a window.
    pub fn flops(&self) -> f64 {
        self.layers.iter().map(LayerCost::flops).fold(0.0, |sum, flops| sum + flops)
    }

    /// Floating-point operations of the GEMMs of `phase`.
    pub fn phase_flops(&self, phase: Phase) -> f64 {
        self.gemms().filter(|(p, _)| *p == phase).fold(0.0, |sum, (_, gemm)| sum + gemm.flops())
    }

    /// The most parallel tasks any part splits `phase` into (1 if none reports it).
    pub fn tasks(&self, phase: Phase) -> usize {
        let reported = self.layers.iter().flat_map(|layer| &layer.tasks);
        reported.filter(|(p, _)| *p == phase).map(|(_, tasks)| *tasks).max().unwrap_or(1)
    }

    /// Every GEMM of a window with its phase, part by part.
    pub fn gemms(&self) -> impl Iterator<Item = (Phase, GemmShape)> + '_ {
        self.layers.iter().flat_map(|layer| layer.gemms.iter().copied())
    }

    /// Bytes of every part's window buffers.
    pub fn buffer_bytes(&self) -> usize {
        self.layers.iter().map(|layer| layer.buffer_bytes).sum()
    }
}

impl Rnnlm {
    /// What one training window of this model costs, part by part: the embedding, each
    /// recurrent layer, the output layer and the update, each with its GEMMs, its parallel
    /// tasks in the current thread pool, and its buffers' bytes. With an adaptive softmax,
    /// `cluster_rows[k]` is the number of rows whose target is in tail cluster `k` (what the
    /// cluster computes; [`cluster_rows`](Rnnlm::cluster_rows) gives a window's); a full
    /// softmax ignores it.
    pub fn window_cost(&self, cluster_rows: &[usize]) -> WindowCost {
        let arch = self.arch;
        let (n, batch) = (self.window.tokens(), self.window.batch);
        let ws = &self.ws;
        let embedding = LayerCost {
            name: "embedding".to_string(),
            gemms: Vec::new(),
            tasks: vec![(Phase::Embedding, gather_pieces(n, arch.dims.embed))],
            buffer_bytes: (ws.x.len() + ws.dx.len() + ws.ids.len() + ws.targets.len()) * size_of::<f32>(),
        };
        let mut layers = vec![embedding];
        for (l, layer) in ws.layers.iter().enumerate() {
            let (input, width) = (arch.input_size(l), arch.cell.gates() * arch.dims.hidden);
            let (no, yes) = (Transpose::No, Transpose::Yes);
            let (forward, backward) = layer.gemms();
            // A step's multiply-adds decide how the recurrence is split, as in its kernel.
            let step_work = forward.iter().map(|g| g.m * g.n * g.k).sum::<usize>();
            let steps = forward.first().map_or(0, |g| g.times);
            let tasks = recurrent_split(batch, arch.dims.hidden, step_work, steps).tasks();
            let projection = GemmShape::new((n, width, input), no, no);
            let input_grads = [GemmShape::new((input, width, n), yes, no), GemmShape::new((n, input, width), no, yes)];
            let forward = std::iter::once(projection).chain(forward).map(|g| (Phase::RecurrentForward, g));
            let backward = backward.into_iter().chain(input_grads).map(|g| (Phase::RecurrentBackward, g));
            let dropout = self.dropout.as_ref().map_or(0, |sites| sites.site_bytes(l));
            layers.push(LayerCost {
                name: format!("{} {l}", arch.cell.name()),
                gemms: forward.chain(backward).collect(),
                tasks: vec![(Phase::RecurrentForward, tasks), (Phase::RecurrentBackward, tasks)],
                buffer_bytes: layer.buffer_bytes() + dropout,
            });
        }
        let mut output = ws.output.cost(cluster_rows);
        output.buffer_bytes += self.dropout.as_ref().map_or(0, |sites| sites.site_bytes(arch.layers));
        output.buffer_bytes += (ws.row_loss.len() + ws.class_scores.len()) * size_of::<f32>();
        layers.push(output);
        layers.push(LayerCost {
            name: "update".to_string(),
            gemms: Vec::new(),
            tasks: vec![(Phase::Update, update_pieces(self.params.len()))],
            buffer_bytes: 0,
        });
        WindowCost { tokens: n, layers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::AdaptiveShape;
    use crate::model::{Arch, Cell, Dims, Softmax, Window};

    const WINDOW: Window = Window { batch: 6, time: 7 };

    fn model(dims: Dims, cell: Cell, layers: usize, output: Softmax) -> Rnnlm {
        Rnnlm::new(Arch { dims, cell, layers, tied: false, output }, WINDOW, 1).unwrap()
    }

    /// A recurrent layer's GEMM operations with `g` gate blocks: the window's projection and
    /// its two input gradients (`6 G H input N`), `dWh` (`2 G H H N`), and the recurrent product
    /// forward at every step and backward at every step but the first (`2 B G H H` each).
    fn layer_flops(g: f64, h: f64, input: f64) -> f64 {
        let (b, t) = (WINDOW.batch as f64, WINDOW.time as f64);
        let n = b * t;
        6.0 * g * h * input * n + 2.0 * g * h * h * n + 2.0 * b * g * h * h * (2.0 * t - 1.0)
    }

    #[test]
    fn tanh_and_lstm_layers_report_every_gemm_they_run() {
        let (dims, n) = (Dims { vocab: 300, embed: 12, hidden: 20 }, WINDOW.tokens() as f64);
        for (cell, g) in [(Cell::Rnn, 1.0), (Cell::Lstm, 4.0)] {
            let cost = model(dims, cell, 2, Softmax::Full).window_cost(&[]);
            let recurrent = layer_flops(g, 20.0, 12.0) + layer_flops(g, 20.0, 20.0);
            let output = 6.0 * 20.0 * 300.0 * n;
            assert_eq!(cost.flops(), recurrent + output, "{cell:?}");
            let phases: f64 = Phase::ALL.iter().map(|&p| cost.phase_flops(p)).sum();
            assert_eq!(phases, cost.flops());
            assert_eq!(cost.phase_flops(Phase::Embedding) + cost.phase_flops(Phase::Update), 0.0);
            let names: Vec<&str> = cost.layers.iter().map(|l| l.name.as_str()).collect();
            let layer_names = [format!("{} 0", cell.name()), format!("{} 1", cell.name())];
            assert_eq!(names, ["embedding", &layer_names[0], &layer_names[1], "full softmax", "update"]);
            assert!(cost.layers.iter().skip(1).take(3).all(|l| l.buffer_bytes > 0));
        }
    }

    #[test]
    fn the_gru_counts_its_candidate_product_at_every_step() {
        let (b, t, h, d) = (WINDOW.batch as f64, WINDOW.time as f64, 20.0, 12.0);
        let cost = model(Dims { vocab: 300, embed: 12, hidden: 20 }, Cell::Gru, 1, Softmax::Full).window_cost(&[]);
        // `layer_flops` counts 3 H H backward at T - 1 steps; the candidate's H H runs at T.
        let want = layer_flops(3.0, h, d) + 2.0 * b * h * h + 6.0 * h * 300.0 * b * t;
        assert_eq!(cost.flops(), want);
    }

    #[test]
    fn adaptive_flops_follow_the_clusters_rows() {
        let shape = AdaptiveShape::new(10_000, 200, &[2000, 6000], 4.0, true).unwrap();
        let dims = Dims { vocab: 10_000, embed: 200, hidden: 200 };
        let model = model(dims, Cell::Lstm, 1, Softmax::Adaptive(shape));
        let n = WINDOW.tokens() as f64;
        let without = layer_flops(4.0, 200.0, 200.0) + 6.0 * n * 200.0 * 2002.0;
        let tails = 6.0 * 9.0 * 50.0 * (200.0 + 4000.0) + 6.0 * 3.0 * 12.0 * (200.0 + 4000.0);
        assert_eq!(model.window_cost(&[9, 3]).flops(), without + tails);
        assert_eq!(model.window_cost(&[0, 0]).flops(), without);
        assert_eq!(model.window_cost(&[]).flops(), without);
    }

    #[test]
    fn output_tasks_follow_the_shape_and_recurrent_tasks_the_pool() {
        let window = Window { batch: 20, time: 35 };
        let arch = Arch::from(Dims { vocab: 10_000, embed: 200, hidden: 200 });
        let model = Rnnlm::new(Arch { cell: Cell::Lstm, ..arch }, window, 1).unwrap();
        let tasks = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| Phase::ALL.map(|phase| model.window_cost(&[]).tasks(phase)))
        };
        let (one, many) = (tasks(1), tasks(64));
        let index = |phase: Phase| phase.index();
        for phase in [Phase::Embedding, Phase::OutputForward, Phase::OutputBackward, Phase::Update] {
            assert_eq!(one[index(phase)], many[index(phase)], "{phase:?}");
        }
        assert_eq!(one[index(Phase::OutputForward)], 40, "one task per panel of 256 classes");
        assert!(one[index(Phase::OutputBackward)] > 8, "not capped at 8: {one:?}");
        // B = 20 allows five groups of rows; beyond five threads a step's product of
        // 20 x 800 x 200 is split by blocks of hidden units instead, one per whole packed panel
        // (6 of 32 units on AVX-512, 12 of 16 on AVX2).
        let (one_rec, many_rec) = (one[index(Phase::RecurrentForward)], many[index(Phase::RecurrentForward)]);
        assert!(one_rec == 1 && many_rec > 5, "recurrent tasks: {one_rec} on one thread, {many_rec} on 64");
    }
}
