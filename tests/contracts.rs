//! Every public kernel checks its operands in release builds too: a call with a mismatched
//! slice, leading dimension, packed shape, id or target panics with a message naming the
//! kernel, the operand and both sizes, and writes nothing before it does.
//!
//! Each case fills the outputs with a sentinel, makes one operand wrong, and checks the exact
//! message and that every output still holds the sentinel.

use rnnlm::kernels::{
    column_sums, dropout_backward, dropout_forward, embedding_gather, embedding_scatter_add, gemm, gemm_packed,
    gemm_packed_a, gemm_parallel, gru_backward_window, gru_forward_window, lstm_backward_window, lstm_forward_window,
    rnn_backward_window, rnn_forward_window, sgd_update, MaskKey, OutputLayer, OutputUpdate, PackedA, PackedB,
    Transpose,
};
use rnnlm::train::Batcher;
use rnnlm::Window;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What the outputs hold before a refused call, and must still hold after it.
const SENTINEL: f32 = 7.25;

fn sentinel(len: usize) -> Vec<f32> {
    vec![SENTINEL; len]
}

fn untouched(name: &str, values: &[f32]) {
    assert!(values.iter().all(|v| v.to_bits() == SENTINEL.to_bits()), "{name} was written before the check");
}

/// Runs `call`, which must panic with exactly `message`.
fn refused(message: &str, call: impl FnOnce()) {
    let payload = catch_unwind(AssertUnwindSafe(call)).expect_err(&format!("no panic; expected {message:?}"));
    let got = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .expect("a panic with a message");
    assert_eq!(got, message);
}

#[test]
fn sgd_update_refuses_a_gradient_of_another_length() {
    let mut p = sentinel(100);
    refused("sgd_update: grads has 50 elements, but params has 100", || sgd_update(&mut p, &[1.0; 50], 0.1));
    refused("sgd_update: grads has 101 elements, but params has 100", || sgd_update(&mut p, &[1.0; 101], 0.1));
    untouched("params", &p);
}

#[test]
fn embedding_gather_checks_table_output_and_ids() {
    let (vocab, dim) = (5, 4);
    let table = vec![1.0; vocab * dim];
    let mut out = sentinel(3 * dim);
    refused("embedding_gather: table has 16 elements, but vocab x dim is 5 x 4 = 20", || {
        embedding_gather(vocab, dim, &table[..16], &[0, 1, 2], &mut out)
    });
    refused("embedding_gather: out has 12 elements, but ids.len() x dim is 2 x 4 = 8", || {
        embedding_gather(vocab, dim, &table, &[0, 1], &mut out)
    });
    refused("embedding_gather: ids[2] is 5, not below vocab = 5", || {
        embedding_gather(vocab, dim, &table, &[0, 1, 5], &mut out)
    });
    untouched("out", &out);
}

#[test]
fn embedding_scatter_add_checks_rows_table_and_ids() {
    let (vocab, dim) = (5, 4);
    let rows = vec![1.0; 3 * dim];
    let mut table = sentinel(vocab * dim);
    refused("embedding_scatter_add: rows_grad has 12 elements, but ids.len() x dim is 4 x 4 = 16", || {
        embedding_scatter_add(vocab, dim, &rows, &[0, 1, 2, 3], &mut table)
    });
    refused("embedding_scatter_add: table_grad has 20 elements, but vocab x dim is 6 x 4 = 24", || {
        embedding_scatter_add(6, dim, &rows, &[0, 1, 2], &mut table)
    });
    refused("embedding_scatter_add: ids[0] is 9, not below vocab = 5", || {
        embedding_scatter_add(vocab, dim, &rows, &[9, 1, 2], &mut table)
    });
    untouched("table_grad", &table);
}

#[test]
fn column_sums_checks_matrix_and_output() {
    let mut out = sentinel(7);
    refused("column_sums: matrix has 20 elements, but rows x cols is 3 x 7 = 21", || {
        column_sums(3, 7, &[1.0; 20], &mut out)
    });
    refused("column_sums: out has 7 elements, but cols is 6", || column_sums(3, 6, &[1.0; 18], &mut out));
    untouched("out", &out);
}

fn packed(rows: usize, cols: usize) -> PackedB {
    let mut packed = PackedB::new(rows, cols).unwrap();
    packed.pack(&vec![0.1; rows * cols], cols, Transpose::No);
    packed
}

/// A `rows x cols` operand packed from its transpose, as the backward kernels take `Wh^T`.
fn packed_t(rows: usize, cols: usize) -> PackedB {
    let mut packed = PackedB::new(rows, cols).unwrap();
    packed.pack(&vec![0.1; rows * cols], rows, Transpose::Yes);
    packed
}

#[test]
fn window_kernels_refuse_weights_packed_the_other_way_or_never() {
    let (batch, hidden, time) = (2, 3, 4);
    let bias = vec![0.0; hidden];
    let mut states = sentinel((time + 1) * batch * hidden);
    refused(
        "rnn_forward_window: wh was packed transposed (Transpose::Yes), but the kernel takes it packed as stored (Transpose::No)",
        || rnn_forward_window(batch, hidden, time, &packed_t(3, 3), &bias, &mut states),
    );
    refused("rnn_forward_window: wh was never packed", || {
        rnn_forward_window(batch, hidden, time, &PackedB::new(3, 3).unwrap(), &bias, &mut states)
    });
    untouched("states", &states);
    let mut dhs = sentinel(time * batch * hidden);
    refused(
        "rnn_backward_window: wh_t was packed as stored (Transpose::No), but the kernel takes it packed transposed (Transpose::Yes)",
        || rnn_backward_window(batch, hidden, time, &packed(3, 3), &states, &mut dhs),
    );
    untouched("dhs", &dhs);
}

#[test]
fn rnn_forward_window_checks_packed_weights_bias_and_states() {
    let (batch, hidden, time) = (2, 3, 4);
    let bias = vec![0.0; hidden];
    let mut states = sentinel((time + 1) * batch * hidden);
    refused("rnn_forward_window: wh is packed 3 x 4, but hidden x hidden is 3 x 3", || {
        rnn_forward_window(batch, hidden, time, &packed(3, 4), &bias, &mut states)
    });
    refused("rnn_forward_window: bias has 2 elements, but hidden is 3", || {
        rnn_forward_window(batch, hidden, time, &packed(3, 3), &bias[..2], &mut states)
    });
    refused("rnn_forward_window: states has 30 elements, but (time + 1) x batch x hidden is 6 x 2 x 3 = 36", || {
        rnn_forward_window(batch, hidden, time + 1, &packed(3, 3), &bias, &mut states)
    });
    untouched("states", &states);
}

#[test]
fn rnn_backward_window_checks_packed_weights_states_and_gradients() {
    let (batch, hidden, time) = (2, 3, 4);
    let states = vec![0.5; (time + 1) * batch * hidden];
    let mut dhs = sentinel(time * batch * hidden);
    refused("rnn_backward_window: wh_t is packed 2 x 2, but hidden x hidden is 3 x 3", || {
        rnn_backward_window(batch, hidden, time, &packed_t(2, 2), &states, &mut dhs)
    });
    refused("rnn_backward_window: states has 29 elements, but (time + 1) x batch x hidden is 5 x 2 x 3 = 30", || {
        rnn_backward_window(batch, hidden, time, &packed_t(3, 3), &states[..29], &mut dhs)
    });
    refused("rnn_backward_window: dhs has 23 elements, but time x batch x hidden is 4 x 2 x 3 = 24", || {
        rnn_backward_window(batch, hidden, time, &packed_t(3, 3), &states, &mut dhs[..23])
    });
    untouched("dhs", &dhs);
}

#[test]
fn lstm_forward_window_checks_packed_weights_bias_gates_and_states() {
    let (batch, hidden, time) = (2, 3, 4);
    let (wh, bias) = (packed(3, 12), vec![0.0; 12]);
    let mut gates = sentinel(time * batch * 12);
    let mut hs = sentinel((time + 1) * batch * hidden);
    let mut cs = sentinel((time + 1) * batch * hidden);
    let kernel = "lstm_forward_window";
    refused(&format!("{kernel}: wh is packed 3 x 3, but hidden x 4 hidden is 3 x 12"), || {
        lstm_forward_window(batch, hidden, time, &packed(3, 3), &bias, &mut gates, &mut hs, &mut cs)
    });
    refused(&format!("{kernel}: bias has 11 elements, but 4 hidden is 4 x 3 = 12"), || {
        lstm_forward_window(batch, hidden, time, &wh, &bias[..11], &mut gates, &mut hs, &mut cs)
    });
    refused(&format!("{kernel}: gates has 95 elements, but time x batch x 4 hidden is 4 x 2 x 12 = 96"), || {
        lstm_forward_window(batch, hidden, time, &wh, &bias, &mut gates[..95], &mut hs, &mut cs)
    });
    refused(&format!("{kernel}: hs has 29 elements, but (time + 1) x batch x hidden is 5 x 2 x 3 = 30"), || {
        lstm_forward_window(batch, hidden, time, &wh, &bias, &mut gates, &mut hs[..29], &mut cs)
    });
    refused(&format!("{kernel}: cs has 24 elements, but (time + 1) x batch x hidden is 5 x 2 x 3 = 30"), || {
        lstm_forward_window(batch, hidden, time, &wh, &bias, &mut gates, &mut hs, &mut cs[..24])
    });
    for (name, values) in [("gates", &gates), ("hs", &hs), ("cs", &cs)] {
        untouched(name, values);
    }
}

#[test]
fn lstm_backward_window_checks_packed_weights_states_gates_and_gradients() {
    let (batch, hidden, time) = (2, 3, 4);
    let (wh_t, cs) = (packed_t(12, 3), vec![0.5; (time + 1) * batch * hidden]);
    let mut gates = sentinel(time * batch * 12);
    let mut dhs = sentinel(time * batch * hidden);
    let mut dc = sentinel(batch * hidden);
    let kernel = "lstm_backward_window";
    refused(&format!("{kernel}: wh_t is packed 3 x 12, but 4 hidden x hidden is 12 x 3"), || {
        lstm_backward_window(batch, hidden, time, &packed_t(3, 12), &cs, &mut gates, &mut dhs, &mut dc)
    });
    refused(&format!("{kernel}: cs has 31 elements, but (time + 1) x batch x hidden is 5 x 2 x 3 = 30"), || {
        lstm_backward_window(batch, hidden, time, &wh_t, &[0.5; 31], &mut gates, &mut dhs, &mut dc)
    });
    refused(&format!("{kernel}: gates has 90 elements, but time x batch x 4 hidden is 4 x 2 x 12 = 96"), || {
        lstm_backward_window(batch, hidden, time, &wh_t, &cs, &mut gates[..90], &mut dhs, &mut dc)
    });
    refused(&format!("{kernel}: dhs has 23 elements, but time x batch x hidden is 4 x 2 x 3 = 24"), || {
        lstm_backward_window(batch, hidden, time, &wh_t, &cs, &mut gates, &mut dhs[..23], &mut dc)
    });
    refused(&format!("{kernel}: dc has 5 elements, but batch x hidden is 2 x 3 = 6"), || {
        lstm_backward_window(batch, hidden, time, &wh_t, &cs, &mut gates, &mut dhs, &mut dc[..5])
    });
    for (name, values) in [("gates", &gates), ("dhs", &dhs), ("dc", &dc)] {
        untouched(name, values);
    }
}

#[test]
fn gru_forward_window_checks_packed_weights_bias_gates_states_and_rh() {
    let (batch, hidden, time) = (2, 3, 4);
    let (zr, candidate, bias) = (packed(3, 6), packed(3, 3), vec![0.0; 9]);
    let mut gates = sentinel(time * batch * 9);
    let mut hs = sentinel((time + 1) * batch * hidden);
    let mut rh = sentinel(time * batch * hidden);
    let kernel = "gru_forward_window";
    refused(&format!("{kernel}: wh_zr is packed 3 x 9, but hidden x 2 hidden is 3 x 6"), || {
        gru_forward_window(batch, hidden, time, (&packed(3, 9), &candidate), &bias, &mut gates, &mut hs, &mut rh)
    });
    refused(&format!("{kernel}: wh_candidate is packed 3 x 6, but hidden x hidden is 3 x 3"), || {
        gru_forward_window(batch, hidden, time, (&zr, &zr), &bias, &mut gates, &mut hs, &mut rh)
    });
    refused(&format!("{kernel}: bias has 12 elements, but 3 hidden is 3 x 3 = 9"), || {
        gru_forward_window(batch, hidden, time, (&zr, &candidate), &[0.0; 12], &mut gates, &mut hs, &mut rh)
    });
    refused(&format!("{kernel}: gates has 71 elements, but time x batch x 3 hidden is 4 x 2 x 9 = 72"), || {
        gru_forward_window(batch, hidden, time, (&zr, &candidate), &bias, &mut gates[..71], &mut hs, &mut rh)
    });
    refused(&format!("{kernel}: hs has 24 elements, but (time + 1) x batch x hidden is 5 x 2 x 3 = 30"), || {
        gru_forward_window(batch, hidden, time, (&zr, &candidate), &bias, &mut gates, &mut hs[..24], &mut rh)
    });
    refused(&format!("{kernel}: rh has 18 elements, but time x batch x hidden is 4 x 2 x 3 = 24"), || {
        gru_forward_window(batch, hidden, time, (&zr, &candidate), &bias, &mut gates, &mut hs, &mut rh[..18])
    });
    for (name, values) in [("gates", &gates), ("hs", &hs), ("rh", &rh)] {
        untouched(name, values);
    }
}

#[test]
fn gru_backward_window_checks_packed_weights_states_gates_and_gradients() {
    let (batch, hidden, time) = (2, 3, 4);
    let (zr_t, candidate_t, hs) = (packed_t(6, 3), packed_t(3, 3), vec![0.5; (time + 1) * batch * hidden]);
    let mut gates = sentinel(time * batch * 9);
    let mut dhs = sentinel(time * batch * hidden);
    let mut drh = sentinel(batch * hidden);
    let kernel = "gru_backward_window";
    refused(&format!("{kernel}: wh_zr_t is packed 3 x 6, but 2 hidden x hidden is 6 x 3"), || {
        gru_backward_window(batch, hidden, time, (&packed_t(3, 6), &candidate_t), &hs, &mut gates, &mut dhs, &mut drh)
    });
    refused(&format!("{kernel}: wh_candidate_t is packed 6 x 3, but hidden x hidden is 3 x 3"), || {
        gru_backward_window(batch, hidden, time, (&zr_t, &zr_t), &hs, &mut gates, &mut dhs, &mut drh)
    });
    refused(&format!("{kernel}: hs has 29 elements, but (time + 1) x batch x hidden is 5 x 2 x 3 = 30"), || {
        gru_backward_window(batch, hidden, time, (&zr_t, &candidate_t), &hs[..29], &mut gates, &mut dhs, &mut drh)
    });
    refused(&format!("{kernel}: gates has 70 elements, but time x batch x 3 hidden is 4 x 2 x 9 = 72"), || {
        gru_backward_window(batch, hidden, time, (&zr_t, &candidate_t), &hs, &mut gates[..70], &mut dhs, &mut drh)
    });
    refused(&format!("{kernel}: dhs has 23 elements, but time x batch x hidden is 4 x 2 x 3 = 24"), || {
        gru_backward_window(batch, hidden, time, (&zr_t, &candidate_t), &hs, &mut gates, &mut dhs[..23], &mut drh)
    });
    refused(&format!("{kernel}: drh has 7 elements, but batch x hidden is 2 x 3 = 6"), || {
        gru_backward_window(batch, hidden, time, (&zr_t, &candidate_t), &hs, &mut gates, &mut dhs, &mut [SENTINEL; 7])
    });
    for (name, values) in [("gates", &gates), ("dhs", &dhs), ("drh", &drh)] {
        untouched(name, values);
    }
}

#[test]
fn dropout_checks_its_ratio_and_buffers() {
    let key = MaskKey { seed: 1, window: 0, site: 0, first_row: 0 };
    let input = vec![1.0; 24];
    let (mut out, mut mults) = (sentinel(24), sentinel(24));
    refused("dropout_forward: p is 1, not in [0, 1)", || {
        dropout_forward(1.0, key, (2, 3, 4), &input, &mut out, &mut mults)
    });
    refused("dropout_forward: input has 23 elements, but time x batch x width is 3 x 2 x 4 = 24", || {
        dropout_forward(0.5, key, (2, 3, 4), &input[..23], &mut out, &mut mults)
    });
    refused("dropout_forward: multipliers has 20 elements, but time x batch x width is 3 x 2 x 4 = 24", || {
        dropout_forward(0.5, key, (2, 3, 4), &input, &mut out, &mut mults[..20])
    });
    untouched("out", &out);
    untouched("multipliers", &mults);
    let mut grads = sentinel(24);
    refused("dropout_backward: grads has 24 elements, but multipliers has 25", || {
        dropout_backward(&[1.0; 25], &mut grads)
    });
    untouched("grads", &grads);
}

type Gemm = fn(usize, usize, usize, f32, &[f32], usize, Transpose, &[f32], usize, Transpose, f32, &mut [f32], usize);

#[test]
fn gemm_and_gemm_parallel_check_operands_and_leading_dimensions() {
    let (no, yes) = (Transpose::No, Transpose::Yes);
    for (name, kernel) in [("gemm", gemm as Gemm), ("gemm_parallel", gemm_parallel)] {
        // C (2 x 3) = A (2 x 4) * B (4 x 3).
        let (a, b) = (vec![1.0; 8], vec![1.0; 12]);
        let mut c = sentinel(6);
        refused(&format!("{name}: A has 7 elements, but a 2 x 4 matrix with ld 4 needs 8"), || {
            kernel(2, 3, 4, 1.0, &a[..7], 4, no, &b, 3, no, 0.0, &mut c, 3)
        });
        refused(&format!("{name}: B has 11 elements, but a 3 x 4 matrix with ld 4 needs 12"), || {
            kernel(2, 3, 4, 1.0, &a, 4, no, &b[..11], 4, yes, 0.0, &mut c, 3)
        });
        refused(&format!("{name}: leading dimension of A (3) is below its 4 stored columns"), || {
            kernel(2, 3, 4, 1.0, &a, 3, no, &b, 3, no, 0.0, &mut c, 3)
        });
        refused(&format!("{name}: C has 6 elements, but 2 x 3 with ldc 4 needs 7"), || {
            kernel(2, 3, 4, 1.0, &a, 4, no, &b, 3, no, 0.0, &mut c, 4)
        });
        refused(&format!("{name}: ldc (2) is below n (3)"), || {
            kernel(2, 3, 4, 1.0, &a, 4, no, &b, 3, no, 0.0, &mut c, 2)
        });
        untouched("C", &c);
    }
}

#[test]
fn products_with_packed_operands_check_the_other_operands() {
    let (no, yes) = (Transpose::No, Transpose::Yes);
    let b = packed(4, 3);
    let mut c = sentinel(6);
    refused("gemm_packed: A has 7 elements, but a 4 x 2 matrix with ld 2 needs 8", || {
        gemm_packed(2, 1.0, &[1.0; 7], 2, yes, &b, 0.0, &mut c, 3)
    });
    refused("gemm_packed: C has 6 elements, but 2 x 3 with ldc 5 needs 8", || {
        gemm_packed(2, 1.0, &[1.0; 8], 4, no, &b, 0.0, &mut c, 5)
    });
    let mut a = PackedA::new(2, 4).unwrap();
    a.pack(&[1.0; 8], 4, no);
    refused("gemm_packed_a: B has 11 elements, but a 4 x 3 matrix with ld 3 needs 12", || {
        gemm_packed_a(3, 1.0, &a, &[1.0; 11], 3, no, 0.0, &mut c, 3)
    });
    refused("gemm_packed_a: C has 6 elements, but 2 x 4 with ldc 4 needs 8", || {
        gemm_packed_a(4, 1.0, &a, &[1.0; 16], 4, no, 0.0, &mut c, 4)
    });
    untouched("C", &c);
}

#[test]
fn packing_checks_the_source_and_keeps_the_old_contents() {
    let mut b = packed(4, 3);
    let before = format!("{b:?}");
    refused("PackedB::pack: B has 11 elements, but a 4 x 3 matrix with ld 3 needs 12", || {
        b.pack(&[2.0; 11], 3, Transpose::No)
    });
    assert_eq!(format!("{b:?}"), before, "the packed B was written before the check");
    let mut a = PackedA::new(2, 4).unwrap();
    a.pack(&[1.0; 8], 4, Transpose::No);
    let before = format!("{a:?}");
    refused("PackedA::pack: leading dimension of A (1) is below its 2 stored columns", || {
        a.pack(&[2.0; 8], 1, Transpose::Yes)
    });
    assert_eq!(format!("{a:?}"), before, "the packed A was written before the check");
}

#[test]
fn the_output_layer_checks_every_operand_of_every_pass() {
    let (rows, hidden, classes) = (3, 2, 5);
    let mut layer = OutputLayer::new(rows, hidden, classes).unwrap();
    let (hs, w, b) = (vec![0.5; rows * hidden], vec![0.1; hidden * classes], vec![0.0; classes]);
    let mut loss = sentinel(rows);
    let forward = "OutputLayer::forward";
    refused(&format!("{forward}: hs has 5 elements, but rows x hidden is 3 x 2 = 6"), || {
        layer.forward(&hs[..5], &w, &b, &[0, 1, 2], 1.0, &mut loss)
    });
    refused(&format!("{forward}: w has 9 elements, but hidden x classes is 2 x 5 = 10"), || {
        layer.forward(&hs, &w[..9], &b, &[0, 1, 2], 1.0, &mut loss)
    });
    refused(&format!("{forward}: bias has 4 elements, but classes is 5"), || {
        layer.forward(&hs, &w, &b[..4], &[0, 1, 2], 1.0, &mut loss)
    });
    refused(&format!("{forward}: targets has 4 elements, but rows is 3"), || {
        layer.forward(&hs, &w, &b, &[0, 1, 2, 3], 1.0, &mut loss)
    });
    refused(&format!("{forward}: row_loss has 2 elements, but rows is 3"), || {
        layer.forward(&hs, &w, &b, &[0, 1, 2], 1.0, &mut loss[..2])
    });
    refused(&format!("{forward}: targets[1] is 5, neither a class below classes = 5 nor IGNORE_TARGET (-1)"), || {
        layer.forward(&hs, &w, &b, &[0, 5, 2], 1.0, &mut loss)
    });
    untouched("row_loss", &loss);
    refused("OutputLayer::forward_logits: w has 11 elements, but hidden x classes is 2 x 5 = 10", || {
        layer.forward_logits(&hs, &[0.1; 11], &b)
    });

    let mut dhs = sentinel(rows * hidden);
    let (mut dw, mut db) = (sentinel(hidden * classes), sentinel(classes));
    refused("OutputLayer::backward: needs a forward with the loss first", || {
        layer.backward(&hs, OutputUpdate::Gradients { w: &w, dw: &mut dw, db: &mut db }, &mut dhs)
    });
    layer.forward(&hs, &w, &b, &[0, 1, 2], 1.0 / 3.0, &mut vec![0.0; rows]);
    let backward = "OutputLayer::backward";
    refused(&format!("{backward}: hs has 7 elements, but rows x hidden is 3 x 2 = 6"), || {
        layer.backward(&[0.5; 7], OutputUpdate::Gradients { w: &w, dw: &mut dw, db: &mut db }, &mut dhs)
    });
    refused(&format!("{backward}: dhs has 5 elements, but rows x hidden is 3 x 2 = 6"), || {
        layer.backward(&hs, OutputUpdate::Gradients { w: &w, dw: &mut dw, db: &mut db }, &mut dhs[..5])
    });
    refused(&format!("{backward}: w has 9 elements, but hidden x classes is 2 x 5 = 10"), || {
        layer.backward(&hs, OutputUpdate::Gradients { w: &w[..9], dw: &mut dw, db: &mut db }, &mut dhs)
    });
    refused(&format!("{backward}: dw has 9 elements, but hidden x classes is 2 x 5 = 10"), || {
        layer.backward(&hs, OutputUpdate::Gradients { w: &w, dw: &mut dw[..9], db: &mut db }, &mut dhs)
    });
    refused(&format!("{backward}: db has 4 elements, but classes is 5"), || {
        layer.backward(&hs, OutputUpdate::Gradients { w: &w, dw: &mut dw, db: &mut db[..4] }, &mut dhs)
    });
    let (mut w_sgd, mut b_sgd) = (sentinel(hidden * classes), sentinel(classes));
    refused(&format!("{backward}: w has 11 elements, but hidden x classes is 2 x 5 = 10"), || {
        let mut longer = sentinel(hidden * classes + 1);
        layer.backward(&hs, OutputUpdate::Sgd { w: &mut longer, b: &mut b_sgd, lr: 0.1 }, &mut dhs);
        untouched("w", &longer);
    });
    refused(&format!("{backward}: b has 6 elements, but classes is 5"), || {
        layer.backward(&hs, OutputUpdate::Sgd { w: &mut w_sgd, b: &mut [SENTINEL; 6], lr: 0.1 }, &mut dhs)
    });
    for (name, values) in [("dhs", &dhs), ("dw", &dw), ("db", &db), ("w", &w_sgd), ("b", &b_sgd)] {
        untouched(name, values);
    }
    // The refused calls left the layer as it was: the backward pass still works.
    layer.backward(&hs, OutputUpdate::Gradients { w: &w, dw: &mut dw, db: &mut db }, &mut dhs);
    assert!(dhs.iter().chain(&dw).chain(&db).all(|v| v.is_finite() && *v != SENTINEL));
}

#[test]
fn the_output_layer_checks_rows_read_back_and_its_sizes() {
    let (rows, hidden, classes) = (3, 2, 5);
    let mut layer = OutputLayer::new(rows, hidden, classes).unwrap();
    let mut out = sentinel(classes);
    refused("OutputLayer::logits_row: needs forward_logits first", || layer.logits_row(0, &mut out));
    layer.forward_logits(&[0.5; 6], &[0.1; 10], &[0.0; 5]);
    refused("OutputLayer::logits_row: row 3 is not below rows = 3", || layer.logits_row(3, &mut out));
    refused("OutputLayer::logits_row: out has 4 elements, but classes is 5", || layer.logits_row(0, &mut out[..4]));
    refused("OutputLayer::argmax_row: row 7 is not below rows = 3", || {
        layer.argmax_row(7);
    });
    untouched("out", &out);
    refused("OutputLayer::new: rows (0), hidden (2) and classes (5) must all be positive", || {
        OutputLayer::new(0, 2, 5);
    });
}

#[test]
fn the_batcher_checks_the_window_it_fills() {
    let window = Window { batch: 2, time: 3 };
    let mut batcher = Batcher::new(20, window).unwrap();
    let corpus: Vec<u32> = (0..20).collect();
    let (mut xs, mut ts) = (vec![99u32; 6], vec![99i32; 5]);
    refused("Batcher::next_window: xs has 6 elements and ts 5, but batch x time is 2 x 3 = 6", || {
        batcher.next_window(rnnlm::files::corpus::Ids::U32(&corpus), &mut xs, &mut ts)
    });
    assert!(xs.iter().all(|&x| x == 99) && ts.iter().all(|&t| t == 99), "the window was written before the check");
    assert_eq!(batcher.time_idx(), 0);
}
