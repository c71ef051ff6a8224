//! The recurrent layers of the reference, one struct per cell, each over a whole window and
//! stateful between windows: the spec's formulas as loops, batch row by batch row and step by
//! step.
//!
//! Layout: inputs `[b][t][input]`, outputs `[b][t][H]`, carried state `[b][H]` (the LSTM's `h`
//! block, then its `c` block), weights row-major with the gate blocks side by side.

// Index loops read like the spec's formulas, which is the point of this module.
#![allow(clippy::needless_range_loop)]

use super::{zeros, Real};
use crate::model::{Cell, Window};

/// A recurrent layer over windows.
pub trait TimeLayer<R: Real> {
    /// `xs` is `[b][t][input]`; returns `hs`, `[b][t][H]`, and carries the state on.
    fn forward(&mut self, xs: &[R]) -> Vec<R>;
    /// `dhs` is `[b][t][H]`; overwrites the weight gradients and returns the gradient at the
    /// inputs, `[b][t][input]`. No gradient flows into the state carried in.
    fn backward(&mut self, dhs: &[R]) -> Vec<R>;
    /// `(Wx, dWx)`, `(Wh, dWh)`, `(b, db)`.
    fn tensors_mut(&mut self) -> [(&mut Vec<R>, &mut Vec<R>); 3];
    /// The carried state: `h` (`[b][H]`), then `c` for the LSTM.
    fn state(&self) -> Vec<R>;
    /// Replaces the carried state (layout of [`state`](Self::state)).
    fn set_state(&mut self, state: &[R]);
}

/// A layer of `cell` reading `input` values per position, with the given weights.
pub fn time_layer<R: Real + 'static>(
    cell: Cell,
    (input, hidden): (usize, usize),
    window: Window,
    [wx, wh, b]: [Vec<R>; 3],
) -> Box<dyn TimeLayer<R>> {
    let weights = Weights::new((input, hidden), cell.gates(), window, [wx, wh, b]);
    match cell {
        Cell::Rnn => Box::new(TimeRnn { state: zeros(window.batch * hidden), weights, hs: Vec::new() }),
        Cell::Lstm => Box::new(TimeLstm {
            h: zeros(window.batch * hidden),
            c: zeros(window.batch * hidden),
            weights,
            c0: Vec::new(),
            gates: Vec::new(),
            cs: Vec::new(),
            hs: Vec::new(),
        }),
        Cell::Gru => {
            Box::new(TimeGru { state: zeros(window.batch * hidden), weights, gates: Vec::new(), hs: Vec::new() })
        }
    }
}

/// What every cell has: the weights and their gradients, the sizes, and the window's inputs
/// and the state it started from.
struct Weights<R> {
    wx: Vec<R>,
    wh: Vec<R>,
    b: Vec<R>,
    dwx: Vec<R>,
    dwh: Vec<R>,
    db: Vec<R>,
    input: usize,
    hidden: usize,
    /// Columns of the weights: gates x hidden.
    width: usize,
    window: Window,
    xs: Vec<R>,
    h0: Vec<R>,
}

impl<R: Real> Weights<R> {
    fn new((input, hidden): (usize, usize), gates: usize, window: Window, [wx, wh, b]: [Vec<R>; 3]) -> Self {
        let width = gates * hidden;
        Weights {
            wx,
            wh,
            b,
            dwx: zeros(input * width),
            dwh: zeros(hidden * width),
            db: zeros(width),
            input,
            hidden,
            width,
            window,
            xs: Vec::new(),
            h0: Vec::new(),
        }
    }

    /// `x * Wx + h * Wh + b` for the columns `cols` (all gates' pre-activations there).
    fn pre_activation(&self, x: &[R], h: &[R], cols: std::ops::Range<usize>) -> Vec<R> {
        cols.map(|j| {
            let mut s = self.b[j];
            for i in 0..self.input {
                s += x[i] * self.wx[i * self.width + j];
            }
            for k in 0..self.hidden {
                s += h[k] * self.wh[k * self.width + j];
            }
            s
        })
        .collect()
    }

    /// The input of batch row `b` at step `t`.
    fn x(&self, b: usize, t: usize) -> &[R] {
        let row = b * self.window.time + t;
        &self.xs[row * self.input..(row + 1) * self.input]
    }

    fn zero_grads(&mut self) {
        for g in self.dwx.iter_mut().chain(&mut self.dwh).chain(&mut self.db) {
            *g = R::zero();
        }
    }

    /// Adds one position's pre-activation gradient `da` (all `width` columns) to `dWx` and
    /// `db`, and returns its gradient at the input, `da * Wx^T`.
    fn input_gradients(&mut self, x: &[R], da: &[R]) -> Vec<R> {
        let mut dx = zeros(self.input);
        for j in 0..self.width {
            for i in 0..self.input {
                self.dwx[i * self.width + j] += x[i] * da[j];
                dx[i] += da[j] * self.wx[i * self.width + j];
            }
            self.db[j] += da[j];
        }
        dx
    }

    /// `dWh[:, cols] += h^T da[cols]`.
    fn add_wh_gradient(&mut self, h: &[R], da: &[R], cols: std::ops::Range<usize>) {
        for j in cols {
            for k in 0..self.hidden {
                self.dwh[k * self.width + j] += h[k] * da[j];
            }
        }
    }

    /// `da[cols] * Wh[:, cols]^T`, an `H`-vector.
    fn through_wh(&self, da: &[R], cols: std::ops::Range<usize>) -> Vec<R> {
        (0..self.hidden)
            .map(|k| {
                let mut s = R::zero();
                for j in cols.clone() {
                    s += da[j] * self.wh[k * self.width + j];
                }
                s
            })
            .collect()
    }

    fn tensors_mut(&mut self) -> [(&mut Vec<R>, &mut Vec<R>); 3] {
        [(&mut self.wx, &mut self.dwx), (&mut self.wh, &mut self.dwh), (&mut self.b, &mut self.db)]
    }
}

fn sigmoid<R: Real>(x: R) -> R {
    R::one() / (R::one() + (-x).exp())
}

/// The chapter's tanh RNN: `h = tanh(x Wx + h Wh + b)`.
pub struct TimeRnn<R> {
    state: Vec<R>,
    weights: Weights<R>,
    hs: Vec<R>,
}

impl<R: Real> TimeLayer<R> for TimeRnn<R> {
    fn forward(&mut self, xs: &[R]) -> Vec<R> {
        let w = &mut self.weights;
        let (h, Window { batch, time }) = (w.hidden, w.window);
        w.xs = xs.to_vec();
        w.h0 = self.state.clone();
        let mut hs = zeros(batch * time * h);
        for b in 0..batch {
            let mut prev: Vec<R> = w.h0[b * h..(b + 1) * h].to_vec();
            for t in 0..time {
                let next: Vec<R> = w.pre_activation(w.x(b, t), &prev, 0..h).into_iter().map(|a| a.tanh()).collect();
                hs[(b * time + t) * h..(b * time + t + 1) * h].copy_from_slice(&next);
                prev = next;
            }
            self.state[b * h..(b + 1) * h].copy_from_slice(&prev);
        }
        self.hs = hs.clone();
        hs
    }

    fn backward(&mut self, dhs: &[R]) -> Vec<R> {
        let w = &mut self.weights;
        let (h, Window { batch, time }) = (w.hidden, w.window);
        w.zero_grads();
        let mut dxs = zeros(batch * time * w.input);
        for b in 0..batch {
            let mut dh = zeros::<R>(h);
            for t in (0..time).rev() {
                let row = b * time + t;
                let h_t = &self.hs[row * h..(row + 1) * h];
                let h_prev =
                    if t == 0 { w.h0[b * h..(b + 1) * h].to_vec() } else { self.hs[(row - 1) * h..row * h].to_vec() };
                let dt: Vec<R> = (0..h).map(|j| (dhs[row * h + j] + dh[j]) * (R::one() - h_t[j] * h_t[j])).collect();
                let x = w.x(b, t).to_vec();
                let dx = w.input_gradients(&x, &dt);
                dxs[row * w.input..(row + 1) * w.input].copy_from_slice(&dx);
                w.add_wh_gradient(&h_prev, &dt, 0..h);
                dh = w.through_wh(&dt, 0..h);
            }
        }
        dxs
    }

    fn tensors_mut(&mut self) -> [(&mut Vec<R>, &mut Vec<R>); 3] {
        self.weights.tensors_mut()
    }

    fn state(&self) -> Vec<R> {
        self.state.clone()
    }

    fn set_state(&mut self, state: &[R]) {
        self.state.copy_from_slice(state);
    }
}

/// The LSTM of the spec, gate blocks `[f | g | i | o]`.
pub struct TimeLstm<R> {
    h: Vec<R>,
    c: Vec<R>,
    weights: Weights<R>,
    c0: Vec<R>,
    /// The window's activated gates `[b][t][4H]`, cell states and outputs `[b][t][H]`.
    gates: Vec<R>,
    cs: Vec<R>,
    hs: Vec<R>,
}

impl<R: Real> TimeLayer<R> for TimeLstm<R> {
    fn forward(&mut self, xs: &[R]) -> Vec<R> {
        let w = &mut self.weights;
        let (h, Window { batch, time }) = (w.hidden, w.window);
        w.xs = xs.to_vec();
        w.h0 = self.h.clone();
        self.c0 = self.c.clone();
        let (mut hs, mut gates, mut cs) =
            (zeros(batch * time * h), zeros(batch * time * 4 * h), zeros(batch * time * h));
        for b in 0..batch {
            let mut h_prev: Vec<R> = w.h0[b * h..(b + 1) * h].to_vec();
            let mut c_prev: Vec<R> = self.c0[b * h..(b + 1) * h].to_vec();
            for t in 0..time {
                let row = b * time + t;
                let a = w.pre_activation(w.x(b, t), &h_prev, 0..4 * h);
                for j in 0..h {
                    let (f, g, i, o) = (sigmoid(a[j]), a[h + j].tanh(), sigmoid(a[2 * h + j]), sigmoid(a[3 * h + j]));
                    let c = f * c_prev[j] + g * i;
                    cs[row * h + j] = c;
                    hs[row * h + j] = o * c.tanh();
                    for (gate, value) in [f, g, i, o].into_iter().enumerate() {
                        gates[row * 4 * h + gate * h + j] = value;
                    }
                }
                h_prev = hs[row * h..(row + 1) * h].to_vec();
                c_prev = cs[row * h..(row + 1) * h].to_vec();
            }
            self.h[b * h..(b + 1) * h].copy_from_slice(&h_prev);
            self.c[b * h..(b + 1) * h].copy_from_slice(&c_prev);
        }
        self.gates = gates;
        self.cs = cs;
        self.hs = hs.clone();
        hs
    }

    fn backward(&mut self, dhs: &[R]) -> Vec<R> {
        let (h, Window { batch, time }) = (self.weights.hidden, self.weights.window);
        self.weights.zero_grads();
        let mut dxs = zeros(batch * time * self.weights.input);
        for b in 0..batch {
            let (mut dh_next, mut dc_next) = (zeros::<R>(h), zeros::<R>(h));
            for t in (0..time).rev() {
                let row = b * time + t;
                let gates = self.gates[row * 4 * h..(row + 1) * 4 * h].to_vec();
                let c_prev = if t == 0 {
                    self.c0[b * h..(b + 1) * h].to_vec()
                } else {
                    self.cs[(row - 1) * h..row * h].to_vec()
                };
                let h_prev = if t == 0 {
                    self.weights.h0[b * h..(b + 1) * h].to_vec()
                } else {
                    self.hs[(row - 1) * h..row * h].to_vec()
                };
                let mut da = zeros(4 * h);
                for j in 0..h {
                    let (f, g, i, o) = (gates[j], gates[h + j], gates[2 * h + j], gates[3 * h + j]);
                    let dh = dhs[row * h + j] + dh_next[j];
                    let tc = self.cs[row * h + j].tanh();
                    let ds = dc_next[j] + dh * o * (R::one() - tc * tc);
                    dc_next[j] = ds * f;
                    da[j] = ds * c_prev[j] * f * (R::one() - f);
                    da[h + j] = ds * i * (R::one() - g * g);
                    da[2 * h + j] = ds * g * i * (R::one() - i);
                    da[3 * h + j] = dh * tc * o * (R::one() - o);
                }
                let x = self.weights.x(b, t).to_vec();
                let dx = self.weights.input_gradients(&x, &da);
                let input = self.weights.input;
                dxs[row * input..(row + 1) * input].copy_from_slice(&dx);
                self.weights.add_wh_gradient(&h_prev, &da, 0..4 * h);
                dh_next = self.weights.through_wh(&da, 0..4 * h);
            }
        }
        dxs
    }

    fn tensors_mut(&mut self) -> [(&mut Vec<R>, &mut Vec<R>); 3] {
        self.weights.tensors_mut()
    }

    fn state(&self) -> Vec<R> {
        [self.h.clone(), self.c.clone()].concat()
    }

    fn set_state(&mut self, state: &[R]) {
        let (h, c) = state.split_at(self.h.len());
        self.h.copy_from_slice(h);
        self.c.copy_from_slice(c);
    }
}

/// The GRU whose reset gate multiplies the state before `Wh`, gate blocks `[z | r | h~]`:
/// `h = (1 - z) h + z h~`.
pub struct TimeGru<R> {
    state: Vec<R>,
    weights: Weights<R>,
    /// The window's activated gates `[b][t][3H]` and outputs `[b][t][H]`.
    gates: Vec<R>,
    hs: Vec<R>,
}

impl<R: Real> TimeLayer<R> for TimeGru<R> {
    fn forward(&mut self, xs: &[R]) -> Vec<R> {
        let w = &mut self.weights;
        let (h, Window { batch, time }) = (w.hidden, w.window);
        w.xs = xs.to_vec();
        w.h0 = self.state.clone();
        let (mut hs, mut gates) = (zeros(batch * time * h), zeros(batch * time * 3 * h));
        for b in 0..batch {
            let mut prev: Vec<R> = w.h0[b * h..(b + 1) * h].to_vec();
            for t in 0..time {
                let row = b * time + t;
                let x = w.x(b, t);
                let zr: Vec<R> = w.pre_activation(x, &prev, 0..2 * h).into_iter().map(sigmoid).collect();
                let rh: Vec<R> = (0..h).map(|j| zr[h + j] * prev[j]).collect();
                let candidate: Vec<R> = w.pre_activation(x, &rh, 2 * h..3 * h).into_iter().map(|a| a.tanh()).collect();
                for j in 0..h {
                    let z = zr[j];
                    hs[row * h + j] = (R::one() - z) * prev[j] + z * candidate[j];
                    gates[row * 3 * h + j] = z;
                    gates[row * 3 * h + h + j] = zr[h + j];
                    gates[row * 3 * h + 2 * h + j] = candidate[j];
                }
                prev = hs[row * h..(row + 1) * h].to_vec();
            }
            self.state[b * h..(b + 1) * h].copy_from_slice(&prev);
        }
        self.gates = gates;
        self.hs = hs.clone();
        hs
    }

    fn backward(&mut self, dhs: &[R]) -> Vec<R> {
        let (h, input, Window { batch, time }) = (self.weights.hidden, self.weights.input, self.weights.window);
        self.weights.zero_grads();
        let mut dxs = zeros(batch * time * input);
        for b in 0..batch {
            let mut dh_next = zeros::<R>(h);
            for t in (0..time).rev() {
                let row = b * time + t;
                let w = &self.weights;
                let h_prev: Vec<R> =
                    if t == 0 { w.h0[b * h..(b + 1) * h].to_vec() } else { self.hs[(row - 1) * h..row * h].to_vec() };
                let gates = self.gates[row * 3 * h..(row + 1) * 3 * h].to_vec();
                let (z, r, candidate) = (&gates[..h], &gates[h..2 * h], &gates[2 * h..]);
                let dh: Vec<R> = (0..h).map(|j| dhs[row * h + j] + dh_next[j]).collect();
                let mut da = zeros(3 * h);
                let mut dh_prev: Vec<R> = (0..h).map(|j| dh[j] * (R::one() - z[j])).collect();
                for j in 0..h {
                    da[j] = dh[j] * (candidate[j] - h_prev[j]) * z[j] * (R::one() - z[j]);
                    da[2 * h + j] = dh[j] * z[j] * (R::one() - candidate[j] * candidate[j]);
                }
                let drh = w.through_wh(&da, 2 * h..3 * h);
                for j in 0..h {
                    da[h + j] = drh[j] * h_prev[j] * r[j] * (R::one() - r[j]);
                    dh_prev[j] += drh[j] * r[j];
                }
                let through = w.through_wh(&da, 0..2 * h);
                dh_next = (0..h).map(|j| dh_prev[j] + through[j]).collect();
                let rh: Vec<R> = (0..h).map(|j| r[j] * h_prev[j]).collect();
                let x = w.x(b, t).to_vec();
                let w = &mut self.weights;
                let dx = w.input_gradients(&x, &da);
                dxs[row * input..(row + 1) * input].copy_from_slice(&dx);
                w.add_wh_gradient(&h_prev, &da, 0..2 * h);
                w.add_wh_gradient(&rh, &da, 2 * h..3 * h);
            }
        }
        dxs
    }

    fn tensors_mut(&mut self) -> [(&mut Vec<R>, &mut Vec<R>); 3] {
        self.weights.tensors_mut()
    }

    fn state(&self) -> Vec<R> {
        self.state.clone()
    }

    fn set_state(&mut self, state: &[R]) {
        self.state.copy_from_slice(state);
    }
}
