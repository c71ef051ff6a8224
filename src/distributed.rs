//! Training over several processes, on one host or many, with MPI (feature `mpi`).
//!
//! `mpirun -n N` starts N copies of a program; each calls [`Processes::init`], takes its rows
//! of every window ([`Processes::rows`]) and trains a model of those rows: a whole run with
//! [`train_shared`](crate::train::train_shared) (the processes are its
//! [`Group`]), or step by step with
//! [`Rnnlm::train_step_shared`](crate::Rnnlm::train_step_shared), whose reduction is
//! [`Processes::sum`]: one `MPI_Allreduce` over the whole flat gradient buffer per step. Every
//! process then applies the same update to the same weights. MPI itself (Open MPI or MPICH)
//! moves the data; nothing here is a protocol of its own.

use crate::model::share_rows;
use crate::train::Group;
use mpi::collective::SystemOperation;
use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::fmt;
use std::ops::Range;

/// Why the processes could not be set up.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DistributedError {
    /// The program was not started by `mpirun` (or `mpiexec`, `srun`): no launcher's
    /// environment variables are set.
    NotLaunched,
    /// MPI was initialised already in this process.
    AlreadyInitialized,
    /// The MPI library cannot let one thread of a multi-threaded process make the calls.
    Threading,
}

impl fmt::Display for DistributedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DistributedError::NotLaunched => {
                "not started by mpirun: run `mpirun -n N ...` (no MPI launcher's environment variables are set)"
            }
            DistributedError::AlreadyInitialized => "MPI was initialised already in this process",
            DistributedError::Threading => "the MPI library does not support calls from one thread of several",
        })
    }
}

impl std::error::Error for DistributedError {}

/// Environment variables that MPI launchers set in the processes they start: Open MPI's
/// `mpirun`, MPICH's and Intel MPI's Hydra, PMIx launchers and Slurm's `srun`.
const LAUNCHER_VARIABLES: [&str; 5] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"];

/// The processes of one MPI job, and this one's place among them.
pub struct Processes {
    world: SimpleCommunicator,
    /// Receives [`sum`](Self::sum)'s result before it is copied back: the in-place form of
    /// `MPI_Allreduce` has no portable binding.
    sums: Vec<f32>,
    /// Finalises MPI when dropped, after the rest.
    _universe: Universe,
}

impl Processes {
    /// Initialises MPI for this process (one thread makes the MPI calls; rayon's threads
    /// compute). An error when the program was not started by an MPI launcher, rather than
    /// silently running as a job of one.
    pub fn init() -> Result<Self, DistributedError> {
        if !LAUNCHER_VARIABLES.iter().any(|name| std::env::var_os(name).is_some()) {
            return Err(DistributedError::NotLaunched);
        }
        let (universe, threading) =
            mpi::initialize_with_threading(Threading::Funneled).ok_or(DistributedError::AlreadyInitialized)?;
        if threading < Threading::Funneled {
            return Err(DistributedError::Threading);
        }
        Ok(Processes { world: universe.world(), sums: Vec::new(), _universe: universe })
    }

    /// This process's rank, `0..count()`.
    pub fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    /// The number of processes.
    pub fn count(&self) -> usize {
        self.world.size() as usize
    }

    /// This process's rows of a batch of `batch` rows ([`share_rows`]).
    pub fn rows(&self, batch: usize) -> Range<usize> {
        share_rows(batch, self.count(), self.rank())
    }

    /// Replaces `values` by their sums over the processes, element by element: one
    /// `MPI_Allreduce` (sum) per 2^30 values, every process getting the same sums. Allocates
    /// on the first call with the most values so far, not after.
    pub fn sum(&mut self, values: &mut [f32]) {
        if self.sums.len() < values.len() {
            self.sums.resize(values.len(), 0.0);
        }
        let sums = &mut self.sums[..values.len()];
        for (part, sum) in values.chunks_mut(1 << 30).zip(sums.chunks_mut(1 << 30)) {
            self.world.all_reduce_into(&*part, &mut *sum, SystemOperation::sum());
            part.copy_from_slice(sum);
        }
    }

    /// The ranks whose `flag` is up, in order, the same list on every process: one allreduce
    /// of a value per process.
    pub fn ranks_with(&mut self, flag: bool) -> Vec<usize> {
        let mut flags = vec![0.0f32; self.count()];
        flags[self.rank()] = f32::from(u8::from(flag));
        self.sum(&mut flags);
        flags.iter().enumerate().filter(|(_, &f)| f > 0.0).map(|(rank, _)| rank).collect()
    }

    /// Rank 0's `value`, on every process.
    pub fn broadcast_u64(&self, value: u64) -> u64 {
        let mut value = value;
        self.world.process_at_rank(0).broadcast_into(&mut value);
        value
    }

    /// [`sum`](Self::sum) for a few `f64`s (losses and counts), at most 16.
    pub fn sum_f64(&self, values: &mut [f64]) {
        let mut sums = [0.0; 16];
        let sums = &mut sums[..values.len()];
        self.world.all_reduce_into(&*values, &mut *sums, SystemOperation::sum());
        values.copy_from_slice(sums);
    }
}

impl Group for Processes {
    fn rank(&self) -> usize {
        Processes::rank(self)
    }

    fn size(&self) -> usize {
        self.count()
    }

    fn sum(&mut self, values: &mut [f32]) {
        Processes::sum(self, values);
    }

    fn sum_f64(&mut self, values: &mut [f64]) {
        Processes::sum_f64(self, values);
    }
}
