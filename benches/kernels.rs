//! Each kernel on the shapes of a c3 training step (full PTB, B = 20, T = 35, D = H = 100,
//! V = 10,000) unless noted. Throughput is in elements (values produced or updated), or
//! floating-point operations for GEMM.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rnnlm::kernels::{
    embedding_scatter_add, gemm, gemm_parallel, gru_backward_window, gru_forward_window, lstm_backward_window,
    lstm_forward_window, rnn_backward_window, rnn_forward_window, sgd_update, tanh_inplace, OutputLayer, OutputUpdate,
    PackedB, Transpose,
};

const V: usize = 10_000;
const H: usize = 100;
const B: usize = 20;
const ROWS: usize = 700;

fn values(len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919 % 2001) as f32 / 1000.0 - 1.0) * scale).collect()
}

fn tanh(c: &mut Criterion) {
    let mut group = c.benchmark_group("tanh");
    for len in [1000, 70_000] {
        // In place, so later iterations see tanh's own outputs: the cost does not depend on
        // the values, and no copy pollutes the measurement.
        let mut buffer = values(len, 4.0);
        group.throughput(Throughput::Elements(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(len), &len, |b, _| {
            b.iter(|| tanh_inplace(black_box(&mut buffer)))
        });
    }
    group.finish();
}

/// The whole recurrence of a window (T = 35) as the model runs it: packing `Wh` (or `Wh^T`)
/// included. Throughput in state elements.
fn rnn_windows(c: &mut Criterion) {
    const T: usize = 35;
    let mut group = c.benchmark_group("rnn_window");
    for hidden in [H, 650] {
        let wh = values(hidden * hidden, 0.05);
        let bias = values(hidden, 0.1);
        let inputs = values((T + 1) * B * hidden, 0.5);
        let mut states = inputs.clone();
        let mut packed = PackedB::new(hidden, hidden).unwrap();
        group.throughput(Throughput::Elements((T * B * hidden) as u64));
        group.bench_function(BenchmarkId::new("forward", hidden), |b| {
            b.iter(|| {
                states.copy_from_slice(&inputs);
                packed.pack(&wh, hidden, Transpose::No);
                rnn_forward_window(B, hidden, T, &packed, &bias, &mut states);
            })
        });
        let dh_in = values(T * B * hidden, 0.01);
        let mut dhs = dh_in.clone();
        group.bench_function(BenchmarkId::new("backward", hidden), |b| {
            b.iter(|| {
                dhs.copy_from_slice(&dh_in);
                packed.pack(&wh, hidden, Transpose::Yes);
                rnn_backward_window(B, hidden, T, &packed, &states, &mut dhs);
            })
        });
    }
    group.finish();
}

/// The gated cells' windows (T = 35) as the model runs them, packing `Wh` included: c5's
/// LSTM of 100 and c6's of 650, and a GRU of each size. Throughput in state elements.
fn gated_windows(c: &mut Criterion) {
    const T: usize = 35;
    let mut group = c.benchmark_group("gated_window");
    for hidden in [H, 650] {
        let block = B * hidden;
        group.throughput(Throughput::Elements((T * block) as u64));
        // LSTM: gates [f | g | i | o].
        let wh = values(hidden * 4 * hidden, 0.05);
        let bias = values(4 * hidden, 0.1);
        let projections = values(T * 4 * block, 0.5);
        let (mut gates, mut hs, mut cs) =
            (projections.clone(), values((T + 1) * block, 0.5), values((T + 1) * block, 0.5));
        let (mut packed, mut packed_t) =
            (PackedB::new(hidden, 4 * hidden).unwrap(), PackedB::new(4 * hidden, hidden).unwrap());
        group.bench_function(BenchmarkId::new("lstm_forward", hidden), |b| {
            b.iter(|| {
                gates.copy_from_slice(&projections);
                packed.pack(&wh, 4 * hidden, Transpose::No);
                lstm_forward_window(B, hidden, T, &packed, &bias, &mut gates, &mut hs, &mut cs);
            })
        });
        let activated = gates.clone();
        let (dh_in, mut dhs, mut dc) = (values(T * block, 0.01), vec![0.0; T * block], vec![0.0; block]);
        group.bench_function(BenchmarkId::new("lstm_backward", hidden), |b| {
            b.iter(|| {
                gates.copy_from_slice(&activated);
                dhs.copy_from_slice(&dh_in);
                packed_t.pack(&wh, 4 * hidden, Transpose::Yes);
                lstm_backward_window(B, hidden, T, &packed_t, &cs, &mut gates, &mut dhs, &mut dc);
            })
        });
        // GRU: gates [z | r | h~], Wh packed as its [z r] and h~ blocks.
        let wh = values(hidden * 3 * hidden, 0.05);
        let bias = values(3 * hidden, 0.1);
        let projections = values(T * 3 * block, 0.5);
        let (mut gates, mut rh) = (projections.clone(), vec![0.0; T * block]);
        let mut zr = PackedB::new(hidden, 2 * hidden).unwrap();
        let mut candidate = PackedB::new(hidden, hidden).unwrap();
        group.bench_function(BenchmarkId::new("gru_forward", hidden), |b| {
            b.iter(|| {
                gates.copy_from_slice(&projections);
                zr.pack(&wh, 3 * hidden, Transpose::No);
                candidate.pack(&wh[2 * hidden..], 3 * hidden, Transpose::No);
                gru_forward_window(B, hidden, T, (&zr, &candidate), &bias, &mut gates, &mut hs, &mut rh);
            })
        });
        let activated = gates.clone();
        let mut zr_t = PackedB::new(2 * hidden, hidden).unwrap();
        let mut candidate_t = PackedB::new(hidden, hidden).unwrap();
        group.bench_function(BenchmarkId::new("gru_backward", hidden), |b| {
            b.iter(|| {
                gates.copy_from_slice(&activated);
                dhs.copy_from_slice(&dh_in);
                zr_t.pack(&wh, 3 * hidden, Transpose::Yes);
                candidate_t.pack(&wh[2 * hidden..], 3 * hidden, Transpose::Yes);
                gru_backward_window(B, hidden, T, (&zr_t, &candidate_t), &hs, &mut gates, &mut dhs, &mut dc);
            })
        });
    }
    group.finish();
}

/// `A` and `B` for `op(A) * op(B)` of `m x n x k` with their leading dimensions, and a zero C.
fn gemm_operands(
    (m, n, k): (usize, usize, usize),
    ta: Transpose,
    tb: Transpose,
) -> (Vec<f32>, usize, Vec<f32>, usize, Vec<f32>) {
    let lda = if ta == Transpose::No { k } else { m };
    let ldb = if tb == Transpose::No { n } else { k };
    (values(m * k, 0.1), lda, values(k * n, 0.1), ldb, vec![0.0; m * n])
}

fn gemms(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group.sample_size(20);
    let (no, yes) = (Transpose::No, Transpose::Yes);
    // The output layer's three GEMMs of a c3 step: logits, dW, dhs.
    let shapes = [("logits_NN", ROWS, V, H, no, no), ("dW_TN", H, V, ROWS, yes, no), ("dhs_NT", ROWS, H, V, no, yes)];
    for (name, m, n, k, ta, tb) in shapes {
        let (a, lda, b_matrix, ldb, mut c_matrix) = gemm_operands((m, n, k), ta, tb);
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        group.bench_function(name, |b| {
            b.iter(|| gemm_parallel(m, n, k, 1.0, &a, lda, ta, &b_matrix, ldb, tb, 0.0, &mut c_matrix, n))
        });
    }
    group.finish();
}

/// Our serial GEMM beside `matrixmultiply`'s (also serial) on the output layer's panel products
/// of c3 and c4 (256 classes) and c6's recurrent product (an LSTM at H = 650: 4H columns).
fn gemm_vs_matrixmultiply(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_vs_matrixmultiply");
    group.sample_size(20);
    let (no, yes) = (Transpose::No, Transpose::Yes);
    let shapes = [
        ("c3_logits_700x256x100", 700, 256, 100, no, no),
        ("c3_dW_100x256x700", 100, 256, 700, yes, no),
        ("c4_logits_700x256x650", 700, 256, 650, no, no),
        ("c4_dW_650x256x700", 650, 256, 700, yes, no),
        ("c6_hWh_20x2600x650", 20, 2600, 650, no, no),
    ];
    for (name, m, n, k, ta, tb) in shapes {
        let (a, lda, b_matrix, ldb, mut c_matrix) = gemm_operands((m, n, k), ta, tb);
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        group.bench_function(BenchmarkId::new("rnnlm", name), |b| {
            b.iter(|| gemm(m, n, k, 1.0, &a, lda, ta, &b_matrix, ldb, tb, 0.0, &mut c_matrix, n))
        });
        let strides = |ld: usize, t: Transpose| if t == no { (ld as isize, 1) } else { (1, ld as isize) };
        let ((rsa, csa), (rsb, csb)) = (strides(lda, ta), strides(ldb, tb));
        group.bench_function(BenchmarkId::new("matrixmultiply", name), |b| {
            // SAFETY: the slices hold every element the strides reach; C aliases neither.
            b.iter(|| unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    rsa,
                    csa,
                    b_matrix.as_ptr(),
                    rsb,
                    csb,
                    0.0,
                    c_matrix.as_mut_ptr(),
                    n as isize,
                    1,
                )
            })
        });
    }
    group.finish();
}

/// The fused output layer of a c3 step (and of c2, 50 rows): what the three GEMMs above and
/// the softmax do separately, in L2-sized panels. Throughput in floating-point operations
/// (`2 * rows * H * V` forward, twice that backward).
fn output_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("output_layer");
    group.sample_size(20);
    for rows in [ROWS, 50] {
        let hs = values(rows * H, 0.5);
        let mut w = values(H * V, 0.1);
        let mut bias = values(V, 0.1);
        let targets: Vec<i32> = (0..rows).map(|r| (r * 37 % V) as i32).collect();
        let mut loss = vec![0.0; rows];
        let mut dhs = vec![0.0; rows * H];
        let mut layer = OutputLayer::new(rows, H, V).expect("memory for the output layer");
        let flops = 2 * (rows * H * V) as u64;
        group.throughput(Throughput::Elements(flops));
        group.bench_function(BenchmarkId::new("forward", rows), |b| {
            b.iter(|| layer.forward(&hs, &w, &bias, &targets, 1.0 / rows as f32, &mut loss))
        });
        group.throughput(Throughput::Elements(3 * flops));
        // A tiny learning rate keeps the weights (and so the cost) the same over iterations.
        group.bench_function(BenchmarkId::new("forward_backward_sgd", rows), |b| {
            b.iter(|| {
                layer.forward(&hs, &w, &bias, &targets, 1.0 / rows as f32, &mut loss);
                layer.backward(&hs, OutputUpdate::Sgd { w: &mut w, b: &mut bias, lr: 1e-9 }, &mut dhs);
            })
        });
    }
    group.finish();
}

fn embedding_and_update(c: &mut Criterion) {
    let mut group = c.benchmark_group("update");
    let rows = values(ROWS * H, 0.01);
    let ids: Vec<u32> = (0..ROWS).map(|r| (r * 131 % V) as u32).collect();
    let mut table = vec![0.0; V * H];
    group.throughput(Throughput::Elements((ROWS * H) as u64));
    group.bench_function("embedding_scatter_add", |b| b.iter(|| embedding_scatter_add(V, H, &rows, &ids, &mut table)));
    let grads = values(H * V, 0.01);
    let mut params = values(H * V, 0.1);
    group.throughput(Throughput::Elements((H * V) as u64));
    group.bench_function("sgd_update_1M", |b| b.iter(|| sgd_update(&mut params, &grads, 1e-6)));
    group.finish();
}

criterion_group!(
    benches,
    tanh,
    rnn_windows,
    gated_windows,
    gemms,
    gemm_vs_matrixmultiply,
    output_layer,
    embedding_and_update
);
criterion_main!(benches);
