//! A whole training step for the four configurations of the performance issue, and the
//! reference implementation beside the optimized one for the chapter's configuration (c1).
//!
//! Token ids are random (uniform over V, fixed seed), so the benchmark needs no data files;
//! `rnnlm bench --config cN` measures the same steps on the real PTB.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rnnlm::reference::ReferenceRnnlm;
use rnnlm::rng::Rng;
use rnnlm::{Dims, Rnnlm, Window};

fn window_of(window: Window, vocab: usize, seed: u64) -> (Vec<u32>, Vec<i32>) {
    let mut rng = Rng::new(seed);
    let xs = (0..window.tokens()).map(|_| (rng.next_u64() % vocab as u64) as u32).collect();
    let ts = (0..window.tokens()).map(|_| (rng.next_u64() % vocab as u64) as i32).collect();
    (xs, ts)
}

fn steps(c: &mut Criterion) {
    let configs = [
        ("c1", 418, 100, Window { batch: 10, time: 5 }),
        ("c2", 10_000, 100, Window { batch: 10, time: 5 }),
        ("c3", 10_000, 100, Window { batch: 20, time: 35 }),
        ("c4", 10_000, 650, Window { batch: 20, time: 35 }),
    ];
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    for (name, vocab, size, window) in configs {
        let dims = Dims { vocab, embed: size, hidden: size };
        let mut model = Rnnlm::new(dims, window, 1).unwrap();
        let (xs, ts) = window_of(window, vocab, 2);
        group.throughput(Throughput::Elements(window.tokens() as u64));
        group.bench_function(BenchmarkId::new("optimized", name), |b| {
            b.iter(|| model.train_step(&xs, &ts, 0.01, None).unwrap())
        });
        if name == "c1" {
            let mut reference = ReferenceRnnlm::<f32>::from_params(dims, window, model.params());
            group.bench_function(BenchmarkId::new("reference", name), |b| {
                b.iter(|| reference.train_step(&xs, &ts, 0.01, None))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, steps);
criterion_main!(benches);
