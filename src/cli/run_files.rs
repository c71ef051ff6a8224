//! What a training run shows and writes: the epoch lines and the progress bar, and at every
//! save point the checkpoint, the chart, the log and the resumable state, each atomically
//! (temporary file, then rename), the state last. Killed at any moment, a run leaves the
//! files of its last save point whole.

use anyhow::{anyhow, Context};
use indicatif::ProgressBar;
use rnnlm::files::checkpoint::{self, Meta};
use rnnlm::files::{atomic_file, plot};
use rnnlm::train::{EpochReport, Event, IterReport, Observer, RunState};
use rnnlm::Arch;
use serde_json::{json, Value};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Where a run writes, and what it has written.
pub struct RunFiles {
    pub progress: Option<ProgressBar>,
    /// The checkpoint (its state file beside it), unless `--no-save`.
    pub checkpoint: Option<PathBuf>,
    pub chart: Option<PathBuf>,
    pub log: Option<PathBuf>,
    /// The log's lines so far (the whole log is rewritten at each save point).
    pub log_lines: Vec<String>,
    pub arch: Arch,
    /// The checkpoint's metadata; `epoch` counts from `start_epoch`.
    pub meta: Meta,
    pub start_epoch: usize,
    /// The run's settings, kept in the state file.
    pub config: Value,
    /// Set by SIGINT or SIGTERM.
    pub stop: Arc<AtomicBool>,
    /// Why the last save point could not be written, if it could not.
    pub save_error: Option<anyhow::Error>,
}

impl RunFiles {
    fn say(&self, line: &str) {
        match &self.progress {
            Some(bar) => bar.println(line),
            None => out!("{line}"),
        }
    }

    fn log(&mut self, line: Value) {
        if self.log.is_some() {
            self.log_lines.push(line.to_string());
        }
    }

    fn save(&self, state: &RunState) -> anyhow::Result<()> {
        let epochs = &state.now.progress.epochs;
        if let Some(path) = &self.checkpoint {
            let meta = Meta { epoch: self.start_epoch + epochs.len(), ..self.meta.clone() };
            checkpoint::save(path, self.arch, state.checkpoint_params(), &meta)?;
        }
        if let (Some(path), false) = (&self.chart, epochs.is_empty()) {
            let train: Vec<f64> = epochs.iter().map(|e| e.train_ppl).collect();
            let valid: Vec<Option<f64>> = epochs.iter().map(|e| e.valid_ppl).collect();
            let rates: Vec<f32> = epochs.iter().map(|e| e.trained_lr).collect();
            plot::perplexity_chart(path, &train, &valid, &rates)
                .map_err(|e| anyhow!("chart {}: {e}", path.display()))?;
        }
        if let Some(path) = &self.log {
            let mut text = self.log_lines.join("\n");
            text.push('\n');
            atomic_file::write(path, text.as_bytes())
                .with_context(|| format!("cannot write the log {}", path.display()))?;
        }
        if let Some(path) = &self.checkpoint {
            let state_path = super::run_config::state_path(path);
            write_state(&state_path, state, &json!({"config": self.config, "log_lines": self.log_lines.len()}))
                .with_context(|| format!("cannot write the run's state {}", state_path.display()))?;
        }
        Ok(())
    }
}

fn write_state(path: &Path, state: &RunState, extra: &Value) -> std::io::Result<()> {
    let temp = atomic_file::temporary_beside(path, ".partial")?;
    let mut out = BufWriter::new(temp.as_file());
    state.write(&mut out, extra)?;
    out.flush()?;
    drop(out);
    atomic_file::commit(temp, path)
}

/// An f32 as the f64 with the same shortest decimal form (0.1, not 0.10000000149011612).
fn shortest(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(value as f64)
}

impl Observer for RunFiles {
    fn on_iter(&mut self, r: &IterReport) {
        if let Some(bar) = &self.progress {
            bar.inc(1);
            if r.iter.is_multiple_of(20) {
                bar.set_message(format!("epoch {} loss {:.3}", r.epoch, r.loss));
            }
        }
        self.log(json!({"iter": r.iter, "epoch": r.epoch, "loss": shortest(r.loss), "lr": shortest(r.lr)}));
    }

    fn on_epoch(&mut self, r: &EpochReport) {
        let valid = r.valid_ppl.map_or_else(|| "-".to_owned(), |p| format!("{p:.2}"));
        self.say(&format!(
            "epoch {:>4} | train ppl {:>9.2} | valid ppl {:>9} | {:>9.0} tok/s | {:>8.1} s",
            r.epoch, r.train_ppl, valid, r.tokens_per_sec, r.elapsed_sec
        ));
        self.log(json!({
            "epoch": r.epoch, "train_ppl": r.train_ppl, "valid_ppl": r.valid_ppl,
            "tokens_per_sec": r.tokens_per_sec, "elapsed_sec": r.elapsed_sec, "next_lr": shortest(r.lr),
        }));
    }

    fn on_event(&mut self, event: &Event) {
        let (line, json) = match *event {
            Event::RateChanged { epoch, iter, from, to } => (
                format!("learning rate {from} -> {to} after epoch {epoch}"),
                json!({"event": "lr", "epoch": epoch, "iter": iter, "from": shortest(from), "to": shortest(to)}),
            ),
            Event::BackToBest { epoch, iter, valid_ppl, best_epoch, best_valid_ppl } => (
                format!(
                    "epoch {epoch} made validation worse ({valid_ppl:.2}): back to the weights of epoch {best_epoch} ({best_valid_ppl:.2})"
                ),
                json!({"event": "back_to_best", "epoch": epoch, "iter": iter, "valid_ppl": valid_ppl,
                       "best_epoch": best_epoch, "best_valid_ppl": best_valid_ppl}),
            ),
            Event::Recovered { epoch, window, iter, loss, back_to_iter, lr } => (
                format!(
                    "divergence in epoch {epoch}, window {window} (loss {loss}): back to the state after window {back_to_iter}, learning rate {lr}"
                ),
                json!({"event": "recovered", "epoch": epoch, "window": window, "iter": iter,
                       "loss": if loss.is_finite() { json!(shortest(loss)) } else { json!(loss.to_string()) },
                       "back_to_iter": back_to_iter, "lr": shortest(lr)}),
            ),
        };
        match &self.progress {
            Some(bar) => bar.println(&line),
            None => note!("{line}"),
        }
        self.log(json);
    }

    fn on_save_point(&mut self, state: &RunState) {
        match self.save(state) {
            Ok(()) => self.save_error = None,
            Err(e) => {
                eprintln!("warning: {e:#}; the files of the last save point are intact");
                self.save_error = Some(e);
            }
        }
    }

    fn stop_requested(&mut self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The first `keep` lines of the log a resumed run continues (those its state file counts).
pub fn resumed_log(path: &Path, keep: usize) -> anyhow::Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read the log {}", path.display())),
    };
    let lines: Vec<String> = text.lines().take(keep).map(str::to_owned).collect();
    if lines.len() < keep {
        eprintln!(
            "the log {} has {} of the {keep} lines the run wrote; it goes on from there",
            path.display(),
            lines.len()
        );
    }
    Ok(lines)
}
