//! A run's settings as its state file keeps them: every flag that decides what the run
//! computes, resolved (preset, defaults and `--init` applied), so that `--resume` rebuilds the
//! same run from the state file alone, and refuses flags that say otherwise.

use super::{CorpusArgs, TrainArgs};
use anyhow::{anyhow, bail};
use rnnlm::corpus::Level;
use rnnlm::train::Schedule;
use rnnlm::{Arch, Cell};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What identifies the training tokens a run reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub tokens: usize,
    pub sha256: String,
}

/// The resolved flags of a run, with what else a resumed run must know.
pub struct RunConfig {
    /// Every setting as an explicit flag.
    pub args: TrainArgs,
    /// Epochs the `--init` checkpoint had trained before this run.
    pub start_epoch: usize,
    pub fingerprint: Fingerprint,
}

fn path_json(path: &Option<PathBuf>) -> Value {
    path.as_ref().map_or(Value::Null, |p| Value::String(p.display().to_string()))
}

impl RunConfig {
    /// The JSON a state file keeps: `args` (the run's flags as given) resolved into `settings`.
    pub fn to_json(&self) -> Value {
        let a = &self.args;
        json!({
            "text": path_json(&a.corpus.text),
            "prepared": path_json(&a.corpus.prepared),
            "level": a.level.map(|l| l.name()),
            "lowercase": a.lowercase,
            "corpus_size": a.corpus_size,
            "epochs": a.epochs,
            "max_iters": a.max_iters,
            "batch": a.batch,
            "time": a.time,
            "cell": a.cell.map(|c| c.name()),
            "layers": a.layers,
            "tie": a.tie,
            "dropout": a.dropout.map(|d| d as f64),
            "embed": a.embed,
            "hidden": a.hidden,
            "lr": a.lr.map(|v| v as f64),
            "clip": a.clip.map(|v| v as f64),
            "lr_schedule": a.lr_schedule.map(|s| s.to_string()),
            "keep_best": a.keep_best,
            "time_budget": a.time_budget,
            "checkpoint_every": a.checkpoint_every,
            "seed": a.seed,
            "save": path_json(&a.save),
            "no_save": a.no_save,
            "plot": path_json(&a.plot),
            "log": path_json(&a.log),
            "start_epoch": self.start_epoch,
            "corpus_tokens": self.fingerprint.tokens,
            "corpus_sha256": self.fingerprint.sha256,
        })
    }

    /// Reads back what [`to_json`](Self::to_json) wrote.
    pub fn from_json(v: &Value) -> anyhow::Result<RunConfig> {
        let missing = |key: &str| anyhow!("the state file's settings have no {key}");
        let usize_of = |key: &str| v[key].as_u64().map(|n| n as usize);
        let f32_of = |key: &str| v[key].as_f64().map(|x| x as f32);
        let path_of = |key: &str| v[key].as_str().map(PathBuf::from);
        let bool_of = |key: &str| v[key].as_bool().ok_or_else(|| missing(key));
        let level = match v["level"].as_str() {
            Some(name) => Some(name.parse::<Level>().map_err(|e| anyhow!("the state file's level: {e}"))?),
            None => None,
        };
        let cell = match v["cell"].as_str() {
            Some(name) => Some(Cell::from_name(name).ok_or_else(|| anyhow!("unknown cell {name} in the state file"))?),
            None => None,
        };
        let lr_schedule = match v["lr_schedule"].as_str() {
            Some(text) => Some(text.parse::<Schedule>().map_err(|e| anyhow!("the state file's schedule: {e}"))?),
            None => None,
        };
        let corpus_size = usize_of("corpus_size");
        let args = TrainArgs {
            preset: None,
            corpus: CorpusArgs { text: path_of("text"), prepared: path_of("prepared"), base_url: None },
            level,
            lowercase: bool_of("lowercase")?,
            corpus_size,
            full_corpus: corpus_size.is_none(),
            epochs: usize_of("epochs"),
            max_iters: usize_of("max_iters"),
            batch: usize_of("batch"),
            time: usize_of("time"),
            cell,
            layers: usize_of("layers"),
            tie: bool_of("tie")?,
            dropout: f32_of("dropout"),
            embed: usize_of("embed"),
            hidden: usize_of("hidden"),
            lr: f32_of("lr"),
            clip: f32_of("clip"),
            lr_decay: None,
            lr_schedule,
            keep_best: bool_of("keep_best")?,
            no_keep_best: !bool_of("keep_best")?,
            time_budget: v["time_budget"].as_f64(),
            checkpoint_every: usize_of("checkpoint_every"),
            stop_after: None,
            resume: None,
            seed: v["seed"].as_u64(),
            threads: None,
            init: None,
            save: path_of("save"),
            no_save: bool_of("no_save")?,
            plot: path_of("plot"),
            log: path_of("log"),
        };
        let fingerprint = Fingerprint {
            tokens: usize_of("corpus_tokens").ok_or_else(|| missing("corpus_tokens"))?,
            sha256: v["corpus_sha256"].as_str().ok_or_else(|| missing("corpus_sha256"))?.to_owned(),
        };
        Ok(RunConfig { args, start_epoch: usize_of("start_epoch").ok_or_else(|| missing("start_epoch"))?, fingerprint })
    }
}

/// The flags given in `args` that fix what a run computes, as `(flag, value)`.
fn fixed_flags(args: &TrainArgs) -> Vec<(&'static str, String)> {
    let mut flags: Vec<(&'static str, Option<String>)> = vec![
        ("--text", args.corpus.text.as_ref().map(|p| p.display().to_string())),
        ("--prepared", args.corpus.prepared.as_ref().map(|p| p.display().to_string())),
        ("--level", args.level.map(|l| l.name().to_owned())),
        ("--corpus-size", args.corpus_size.map(|n| n.to_string())),
        ("--max-iters", args.max_iters.map(|n| n.to_string())),
        ("--batch", args.batch.map(|n| n.to_string())),
        ("--time", args.time.map(|n| n.to_string())),
        ("--cell", args.cell.map(|c| c.name().to_owned())),
        ("--layers", args.layers.map(|n| n.to_string())),
        ("--dropout", args.dropout.map(|d| d.to_string())),
        ("--embed", args.embed.map(|n| n.to_string())),
        ("--hidden", args.hidden.map(|n| n.to_string())),
        ("--lr", args.lr.map(|v| v.to_string())),
        ("--clip", args.clip.map(|v| v.to_string())),
        (
            "--lr-schedule",
            args.lr_schedule.or(args.lr_decay.map(|factor| Schedule::Plateau { factor })).map(|s| s.to_string()),
        ),
        ("--seed", args.seed.map(|n| n.to_string())),
        ("--save", args.save.as_ref().map(|p| p.display().to_string())),
        ("--plot", args.plot.as_ref().map(|p| p.display().to_string())),
        ("--log", args.log.as_ref().map(|p| p.display().to_string())),
    ];
    for (flag, on) in [
        ("--lowercase", args.lowercase),
        ("--full-corpus", args.full_corpus),
        ("--tie", args.tie),
        ("--keep-best", args.keep_best),
        ("--no-keep-best", args.no_keep_best),
        ("--no-save", args.no_save),
    ] {
        flags.push((flag, on.then(|| "on".to_owned())));
    }
    flags.into_iter().filter_map(|(flag, value)| Some((flag, value?))).collect()
}

/// Fails, naming the first flag, when `given` sets a flag to something else than the saved
/// run (`saved`, read from `state_file`) had.
pub fn check_resume_flags(given: &TrainArgs, saved: &TrainArgs, state_file: &Path) -> anyhow::Result<()> {
    let saved_flags = fixed_flags(saved);
    for (flag, value) in fixed_flags(given) {
        let had = saved_flags.iter().find(|(f, _)| *f == flag).map(|(_, v)| v.as_str());
        if had != Some(value.as_str()) {
            let had = match had {
                Some("on") => "on".to_owned(),
                Some(v) => format!("{flag} {v}"),
                None => "without it".to_owned(),
            };
            let value = if value == "on" { String::new() } else { format!(" {value}") };
            bail!("{flag}{value} contradicts the run saved in {} (it ran {had})", state_file.display());
        }
    }
    Ok(())
}

/// The resolved settings of the saved run, with the flags a resumed run may change taken
/// from `given`.
pub fn resumed_args(saved: TrainArgs, given: &TrainArgs) -> TrainArgs {
    TrainArgs {
        epochs: given.epochs.or(saved.epochs),
        time_budget: given.time_budget.or(saved.time_budget),
        checkpoint_every: given.checkpoint_every.or(saved.checkpoint_every),
        stop_after: given.stop_after,
        threads: given.threads,
        corpus: CorpusArgs { base_url: given.corpus.base_url.clone(), ..saved.corpus },
        ..saved
    }
}

/// The state file of the checkpoint at `path` (`path` itself when it is one).
pub fn state_path(path: &Path) -> PathBuf {
    if path.extension().is_some_and(|e| e == "state") {
        path.to_owned()
    } else {
        let mut name = path.as_os_str().to_owned();
        name.push(".state");
        PathBuf::from(name)
    }
}

/// Resolved flags for a new run: `args` with every value the run uses made explicit.
pub fn resolved(args: &TrainArgs, s: &super::presets::Settings, arch: Arch, dropout: f32) -> TrainArgs {
    TrainArgs {
        preset: None,
        corpus: args.corpus.clone(),
        level: args.level,
        lowercase: args.lowercase,
        corpus_size: s.corpus_size,
        full_corpus: s.corpus_size.is_none(),
        epochs: Some(s.options.epochs),
        max_iters: s.options.max_iters,
        batch: Some(s.window.batch),
        time: Some(s.window.time),
        cell: Some(arch.cell),
        layers: Some(arch.layers),
        tie: arch.tied,
        dropout: Some(dropout),
        embed: Some(arch.dims.embed),
        hidden: Some(arch.dims.hidden),
        lr: Some(s.options.lr),
        clip: s.options.clip,
        lr_decay: None,
        lr_schedule: Some(s.options.schedule),
        keep_best: s.options.keep_best,
        no_keep_best: !s.options.keep_best,
        time_budget: s.options.time_budget,
        checkpoint_every: s.options.checkpoint_every,
        stop_after: None,
        resume: None,
        seed: Some(s.seed),
        threads: None,
        init: None,
        save: Some(args.save.clone().unwrap_or_else(|| PathBuf::from(super::DEFAULT_CHECKPOINT))),
        no_save: args.no_save,
        plot: args.plot.clone(),
        log: args.log.clone(),
    }
}
