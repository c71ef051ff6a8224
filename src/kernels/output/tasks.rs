//! How the output layer's backward pass shares its panels among threads: runs of consecutive
//! panels ("tasks") grouped by the layer's shape alone, each task a job of its own that adds
//! its panels' shares of `dhs` into its own partial, and the partials summed in task order (as
//! the tasks finish, or at the end), so results do not depend on the thread count.

use super::super::gemm::PARALLEL_MIN_WORK;
use super::super::out_matrix::OutMatrix;
use super::super::simd::{simd, zip_map_inplace};
use super::{PanelRow, PANEL_COLS};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, TryLockError};

/// Hidden units per block of the final sum of `hidden x rows` partials.
pub(super) const TRANSPOSE_UNITS: usize = 16;
/// Rows of `dhs` per step of that sum: `TRANSPOSE_UNITS x TRANSPOSE_ROWS` sums (4 KiB) on the stack.
const TRANSPOSE_ROWS: usize = 64;

/// How each task's partial `dhs` is laid out. A panel's share is `dz * W[:, panel]^T`, a
/// product over the panel's classes, along which both `dz` (row-major) and `W` (`hidden x
/// classes`) are contiguous: one of the two is transposed for the GEMM (the other is read in
/// place). `W`'s panel is, when it is much the smaller (at least twice as many rows as hidden
/// units); with rows and hidden units alike, transposing `dz` is cheaper (docs/design.md,
/// "Choices the kernels make").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PartialLayout {
    /// `rows x hidden`: `dhs = dz * W^T`, `W`'s panel transposed (at least twice as many rows
    /// as hidden units).
    RowsByHidden,
    /// `hidden x rows`: `dhs^T = W * dz^T`, `dz` transposed.
    HiddenByRows,
}

impl PartialLayout {
    pub(super) fn for_shape(rows: usize, hidden: usize) -> Self {
        if rows >= 2 * hidden {
            PartialLayout::RowsByHidden
        } else {
            PartialLayout::HiddenByRows
        }
    }
}

/// Rows of `dhs` per parallel job of the sum of `rows x hidden` partials.
pub(super) const SUM_ROWS: usize = 64;

/// Writes the rows `first_row..` of `dhs` that `block` views as the sum of the tasks'
/// `rows x hidden` partials (`tasks` of them, `size` values each, back to back in `partials`),
/// added in task order.
pub(super) fn sum_partials(
    partials: &[f32],
    (tasks, size): (usize, usize),
    first_row: usize,
    block: &mut OutMatrix<'_>,
) {
    let hidden = block.cols();
    for r in 0..block.rows() {
        let partial = |task: usize| &partials[task * size + (first_row + r) * hidden..][..hidden];
        let row = block.segment(r, 0, hidden);
        row.copy_from_slice(partial(0));
        simd!(V => {
            for task in 1..tasks {
                zip_map_inplace::<V>(row, partial(task), #[inline(always)] |acc, v| acc + v);
            }
        })
    }
}

/// Writes the columns `first_unit..` of `dhs` that `block` views as the sum of the tasks'
/// partial `dhs^T` (`tasks` of them, each `hidden x rows`, back to back in `partials`), added in
/// task order, so the result does not depend on how the columns are cut into blocks.
pub(super) fn sum_and_transpose(
    partials: &[f32],
    (tasks, hidden, rows): (usize, usize, usize),
    first_unit: usize,
    block: &mut OutMatrix<'_>,
) {
    let mut sums = [[0.0f32; TRANSPOSE_ROWS]; TRANSPOSE_UNITS];
    let units = block.cols();
    for u0 in (0..units).step_by(TRANSPOSE_UNITS) {
        let width = TRANSPOSE_UNITS.min(units - u0);
        for r0 in (0..rows).step_by(TRANSPOSE_ROWS) {
            let len = TRANSPOSE_ROWS.min(rows - r0);
            for (i, sum) in sums.iter_mut().enumerate().take(width) {
                let unit = first_unit + u0 + i;
                let partial = |task: usize| &partials[(task * hidden + unit) * rows + r0..][..len];
                let sum = &mut sum[..len];
                sum.copy_from_slice(partial(0));
                simd!(V => {
                    for task in 1..tasks {
                        zip_map_inplace::<V>(sum, partial(task), #[inline(always)] |acc, v| acc + v);
                    }
                })
            }
            for (r, row) in (r0..r0 + len).enumerate() {
                for (value, sum) in block.segment(row, u0, width).iter_mut().zip(&sums) {
                    *value = sum[r];
                }
            }
        }
    }
}

/// One flag per task: whether it has finished. Made once with the layer (a copy gets fresh
/// flags: they mean something only during a backward pass).
#[derive(Debug, Default)]
pub(super) struct TaskFlags(Vec<AtomicBool>);

impl TaskFlags {
    pub(super) fn new(tasks: usize) -> Option<Self> {
        let mut flags = Vec::new();
        flags.try_reserve_exact(tasks).ok()?;
        flags.extend((0..tasks).map(|_| AtomicBool::new(false)));
        Some(TaskFlags(flags))
    }
}

impl Clone for TaskFlags {
    fn clone(&self) -> Self {
        TaskFlags(self.0.iter().map(|_| AtomicBool::new(false)).collect())
    }
}

/// Partials of at most this many bytes are added up as the tasks finish ([`PartialFold`]):
/// a partial that size is likely still in the cache of the thread that made it. Larger ones
/// (at `H = 650`, 1.8 MB) would go through memory three times so (read, and added into a sum
/// read and written), and are summed once at the end instead, in parallel blocks.
const EAGER_PARTIAL_BYTES: usize = 512 << 10;

/// The tasks' partial `dhs`. Small ones are each added into task 0's in task order as soon as
/// it and every task before it have finished, by whichever thread finds it ready, instead of
/// all of them going through memory once more for a sum at the end; large ones are left for
/// that sum ([`sum_partials`], [`sum_and_transpose`]). Either way the sum is
/// `((p0 + p1) + p2) + ...` element by element, whatever the thread count.
pub(super) struct PartialFold<'a> {
    /// The partials, `size` values each, back to back; task `k` writes only its own until it
    /// has finished, and after that only the thread holding `next` reads it.
    partials: *mut f32,
    size: usize,
    tasks: usize,
    /// Whether partials are added as the tasks finish.
    eager: bool,
    done: &'a [AtomicBool],
    /// The next task whose partial is to be added into task 0's.
    next: Mutex<usize>,
    _partials: PhantomData<&'a mut [f32]>,
}

// SAFETY: the raw pointer is only dereferenced as `run` and `add_ready` describe: disjoint
// partials, each written by its own task until that task's release store to `done`, and read
// and added (into task 0's, finished too) only under the `next` lock after an acquire load of
// its flag.
unsafe impl Send for PartialFold<'_> {}
unsafe impl Sync for PartialFold<'_> {}

impl<'a> PartialFold<'a> {
    /// `tasks` partials of `size` values in `partials`, with `done` (at least `tasks` flags).
    pub(super) fn new(partials: &'a mut [f32], (tasks, size): (usize, usize), done: &'a TaskFlags) -> Self {
        assert!(partials.len() >= tasks * size && done.0.len() >= tasks && tasks > 0);
        done.0[..tasks].iter().for_each(|flag| flag.store(false, Ordering::Relaxed));
        PartialFold {
            partials: partials.as_mut_ptr(),
            size,
            tasks,
            eager: size * size_of::<f32>() <= EAGER_PARTIAL_BYTES,
            done: &done.0[..tasks],
            next: Mutex::new(0),
            _partials: PhantomData,
        }
    }

    /// Runs task `task` with its partial (`f` writes it), then adds every partial that is ready,
    /// in order. Each task must run exactly once.
    pub(super) fn run(&self, task: usize, f: impl FnOnce(&mut [f32])) {
        assert!(task < self.tasks);
        // SAFETY: task `task`'s partial is its own range, disjoint from every other task's;
        // nothing else reads or writes it before the release store below (the fold reads a
        // partial only after an acquire load sees its flag), and `f` cannot keep the slice.
        let partial = unsafe { std::slice::from_raw_parts_mut(self.partials.add(task * self.size), self.size) };
        f(partial);
        self.done[task].store(true, Ordering::Release);
        if self.eager {
            self.add_ready(false);
        }
    }

    /// Adds into task 0's partial every partial that is ready, in order. Unless `wait`, gives up
    /// when another thread is adding (it or the last call sees the flags set meanwhile).
    fn add_ready(&self, wait: bool) {
        loop {
            let mut next = match if wait { Ok(self.next.lock()) } else { self.next.try_lock().map(Ok) } {
                Ok(Ok(guard)) => guard,
                Ok(Err(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => return,
            };
            while *next < self.tasks && self.done[*next].load(Ordering::Acquire) {
                if *next > 0 {
                    // SAFETY: tasks 0 and `next` have finished (acquire loads of their flags
                    // saw the stores that followed their last writes), so no task touches
                    // either partial any more, and the lock makes this thread the only one
                    // reading or writing them.
                    let (sum, partial) = unsafe {
                        let sum = std::slice::from_raw_parts_mut(self.partials, self.size);
                        (sum, std::slice::from_raw_parts(self.partials.add(*next * self.size), self.size))
                    };
                    simd!(V => zip_map_inplace::<V>(sum, partial, #[inline(always)] |acc, v| acc + v));
                }
                *next += 1;
            }
            let next = *next;
            // A task that finished after the check above and found the lock taken left its
            // partial to us: look once more after letting go.
            if !(next < self.tasks && self.done[next].load(Ordering::Acquire)) {
                return;
            }
        }
    }

    /// Once every task has run: the partials still to be added, as `(tasks, values)`: all of
    /// them unless they were added as the tasks finished, else only the sum (task 0's).
    pub(super) fn finish(self) -> (usize, &'a [f32]) {
        assert!(self.done.iter().all(|flag| flag.load(Ordering::Acquire)), "every task runs before the sum");
        let tasks = if self.eager {
            self.add_ready(true);
            1
        } else {
            self.tasks
        };
        // SAFETY: every task has finished (acquire loads above saw their flags) and every
        // addition has been made; `self` is consumed, so nothing writes the partials during `'a`.
        (tasks, unsafe { std::slice::from_raw_parts(self.partials, tasks * self.size) })
    }
}

/// One backward task's part of the buffers.
pub(super) struct BackwardShare<'a> {
    /// Its panels of exponentials (or gradient).
    pub(super) panels: &'a mut [f32],
    /// Their statistics, panel-major.
    pub(super) stats: &'a mut [PanelRow],
    /// Its partial `dhs`, laid out as [`PartialLayout`] says.
    pub(super) partial: &'a mut [f32],
    /// Room for one panel of `W`.
    pub(super) weight_copy: &'a mut [f32],
    /// Its columns of `db` (storing gradients) or of `b` (SGD).
    pub(super) bias_out: &'a mut [f32],
}

/// How the panels are grouped into tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TaskLayout {
    /// Columns per task (whole panels; the last task may have fewer).
    pub(super) cols_per_task: usize,
    /// Number of tasks.
    pub(super) tasks: usize,
}

impl TaskLayout {
    /// Panels per task.
    pub(super) fn panels_per_task(&self) -> usize {
        self.cols_per_task / PANEL_COLS
    }
}

/// The grouping for `rows` rows of `hidden` hidden units and `classes` classes. A task holds
/// as many panels as its partial `dhs` (`rows x hidden`) is panels of logits
/// (`rows x PANEL_COLS`), so that the partials take no more memory than the logits and their
/// final sum costs at most one pass over that much memory; and enough panels that its
/// products are worth a hand-off to another thread ([`PARALLEL_MIN_WORK`] multiply-adds).
/// The tasks are as many as that allows, at most one per panel: no cap tied to the machine,
/// and nothing tied to the thread count, so the order of every sum is fixed by the shape alone.
pub(super) fn task_layout(rows: usize, hidden: usize, classes: usize) -> TaskLayout {
    let panels = classes.div_ceil(PANEL_COLS).max(1);
    let panel_work = rows.saturating_mul(hidden).saturating_mul(PANEL_COLS).max(1);
    let panels_per_task = hidden.div_ceil(PANEL_COLS).max(PARALLEL_MIN_WORK.div_ceil(panel_work)).clamp(1, panels);
    TaskLayout { cols_per_task: panels_per_task * PANEL_COLS, tasks: panels.div_ceil(panels_per_task) }
}
