//! The fused output layer (affine, softmax cross-entropy, backward) on the caller's own hidden
//! states, checked against the loss and gradient computed plainly in f64.
//!
//! `cargo run --release --example output_layer`

use rnnlm::kernels::{OutputLayer, OutputUpdate, IGNORE_TARGET};

fn main() {
    let (rows, hidden, classes) = (48, 32, 1000);
    let values = |len: usize, seed: usize, scale: f32| -> Vec<f32> {
        (0..len).map(|i| (((i + seed) * 7919 % 2001) as f32 / 1000.0 - 1.0) * scale).collect()
    };
    let hs = values(rows * hidden, 1, 1.0);
    let w = values(hidden * classes, 2, 0.2);
    let bias = values(classes, 3, 0.1);
    // Every seventh row has no target: it adds nothing to the loss or the gradients.
    let targets: Vec<i32> =
        (0..rows).map(|r| if r % 7 == 6 { IGNORE_TARGET } else { (r * 37 % classes) as i32 }).collect();
    let counted = targets.iter().filter(|&&t| t != IGNORE_TARGET).count();
    let inv_n = 1.0 / counted as f32;

    let mut layer = OutputLayer::new(rows, hidden, classes).expect("memory for the layer");
    let mut row_loss = vec![0.0f32; rows];
    layer.forward(&hs, &w, &bias, &targets, inv_n, &mut row_loss);
    let loss: f64 = row_loss.iter().map(|&l| l as f64).sum::<f64>() * inv_n as f64;
    let (mut dw, mut db, mut dhs) =
        (vec![0.0f32; hidden * classes], vec![0.0f32; classes], vec![0.0f32; rows * hidden]);
    layer.backward(&hs, OutputUpdate::Gradients { w: &w, dw: &mut dw, db: &mut db }, &mut dhs);

    // The same in f64: logits, log-sum-exp, dz = (softmax - onehot) / n, dhs = dz W^T, db.
    let mut want_loss = 0.0f64;
    let mut want_dhs = vec![0.0f64; rows * hidden];
    let mut want_db = vec![0.0f64; classes];
    for r in 0..rows {
        if targets[r] == IGNORE_TARGET {
            continue;
        }
        let z: Vec<f64> = (0..classes)
            .map(|j| {
                bias[j] as f64 + (0..hidden).map(|k| hs[r * hidden + k] as f64 * w[k * classes + j] as f64).sum::<f64>()
            })
            .collect();
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
        let target = targets[r] as usize;
        want_loss += (sum.ln() + max - z[target]) / counted as f64;
        for j in 0..classes {
            let dz = ((z[j] - max).exp() / sum - if j == target { 1.0 } else { 0.0 }) / counted as f64;
            want_db[j] += dz;
            for k in 0..hidden {
                want_dhs[r * hidden + k] += dz * w[k * classes + j] as f64;
            }
        }
    }
    let worst =
        |got: &[f32], want: &[f64]| got.iter().zip(want).fold(0.0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()));
    let loss_error = (loss - want_loss).abs() / want_loss;
    println!(
        "{rows} rows x {hidden} hidden x {classes} classes ({counted} with a target; kernels: {})",
        rnnlm::kernels::simd_level()
    );
    println!("loss {loss:.6} (f64 {want_loss:.6}, relative error {loss_error:.1e})");
    println!("dhs: largest error {:.1e}; db: largest error {:.1e}", worst(&dhs, &want_dhs), worst(&db, &want_db));
    assert!(loss_error < 1e-5 && worst(&dhs, &want_dhs) < 1e-5 && worst(&db, &want_db) < 1e-6);
}
