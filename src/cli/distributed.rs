//! `rnnlm train --distributed` and `rnnlm bench --distributed`: this process as one of an MPI
//! job. Every process reads the corpus and builds the model itself; before training they agree
//! that all of them could, and that all start from the same corpus, weights and run state.
//! Rank 0 alone prints and writes; an error any process meets before training is told once, by
//! the lowest rank that met it.

use super::model_commands::{bench_model, BenchSubject};
use super::BenchArgs;
use rnnlm::bench::{run_shared, SharedBenchResult};
use rnnlm::distributed::Processes;
use rnnlm::files::corpus::Ids;
use rnnlm::Window;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// This process's place in the job, and whether the job has agreed to train.
pub struct Member {
    pub processes: Processes,
    agreed: bool,
}

impl Member {
    /// Joins the job (an error when not started by an MPI launcher); every rank but 0 goes
    /// quiet. `threads`, when given, sizes rayon's global pool: the work runs on this thread,
    /// the one that makes MPI's calls, and computes on the pool.
    pub fn join(threads: Option<usize>) -> anyhow::Result<Member> {
        let processes = Processes::init().map_err(|e| anyhow::anyhow!("--distributed: {e}"))?;
        super::QUIET.store(processes.rank() != 0, Ordering::Relaxed);
        if let Some(threads) = threads {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build_global()?;
        }
        Ok(Member { processes, agreed: false })
    }

    /// This process's rows of the window `whole`, as a window; an error when it has none.
    pub fn window(&self, whole: Window) -> anyhow::Result<Window> {
        let rows = self.processes.rows(whole.batch).len();
        if rows == 0 {
            let count = self.processes.count();
            anyhow::bail!("--batch {} cannot be shared by {count} processes: every process needs a row", whole.batch);
        }
        Ok(Window { batch: rows, time: whole.time })
    }

    pub fn is_rank0(&self) -> bool {
        self.processes.rank() == 0
    }

    /// Every process says whether it is ready to train and, if so, the digest of what it
    /// starts from (corpus, weights, run state). `Err` with the exit status when any process
    /// is not ready or starts elsewhere than rank 0: the lowest rank that failed has said why
    /// (or rank 0, that the starting points differ).
    pub fn agree(&mut self, ready: Result<u64, &anyhow::Error>) -> Result<(), ExitCode> {
        self.agreed = true;
        let (rank, count) = (self.processes.rank(), self.processes.count());
        let failed = self.processes.ranks_with(ready.is_err());
        if let (Some(&first), Err(error)) = (failed.first(), &ready) {
            if first == rank {
                let others: Vec<String> = failed[1..].iter().map(usize::to_string).collect();
                let others = match others.len() {
                    0 => String::new(),
                    1 => format!(" (and rank {})", others[0]),
                    _ => format!(" (and ranks {})", others.join(", ")),
                };
                eprintln!("error: rank {rank} of {count}{others}: {error:#}");
            }
        }
        if !failed.is_empty() {
            return Err(ExitCode::FAILURE);
        }
        let digest = ready.unwrap_or_default();
        let elsewhere = self.processes.ranks_with(digest != self.processes.broadcast_u64(digest));
        if elsewhere.is_empty() {
            return Ok(());
        }
        if rank == 0 {
            let ranks: Vec<String> = elsewhere.iter().map(usize::to_string).collect();
            eprintln!(
                "error: rank {} of {count} would start from another corpus, weights or run state than rank 0: every host must read the same files (the corpus, --init, --resume) at the same paths",
                ranks.join(", ")
            );
        }
        Err(ExitCode::FAILURE)
    }

    /// The process's exit after `outcome`: an error before the agreement is agreed on now
    /// (told once); one after it is told by rank 0 alone, every rank failing.
    pub fn finish(&mut self, outcome: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
        match outcome {
            Err(error) if !self.agreed => Ok(self.agree(Err(&error)).err().unwrap_or(ExitCode::FAILURE)),
            // A process that ended before training (nothing to do) has agreed to nothing: it
            // must still take part, and the others learn that it went.
            Ok(status) if !self.agreed => Ok(self.agree(Ok(u64::MAX)).err().unwrap_or(status)),
            Err(_) if !self.is_rank0() => Ok(ExitCode::FAILURE),
            outcome => outcome,
        }
    }
}

/// A digest of what a run starts from: the corpus's SHA-256, the weights, and the position of
/// a resumed run.
pub fn starting_digest(corpus_sha256: &str, params: &[f32], resumed_at: Option<(usize, usize)>) -> u64 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(corpus_sha256.as_bytes());
    hasher.update(bytemuck::cast_slice(params));
    if let Some((iter, time_idx)) = resumed_at {
        hasher.update(&(iter as u64).to_le_bytes());
        hasher.update(&(time_idx as u64).to_le_bytes());
    }
    u64::from(hasher.finalize())
}

/// `rnnlm bench --distributed`: the steps of `subject`'s training shared by the job's
/// processes (after a probe of three steps that sizes the rounds to `--seconds`); rank 0
/// prints the figures.
pub fn bench(args: &BenchArgs, (name, arch, window, corpus_ids, _): BenchSubject) -> anyhow::Result<()> {
    let mut member = Member::join(args.threads)?;
    let mut model = bench_model(args, arch, member.window(window)?, &corpus_ids)?;
    let corpus = Ids::U32(&corpus_ids);
    let processes = &mut member.processes;
    let iters = match args.iters {
        Some(iters) => iters,
        None => {
            let probe = run_shared(&mut model, processes, corpus, window.batch, (1, 3))?;
            let per_round = args.seconds / args.repeats as f64;
            ((per_round * probe.tokens_per_sec.median / window.tokens() as f64) as usize).max(1)
        }
    };
    let result = run_shared(&mut model, processes, corpus, window.batch, (args.repeats, iters))?;
    if args.json {
        print_json(&name, &result);
    } else {
        print_text(&name, &result);
    }
    Ok(())
}

fn print_json(name: &str, result: &SharedBenchResult) {
    let json = serde_json::json!({
        "config": name, "processes": result.members, "threads": rayon::current_num_threads(),
        "batch": result.window.batch, "time": result.window.time,
        "tokens_per_sec": result.tokens_per_sec.median,
        "tokens_per_sec_min": result.tokens_per_sec.min,
        "tokens_per_sec_max": result.tokens_per_sec.max,
        "sum_seconds_per_step": result.sum_seconds_per_step.median,
        "sum_share": result.sum_share(),
        "summed_bytes_per_step": result.summed_bytes_per_step,
        "repeats": result.repeats, "iters_per_repeat": result.iters_per_repeat,
    });
    out!("{json}");
}

fn print_text(name: &str, result: &SharedBenchResult) {
    let (w, t) = (result.window, result.tokens_per_sec);
    out!(
        "{name} over {} processes ({} threads each), B = {}, T = {}: {:.0} tokens/s (min {:.0}, max {:.0}; {} rounds of {} steps)",
        result.members,
        rayon::current_num_threads(),
        w.batch,
        w.time,
        t.median,
        t.min,
        t.max,
        result.repeats,
        result.iters_per_repeat
    );
    out!(
        "gradient sums: {:.1} MB per step, {:.1} ms ({:.1} % of the step)",
        result.summed_bytes_per_step / 1e6,
        result.sum_seconds_per_step.median * 1e3,
        100.0 * result.sum_share()
    );
}
