//! A run's settings as its state file keeps them: every flag that decides what the run
//! computes, resolved (preset, defaults and `--init` applied), so that `--resume` rebuilds the
//! same run from the state file alone, and refuses flags that say otherwise.

use super::{CorpusArgs, Cutoffs, OutputArgs, OutputKind, TrainArgs};
use anyhow::{anyhow, bail};
use clap::Parser;
use rnnlm::train::Schedule;
use rnnlm::Arch;
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

/// `train`'s flags alone, to read a saved run's flags back with the parser that read them first.
#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct SavedFlags {
    #[command(flatten)]
    args: TrainArgs,
}

/// The flags a resumed run may change; every other flag fixes what the run computes.
const CHANGEABLE: [&str; 3] = ["--epochs", "--time-budget", "--checkpoint-every"];

impl RunConfig {
    /// The JSON a state file keeps: the run's flags as a command line, and the rest.
    pub fn to_json(&self) -> Value {
        let argv: Vec<String> = flags(&self.args)
            .into_iter()
            .flat_map(|(flag, value)| std::iter::once(flag.to_owned()).chain(value))
            .collect();
        json!({
            "flags": argv,
            "start_epoch": self.start_epoch,
            "corpus_tokens": self.fingerprint.tokens,
            "corpus_sha256": self.fingerprint.sha256,
        })
    }

    /// Reads back what [`to_json`](Self::to_json) wrote, parsing the flags as `train` does.
    pub fn from_json(v: &Value) -> anyhow::Result<RunConfig> {
        let missing = |key: &str| anyhow!("the state file's settings have no {key}");
        let argv = v["flags"].as_array().ok_or_else(|| missing("flags"))?;
        let argv = argv.iter().map(|a| a.as_str().ok_or_else(|| missing("flags"))).collect::<Result<Vec<_>, _>>()?;
        let saved = SavedFlags::try_parse_from(&argv)
            .map_err(|e| anyhow!("the state file's flags: {}", e.to_string().lines().next().unwrap_or_default()))?;
        let usize_of = |key: &str| v[key].as_u64().map(|n| n as usize).ok_or_else(|| missing(key));
        let fingerprint = Fingerprint {
            tokens: usize_of("corpus_tokens")?,
            sha256: v["corpus_sha256"].as_str().ok_or_else(|| missing("corpus_sha256"))?.to_owned(),
        };
        Ok(RunConfig { args: saved.args, start_epoch: usize_of("start_epoch")?, fingerprint })
    }
}

fn path_value(path: &Option<PathBuf>) -> Option<String> {
    path.as_ref().map(|p| p.display().to_string())
}

/// The flags given in `args` that a state file keeps, as typed: `(flag, value)`, with no
/// value for a switch.
fn flags(args: &TrainArgs) -> Vec<(&'static str, Option<String>)> {
    let valued: [(&'static str, Option<String>); 25] = [
        ("--text", path_value(&args.corpus.text)),
        ("--prepared", path_value(&args.corpus.prepared)),
        ("--level", args.level.map(|l| l.name().to_owned())),
        ("--corpus-size", args.corpus_size.map(|n| n.to_string())),
        ("--epochs", args.epochs.map(|n| n.to_string())),
        ("--max-iters", args.max_iters.map(|n| n.to_string())),
        ("--batch", args.batch.map(|n| n.to_string())),
        ("--time", args.time.map(|n| n.to_string())),
        ("--cell", args.cell.map(|c| c.name().to_owned())),
        ("--layers", args.layers.map(|n| n.to_string())),
        ("--dropout", args.dropout.map(|d| d.to_string())),
        ("--embed", args.embed.map(|n| n.to_string())),
        ("--hidden", args.hidden.map(|n| n.to_string())),
        ("--output", args.softmax.output.map(|o| o.name().to_owned())),
        ("--cutoffs", args.softmax.cutoffs.as_ref().map(Cutoffs::to_string)),
        ("--div-value", args.softmax.div_value.map(|v| v.to_string())),
        ("--lr", args.lr.map(|v| v.to_string())),
        ("--clip", args.clip.map(|v| v.to_string())),
        (
            "--lr-schedule",
            args.lr_schedule.or(args.lr_decay.map(|factor| Schedule::Plateau { factor })).map(|s| s.to_string()),
        ),
        ("--time-budget", args.time_budget.map(|v| v.to_string())),
        ("--checkpoint-every", args.checkpoint_every.map(|n| n.to_string())),
        ("--seed", args.seed.map(|n| n.to_string())),
        ("--save", path_value(&args.save)),
        ("--plot", path_value(&args.plot)),
        ("--log", path_value(&args.log)),
    ];
    let mut present: Vec<(&'static str, Option<String>)> =
        valued.into_iter().filter_map(|(flag, value)| value.map(|v| (flag, Some(v)))).collect();
    for (flag, on) in [
        ("--lowercase", args.lowercase),
        ("--full-corpus", args.full_corpus),
        ("--tie", args.tie),
        ("--keep-best", args.keep_best),
        ("--no-keep-best", args.no_keep_best),
        ("--no-save", args.no_save),
    ] {
        if on {
            present.push((flag, None));
        }
    }
    present
}

/// Fails, naming the first flag, when `given` sets a flag to something else than the saved
/// run (`saved`, read from `state_file`) had.
pub fn check_resume_flags(given: &TrainArgs, saved: &TrainArgs, state_file: &Path) -> anyhow::Result<()> {
    let saved_flags = flags(saved);
    for (flag, value) in flags(given).into_iter().filter(|(flag, _)| !CHANGEABLE.contains(flag)) {
        let had = saved_flags.iter().find(|(f, _)| *f == flag).map(|(_, v)| v);
        if had != Some(&value) {
            let had = match had {
                Some(Some(v)) => format!("{flag} {v}"),
                Some(None) => flag.to_owned(),
                None => "without it".to_owned(),
            };
            let value = value.map_or_else(String::new, |v| format!(" {v}"));
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
        distributed: given.distributed,
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
        softmax: OutputArgs {
            output: Some(if arch.adaptive().is_some() { OutputKind::Adaptive } else { OutputKind::Full }),
            cutoffs: arch.adaptive().map(|shape| Cutoffs(shape.cutoffs().to_vec())),
            div_value: arch.adaptive().map(|shape| shape.div_value()),
        },
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
        distributed: args.distributed,
        save: Some(args.save.clone().unwrap_or_else(|| PathBuf::from(super::DEFAULT_CHECKPOINT))),
        no_save: args.no_save,
        plot: args.plot.clone(),
        log: args.log.clone(),
    }
}
