//! Everything a training run needs to continue exactly where it stood, and its file format.
//!
//! A run's state is its position ([`Progress`]: windows trained, the batcher's time index, the
//! rate, the schedule's memory, the epochs so far) and the model as it stands
//! ([`ModelSnapshot`]: parameters, the hidden state carried between windows, and the dropout
//! generator's counter). With `--keep-best` it also holds the best epoch's model, and when it
//! was saved between two save points (an interrupt), the last good point that a divergence
//! would roll back to. Restoring all of it reproduces the uninterrupted run bit for bit.
//!
//! The state file is `rnnlm-run-state\n`, a little-endian `u64` header length, a JSON header
//! (the progress, the caller's own JSON, and the name and length of every f32 block), the
//! blocks as little-endian f32, and the SHA-256 of everything before it: a truncated or
//! damaged file is refused, never half read.

use super::schedule::ScheduleState;
use super::EpochReport;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{self, Write};

/// The first bytes of a state file.
pub const MAGIC: &[u8; 16] = b"rnnlm-run-state\n";

/// Where a run stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Windows trained so far, in all epochs.
    pub iter: usize,
    /// Epochs finished.
    pub epoch: usize,
    /// Windows trained in the unfinished epoch, and the sum of their losses.
    pub epoch_iters: usize,
    /// The sum of those windows' losses.
    pub epoch_loss_sum: f64,
    /// The training batcher's global time index.
    pub time_idx: usize,
    /// The rate of the next window.
    pub lr: f32,
    /// The schedule's memory (best entropy, halving).
    pub schedule: ScheduleState,
    /// Divergences recovered from so far.
    pub recoveries: usize,
    /// Wall time of training and evaluation so far, over all sessions of the run.
    pub elapsed_sec: f64,
    /// The finished epochs.
    pub epochs: Vec<EpochReport>,
    /// Whether the run has ended (its epochs done, its schedule or its time budget spent).
    pub finished: bool,
}

impl Progress {
    /// A run that has not started, at rate `lr`.
    pub fn start(lr: f32) -> Progress {
        Progress {
            iter: 0,
            epoch: 0,
            epoch_iters: 0,
            epoch_loss_sum: 0.0,
            time_idx: 0,
            lr,
            schedule: ScheduleState::default(),
            recoveries: 0,
            elapsed_sec: 0.0,
            epochs: Vec::new(),
            finished: false,
        }
    }
}

/// The model's side of a run: what training changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelSnapshot {
    /// Every parameter, in the model's layout.
    pub params: Vec<f32>,
    /// The hidden state(s) carried into the next window.
    pub state: Vec<f32>,
    /// The dropout generator's position: training windows so far.
    pub training_windows: u64,
}

/// A run at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPoint {
    /// Where the run is.
    pub progress: Progress,
    /// The model at that point.
    pub model: ModelSnapshot,
}

/// The best epoch so far (kept with `--keep-best`).
#[derive(Clone, Debug, PartialEq)]
pub struct BestModel {
    /// The epoch.
    pub epoch: usize,
    /// Its validation perplexity.
    pub valid_ppl: f64,
    /// The model at that point.
    pub model: ModelSnapshot,
}

/// Everything to continue a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    /// The run as it is.
    pub now: RunPoint,
    /// The best epoch so far, when keep-best is on.
    pub best: Option<BestModel>,
    /// Where a divergence rolls back to, when that is not `now` itself (a state saved between
    /// two save points).
    pub last_good: Option<RunPoint>,
}

impl RunState {
    /// The parameters a checkpoint of this run holds: the best epoch's when one is kept,
    /// otherwise the latest.
    pub fn checkpoint_params(&self) -> &[f32] {
        match &self.best {
            Some(best) => &best.model.params,
            None => &self.now.model.params,
        }
    }

    /// The f32 blocks of the file, in order.
    fn blocks(&self) -> Vec<(&'static str, &[f32])> {
        let mut blocks = vec![("now.params", &self.now.model.params[..]), ("now.state", &self.now.model.state[..])];
        if let Some(best) = &self.best {
            blocks.push(("best.params", &best.model.params));
            blocks.push(("best.state", &best.model.state));
        }
        if let Some(good) = &self.last_good {
            blocks.push(("last_good.params", &good.model.params));
            blocks.push(("last_good.state", &good.model.state));
        }
        blocks
    }

    /// Writes the state file to `out`, with `extra` (the caller's own JSON: the run's
    /// settings, say) in its header.
    pub fn write(&self, out: &mut impl Write, extra: &Value) -> io::Result<()> {
        let blocks = self.blocks();
        let header = json!({
            "format": 1,
            "now": point_json(&self.now),
            "best": self.best.as_ref().map(|b| json!({
                "epoch": b.epoch, "valid_ppl": b.valid_ppl, "training_windows": b.model.training_windows,
            })),
            "last_good": self.last_good.as_ref().map(point_json),
            "blocks": blocks.iter().map(|(name, data)| json!([name, data.len()])).collect::<Vec<_>>(),
            "extra": extra,
        });
        let header = serde_json::to_vec(&header)?;
        let mut hashed = HashingWriter { out, hash: Sha256::new() };
        hashed.write_all(MAGIC)?;
        hashed.write_all(&(header.len() as u64).to_le_bytes())?;
        hashed.write_all(&header)?;
        for (_, data) in &blocks {
            // Little-endian in memory, as checkpoints assume too.
            hashed.write_all(bytemuck::cast_slice(data))?;
        }
        let digest = hashed.hash.finalize();
        hashed.out.write_all(&digest)
    }

    /// Reads a state file's bytes: the state and the caller's JSON. Errors say what is wrong
    /// (not a state file, truncated, damaged, inconsistent).
    pub fn read(bytes: &[u8]) -> Result<(RunState, Value), String> {
        if bytes.len() < MAGIC.len() + 8 + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(if bytes.starts_with(&MAGIC[..bytes.len().min(MAGIC.len())]) && !bytes.is_empty() {
                "the state file is truncated".to_owned()
            } else {
                "not an rnnlm run state file".to_owned()
            });
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body)[..] != digest[..] {
            return Err("the state file is truncated or damaged (its SHA-256 does not match)".to_owned());
        }
        let header_len = u64::from_le_bytes(body[16..24].try_into().expect("eight bytes"));
        let header_end = usize::try_from(header_len).ok().and_then(|n| n.checked_add(24)).filter(|&e| e <= body.len());
        let header_end = header_end.ok_or("the state file's header length is out of range")?;
        let header: Value =
            serde_json::from_slice(&body[24..header_end]).map_err(|e| format!("the state file's header: {e}"))?;
        if header["format"] != 1 {
            return Err(format!("state file format {} is not one this version reads (1)", header["format"]));
        }
        let mut blocks = Blocks::new(&header["blocks"], &body[header_end..])?;
        let now =
            RunPoint { progress: progress_from_json(&header["now"])?, model: blocks.snapshot("now", &header["now"])? };
        let best = match &header["best"] {
            Value::Null => None,
            b => Some(BestModel {
                epoch: usize_at(b, "epoch")?,
                valid_ppl: f64_at(b, "valid_ppl")?,
                model: blocks.snapshot("best", b)?,
            }),
        };
        let last_good = match &header["last_good"] {
            Value::Null => None,
            g => Some(RunPoint { progress: progress_from_json(g)?, model: blocks.snapshot("last_good", g)? }),
        };
        blocks.finish()?;
        Ok((RunState { now, best, last_good }, header["extra"].clone()))
    }
}

/// Passes writes through to `out`, hashing them.
struct HashingWriter<'a, W: Write> {
    out: &'a mut W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The f32 blocks of a state file, taken in the order the header lists them.
struct Blocks<'a> {
    names: Vec<(String, usize)>,
    data: &'a [u8],
    next: usize,
}

impl<'a> Blocks<'a> {
    fn new(list: &Value, data: &'a [u8]) -> Result<Blocks<'a>, String> {
        let list = list.as_array().ok_or("the state file lists no blocks")?;
        let names = list
            .iter()
            .map(|entry| match (entry[0].as_str(), entry[1].as_u64()) {
                (Some(name), Some(len)) => Ok((name.to_owned(), len as usize)),
                _ => Err(format!("the state file's block entry {entry} is malformed")),
            })
            .collect::<Result<Vec<_>, String>>()?;
        let total = names.iter().try_fold(0usize, |sum, (_, len)| sum.checked_add(len.checked_mul(4)?));
        if total != Some(data.len()) {
            return Err("the state file's blocks do not fill it".to_owned());
        }
        Ok(Blocks { names, data, next: 0 })
    }

    /// The next block, which must be `name`.
    fn take(&mut self, name: &str) -> Result<Vec<f32>, String> {
        let (found, len) = self.names.get(self.next).ok_or_else(|| format!("the state file has no block {name}"))?;
        if found != name {
            return Err(format!("the state file has block {found} where {name} belongs"));
        }
        let (block, rest) = self.data.split_at(len * 4);
        self.data = rest;
        self.next += 1;
        Ok(block.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("four bytes"))).collect())
    }

    fn snapshot(&mut self, prefix: &str, json: &Value) -> Result<ModelSnapshot, String> {
        Ok(ModelSnapshot {
            params: self.take(&format!("{prefix}.params"))?,
            state: self.take(&format!("{prefix}.state"))?,
            training_windows: json["training_windows"].as_u64().ok_or("the state file has no training_windows")?,
        })
    }

    fn finish(self) -> Result<(), String> {
        match self.names.get(self.next) {
            Some((name, _)) => Err(format!("the state file has a stray block {name}")),
            None => Ok(()),
        }
    }
}

fn point_json(point: &RunPoint) -> Value {
    let p = &point.progress;
    json!({
        "iter": p.iter, "epoch": p.epoch, "epoch_iters": p.epoch_iters, "epoch_loss_sum": p.epoch_loss_sum,
        "time_idx": p.time_idx, "lr": p.lr as f64, "recoveries": p.recoveries, "elapsed_sec": p.elapsed_sec,
        "finished": p.finished,
        // JSON has no infinity: no best yet is null.
        "best_valid": Some(p.schedule.best_valid).filter(|v| v.is_finite()),
        "annealing": p.schedule.annealing,
        "training_windows": point.model.training_windows,
        "epochs": p.epochs.iter().map(epoch_json).collect::<Vec<_>>(),
    })
}

fn epoch_json(e: &EpochReport) -> Value {
    json!({
        "epoch": e.epoch, "train_ppl": e.train_ppl, "valid_ppl": e.valid_ppl, "tokens_per_sec": e.tokens_per_sec,
        "elapsed_sec": e.elapsed_sec, "iters": e.iters, "trained_lr": e.trained_lr as f64, "lr": e.lr as f64,
    })
}

fn usize_at(v: &Value, key: &str) -> Result<usize, String> {
    v[key].as_u64().map(|n| n as usize).ok_or_else(|| format!("the state file has no {key}"))
}

fn f64_at(v: &Value, key: &str) -> Result<f64, String> {
    v[key].as_f64().ok_or_else(|| format!("the state file has no {key}"))
}

/// An f32 written as the f64 it converts to exactly.
fn f32_at(v: &Value, key: &str) -> Result<f32, String> {
    f64_at(v, key).map(|x| x as f32)
}

fn progress_from_json(v: &Value) -> Result<Progress, String> {
    let epochs = v["epochs"].as_array().ok_or("the state file has no epochs")?;
    let epochs = epochs
        .iter()
        .map(|e| {
            Ok(EpochReport {
                epoch: usize_at(e, "epoch")?,
                train_ppl: f64_at(e, "train_ppl")?,
                valid_ppl: e["valid_ppl"].as_f64(),
                tokens_per_sec: f64_at(e, "tokens_per_sec")?,
                elapsed_sec: f64_at(e, "elapsed_sec")?,
                iters: usize_at(e, "iters")?,
                trained_lr: f32_at(e, "trained_lr")?,
                lr: f32_at(e, "lr")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Progress {
        iter: usize_at(v, "iter")?,
        epoch: usize_at(v, "epoch")?,
        epoch_iters: usize_at(v, "epoch_iters")?,
        epoch_loss_sum: f64_at(v, "epoch_loss_sum")?,
        time_idx: usize_at(v, "time_idx")?,
        lr: f32_at(v, "lr")?,
        schedule: ScheduleState {
            best_valid: v["best_valid"].as_f64().unwrap_or(f64::INFINITY),
            annealing: v["annealing"].as_bool().ok_or("the state file has no annealing")?,
        },
        recoveries: usize_at(v, "recoveries")?,
        elapsed_sec: f64_at(v, "elapsed_sec")?,
        epochs,
        finished: v["finished"].as_bool().ok_or("the state file has no finished")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunState {
        let model =
            |x: f32| ModelSnapshot { params: vec![x, -0.0, 1e-30, 3.5], state: vec![x; 3], training_windows: 7 };
        let mut progress = Progress::start(0.1);
        progress.iter = 12;
        progress.epoch_loss_sum = 0.1 + 0.2;
        progress.schedule.best_valid = 123.456789012345;
        progress.epochs.push(EpochReport {
            epoch: 1,
            train_ppl: 300.25,
            valid_ppl: None,
            tokens_per_sec: 1e4,
            elapsed_sec: 1.5,
            iters: 10,
            trained_lr: 0.2,
            lr: 0.1,
        });
        RunState {
            now: RunPoint { progress: progress.clone(), model: model(1.0) },
            best: Some(BestModel { epoch: 1, valid_ppl: 200.0, model: model(2.0) }),
            last_good: Some(RunPoint { progress, model: model(3.0) }),
        }
    }

    #[test]
    fn a_state_reads_back_exactly() {
        let state = sample();
        let mut bytes = Vec::new();
        state.write(&mut bytes, &json!({"lr": 0.1})).unwrap();
        let (back, extra) = RunState::read(&bytes).unwrap();
        assert_eq!(back, state);
        assert_eq!(extra, json!({"lr": 0.1}));
    }

    #[test]
    fn a_truncated_or_damaged_state_is_refused() {
        let mut bytes = Vec::new();
        sample().write(&mut bytes, &Value::Null).unwrap();
        for cut in [0, 5, 30, bytes.len() / 2, bytes.len() - 1] {
            let error = RunState::read(&bytes[..cut]).unwrap_err();
            assert!(error.contains("truncated") || error.contains("not an rnnlm"), "{cut}: {error}");
        }
        let mut damaged = bytes.clone();
        damaged[bytes.len() - 40] ^= 1;
        assert!(RunState::read(&damaged).unwrap_err().contains("damaged"));
        assert!(RunState::read(b"{\"some\": \"json\"}").unwrap_err().contains("not an rnnlm run state file"));
    }
}
