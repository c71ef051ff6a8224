//! One window of the tanh recurrence, forward and backward, with the public kernels on the
//! caller's own buffers, checked against a plain loop in f64.
//!
//! `cargo run --release --example kernels`

use rnnlm::kernels::{gemm, rnn_backward_window, rnn_forward_window, PackedB, Transpose};

fn main() {
    let (batch, hidden, time, input) = (4, 24, 6, 10);
    let values = |len: usize, seed: usize| -> Vec<f32> {
        (0..len).map(|i| (((i + seed) * 7919 % 2001) as f32 / 1000.0 - 1.0) * 0.3).collect()
    };
    let xs = values(time * batch * input, 1); // x_t for every step, batch-major per step
    let wx = values(input * hidden, 2);
    let wh = values(hidden * hidden, 3);
    let bias = values(hidden, 4);

    // `states` holds h_0 (zero) and then, per step, x_t * Wx: the window kernel turns each into
    // h_t in place. One GEMM does every step's input projection.
    let block = batch * hidden;
    let mut states = vec![0.0f32; (time + 1) * block];
    gemm(
        time * batch,
        hidden,
        input,
        1.0,
        &xs,
        input,
        Transpose::No,
        &wx,
        hidden,
        Transpose::No,
        0.0,
        &mut states[block..],
        hidden,
    );
    let mut wh_packed = PackedB::new(hidden, hidden).expect("memory for the packed Wh");
    wh_packed.pack(&wh, hidden, Transpose::No);
    rnn_forward_window(batch, hidden, time, &wh_packed, &bias, &mut states);

    // Backward: the gradient of the loss `sum of h_t` with respect to every h_t is 1; the kernel
    // turns it into the gradient at every pre-activation, through the recurrence. Then dWh is
    // one GEMM over the window: h_{t-1}^T * dt, summed over t.
    let mut dts = vec![1.0f32; time * block];
    let mut wh_t = PackedB::new(hidden, hidden).expect("memory for the packed Wh^T");
    wh_t.pack(&wh, hidden, Transpose::Yes);
    rnn_backward_window(batch, hidden, time, &wh_t, &states, &mut dts);
    let mut d_wh = vec![0.0f32; hidden * hidden];
    gemm(
        hidden,
        hidden,
        time * batch,
        1.0,
        &states[..time * block],
        hidden,
        Transpose::Yes,
        &dts,
        hidden,
        Transpose::No,
        0.0,
        &mut d_wh,
        hidden,
    );

    // The same in f64, step by step.
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let (xs64, wx64, wh64, b64) = (f(&xs), f(&wx), f(&wh), f(&bias));
    let mut h = vec![vec![0.0f64; block]];
    for t in 0..time {
        let mut next = vec![0.0; block];
        for r in 0..batch {
            for j in 0..hidden {
                let mut pre = b64[j];
                pre += (0..input).map(|k| xs64[(t * batch + r) * input + k] * wx64[k * hidden + j]).sum::<f64>();
                pre += (0..hidden).map(|k| h[t][r * hidden + k] * wh64[k * hidden + j]).sum::<f64>();
                next[r * hidden + j] = pre.tanh();
            }
        }
        h.push(next);
    }
    let mut dt = vec![vec![0.0f64; block]; time];
    let mut from_later = vec![0.0f64; block];
    for t in (0..time).rev() {
        for i in 0..block {
            dt[t][i] = (1.0 + from_later[i]) * (1.0 - h[t + 1][i] * h[t + 1][i]);
        }
        from_later = vec![0.0; block];
        for r in 0..batch {
            for k in 0..hidden {
                from_later[r * hidden + k] = (0..hidden).map(|j| dt[t][r * hidden + j] * wh64[k * hidden + j]).sum();
            }
        }
    }
    let mut d_wh64 = vec![0.0f64; hidden * hidden];
    for t in 0..time {
        for r in 0..batch {
            for k in 0..hidden {
                for j in 0..hidden {
                    d_wh64[k * hidden + j] += h[t][r * hidden + k] * dt[t][r * hidden + j];
                }
            }
        }
    }

    let worst =
        |got: &[f32], want: &[f64]| got.iter().zip(want).fold(0.0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()));
    let state_error = worst(&states[time * block..], &h[time]);
    let gradient_error = worst(&d_wh, &d_wh64);
    println!("window of {time} steps, batch {batch}, hidden {hidden} (kernels: {})", rnnlm::kernels::simd_level());
    println!("h_T: largest error against f64 {state_error:.1e}");
    println!("dWh: largest error against f64 {gradient_error:.1e}");
    assert!(state_error < 1e-5 && gradient_error < 1e-4, "the kernels and the f64 loops disagree");
}
