//! Loads a checkpoint and runs it one token at a time with the state carried from token to
//! token, as a speech or text pipeline would, printing the latency per token. Without an
//! argument it first trains a small model for a moment and saves it, so that it runs anywhere.
//!
//! `cargo run --release --example inference [CHECKPOINT]`

use rnnlm::files::checkpoint;
use rnnlm::{Arch, Dims, Rnnlm, Window};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let given = std::env::args_os().nth(1);
    let path = match &given {
        Some(path) => std::path::PathBuf::from(path),
        None => train_a_small_model()?,
    };
    let loaded = checkpoint::load(&path)?;
    if given.is_none() {
        std::fs::remove_file(&path)?;
    }
    let dims = loaded.arch.dims;
    println!(
        "{}: {} x {}, V = {}, D = {}, H = {} (kernels: {})",
        path.display(),
        loaded.arch.layers,
        loaded.arch.cell.name(),
        dims.vocab,
        dims.embed,
        dims.hidden,
        rnnlm::kernels::simd_level()
    );

    // A model of one row and one step: each call consumes one token and carries the state on.
    let mut model = loaded.model(Window { batch: 1, time: 1 })?;
    let mut logits = vec![0.0f32; dims.vocab];
    let mut token = 0u32;
    let mut latencies = Vec::new();
    let mut text = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        model.logits(&[token], &mut logits)?;
        latencies.push(start.elapsed().as_secs_f64() * 1e6);
        // Greedy: the most likely next token becomes the next input.
        token = (0..dims.vocab).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap_or(0) as u32;
        text.push(token);
    }
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    println!("200 tokens, one at a time: median {median:.1} us per token, 99th percentile {p99:.1} us");
    match &loaded.meta.vocab {
        Some(vocab) => {
            let words: Vec<&str> = text.iter().take(20).map(|&id| vocab.token(id).unwrap_or("?")).collect();
            println!("greedy continuation: {}", words.join(" "));
        }
        None => println!("greedy continuation (ids): {:?}", &text[..20]),
    }
    Ok(())
}

/// Trains a model of 100 classes on a repeating sequence for a few hundred steps and saves it in
/// the temporary directory (removed once loaded).
fn train_a_small_model() -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let dims = Dims { vocab: 100, embed: 32, hidden: 64 };
    let window = Window { batch: 8, time: 10 };
    let mut model = Rnnlm::new(Arch::from(dims), window, 1)?;
    let stream: Vec<u32> = (0..10_000u32).map(|i| (i * 7 + i / 13) % 100).collect();
    for step in 0..300 {
        let start = step * window.tokens() % (stream.len() - window.tokens() - 1);
        let xs = &stream[start..start + window.tokens()];
        let ts: Vec<i32> = stream[start + 1..start + 1 + window.tokens()].iter().map(|&t| t as i32).collect();
        model.train_step(xs, &ts, 0.5, Some(5.0))?;
    }
    let path = std::env::temp_dir().join(format!("rnnlm-inference-example-{}.safetensors", std::process::id()));
    checkpoint::save(&path, Arch::from(dims), model.params(), &checkpoint::Meta::default())?;
    println!("trained a small model for the example: {}", path.display());
    Ok(path)
}
