//! The GEMM ceiling: exactly the GEMMs of one training step, as the model's parts report them
//! ([`WindowCost`]), with the same shapes and the same GEMM code, and nothing else: the speed a
//! step would have if everything that is not a GEMM were free.

use crate::kernels::{gemm_parallel, GemmShape, Transpose};
use crate::model::WindowCost;
use std::time::Instant;

/// Operands for the GEMMs of one training step, filled with small values.
pub struct GemmCeiling {
    gemms: Vec<GemmShape>,
    /// Floating-point operations of one step's GEMMs.
    flops: f64,
    /// Room for the largest `A`, `B` and `C` of any of them.
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

fn fill(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919) % 201) as f32 * 1e-3 - 0.1).collect()
}

impl GemmCeiling {
    /// The GEMMs of one training step as `cost` lists them, with operands of their sizes
    /// (allocated here, once).
    pub fn new(cost: &WindowCost) -> GemmCeiling {
        let gemms: Vec<GemmShape> = cost.gemms().map(|(_, gemm)| gemm).collect();
        let largest = |size: fn(&GemmShape) -> usize| gemms.iter().map(size).max().unwrap_or(0);
        GemmCeiling {
            flops: cost.flops(),
            a: fill(largest(|g| g.m * g.k)),
            b: fill(largest(|g| g.k * g.n)),
            c: fill(largest(|g| g.m * g.n)),
            gemms,
        }
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
        for gemm in &self.gemms {
            let GemmShape { m, n, k, trans_a, trans_b, times } = *gemm;
            let lda = if trans_a == Transpose::No { k } else { m };
            let ldb = if trans_b == Transpose::No { n } else { k };
            for _ in 0..times {
                gemm_parallel(m, n, k, 1.0, &self.a, lda, trans_a, &self.b, ldb, trans_b, 0.0, &mut self.c, n);
            }
        }
    }
}
