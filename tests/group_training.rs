//! Whole training runs in a group: threads as the members of a `Group` (what MPI processes are
//! in `tests/mpi.rs`), each training its rows of every window with `train_shared`, against one
//! model training the whole batch with `train`.
//!
//! The members add up their sums in another order than one model does, so figures agree to the
//! rounding of f32 sums: window losses and perplexities within 1e-5 relative, weights within
//! 1e-4 relative to their norm (the bounds of `tests/data_parallel.rs`, over a whole run here:
//! schedules, evaluation, save points, a stop and a resume). The members' weights are the same
//! bit for bit, and they make every decision together.

use rnnlm::files::corpus::Ids;
use rnnlm::model::share_rows;
use rnnlm::rng::Rng;
use rnnlm::train::{
    train, train_shared, EpochReport, Group, IterReport, Observer, RunState, Schedule, Stop, TrainError, TrainOptions,
};
use rnnlm::{Arch, Cell, Dims, Rnnlm, Softmax, Window};
use std::sync::{Arc, Barrier, Mutex};

const WINDOW: Window = Window { batch: 5, time: 4 };

/// Sums over the threads of a group, in member order, as an allreduce does.
struct Shared {
    slots: Mutex<Vec<Vec<f64>>>,
    barrier: Barrier,
}

struct ThreadGroup {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

impl ThreadGroup {
    fn all(size: usize) -> Vec<ThreadGroup> {
        let shared = Arc::new(Shared { slots: Mutex::new(vec![Vec::new(); size]), barrier: Barrier::new(size) });
        (0..size).map(|rank| ThreadGroup { rank, size, shared: Arc::clone(&shared) }).collect()
    }

    /// Sums `values` over the members, in member order.
    fn all_reduce(&self, values: &mut [f64]) {
        self.shared.slots.lock().unwrap()[self.rank] = values.to_vec();
        self.shared.barrier.wait();
        {
            let slots = self.shared.slots.lock().unwrap();
            for (i, value) in values.iter_mut().enumerate() {
                *value = slots[1..].iter().fold(slots[0][i], |sum, slot| sum + slot[i]);
            }
        }
        self.shared.barrier.wait();
    }
}

impl Group for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum(&mut self, values: &mut [f32]) {
        // Added in f32, member by member, as MPI adds f32s (the slots hold them exactly).
        self.shared.slots.lock().unwrap()[self.rank] = values.iter().map(|&v| v as f64).collect();
        self.shared.barrier.wait();
        {
            let slots = self.shared.slots.lock().unwrap();
            for (i, value) in values.iter_mut().enumerate() {
                *value = slots[1..].iter().fold(slots[0][i] as f32, |sum, slot| sum + slot[i] as f32);
            }
        }
        self.shared.barrier.wait();
    }

    fn sum_f64(&mut self, values: &mut [f64]) {
        self.all_reduce(values);
    }
}

/// What a run shows: every window's loss, every epoch, the last save point; it asks to stop
/// after window `stop_at`, if given.
#[derive(Default)]
struct Record {
    losses: Vec<f32>,
    epochs: Vec<EpochReport>,
    last_state: Option<RunState>,
    save_points: usize,
    stop_at: Option<usize>,
    windows: usize,
}

impl Observer for Record {
    fn on_iter(&mut self, report: &IterReport) {
        self.losses.push(report.loss);
        self.windows = report.iter;
    }
    fn on_epoch(&mut self, report: &EpochReport) {
        self.epochs.push(*report);
    }
    fn on_save_point(&mut self, state: &RunState) {
        self.last_state = Some(state.clone());
        self.save_points += 1;
    }
    fn stop_requested(&mut self) -> bool {
        self.stop_at.is_some_and(|n| self.windows >= n)
    }
}

fn arch() -> Arch {
    Arch {
        dims: Dims { vocab: 30, embed: 12, hidden: 12 },
        cell: Cell::Lstm,
        layers: 2,
        tied: false,
        output: Softmax::Full,
    }
}

/// A corpus with something to learn: a cycle of 30 ids, one in six replaced by noise.
fn corpus(len: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..len)
        .map(|i| if rng.next_u64().is_multiple_of(6) { (rng.next_u64() % 30) as u32 } else { (i % 30) as u32 })
        .collect()
}

fn options() -> TrainOptions {
    TrainOptions {
        clip: Some(0.5),
        schedule: Schedule::Step { from_epoch: 3, factor: 2.0 },
        keep_best: true,
        checkpoint_every: Some(7),
        ..TrainOptions::constant(4, 1.0)
    }
}

fn model(window: Window) -> Rnnlm {
    let mut model = Rnnlm::new(arch(), window, 3).unwrap();
    model.set_dropout(0.3, 9).unwrap();
    model
}

struct Outcome {
    record: Record,
    stop: Stop,
    params: Vec<f32>,
}

/// One model training the whole batch.
fn alone(options: &TrainOptions, stop_at: Option<usize>, resume: Option<RunState>) -> Outcome {
    let (train_ids, valid_ids) = (corpus(1500, 1), corpus(300, 2));
    let mut model = model(WINDOW);
    let mut record = Record { stop_at, ..Record::default() };
    let summary = train(&mut model, Ids::U32(&train_ids), Some(Ids::U32(&valid_ids)), options, &mut record, resume);
    Outcome { record, stop: summary.unwrap().stop, params: model.into_params() }
}

/// A group of `size` threads; member `stopper` asks to stop after window `stop_at`.
fn group(
    size: usize,
    options: &TrainOptions,
    stop_at: Option<(usize, usize)>,
    resume: Option<RunState>,
) -> Vec<Outcome> {
    let (train_ids, valid_ids) = (corpus(1500, 1), corpus(300, 2));
    std::thread::scope(|scope| {
        let handles: Vec<_> = ThreadGroup::all(size)
            .into_iter()
            .map(|mut member| {
                let (train_ids, valid_ids, resume) = (&train_ids, &valid_ids, resume.clone());
                scope.spawn(move || {
                    let rows = share_rows(WINDOW.batch, size, member.rank);
                    let mut model = model(Window { batch: rows.len(), time: WINDOW.time });
                    let stop_at = stop_at.filter(|&(stopper, _)| stopper == member.rank).map(|(_, at)| at);
                    let mut record = Record { stop_at, ..Record::default() };
                    let (train_ids, valid_ids) = (Ids::U32(train_ids), Some(Ids::U32(valid_ids)));
                    let summary =
                        train_shared(&mut model, &mut member, train_ids, valid_ids, options, &mut record, resume);
                    Outcome { record, stop: summary.unwrap().stop, params: model.into_params() }
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    })
}

fn relative(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

fn normwise(a: &[f32], b: &[f32]) -> f64 {
    let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| (x as f64).powi(2)).sum::<f64>().sqrt();
    norm(&mut a.iter().zip(b).map(|(x, y)| x - y)) / norm(&mut b.iter().copied())
}

/// The group's run is the one model's: the same windows, epochs and decisions, the same
/// figures to the rounding of sums, and one set of weights on every member.
fn check_same_run(one: &Outcome, members: &[Outcome], what: &str) {
    for (rank, member) in members.iter().enumerate() {
        let (r, o) = (&member.record, &one.record);
        assert_eq!(member.stop, one.stop, "{what}, member {rank}");
        assert_eq!((r.losses.len(), r.epochs.len(), r.save_points), (o.losses.len(), o.epochs.len(), o.save_points));
        for (window, (a, b)) in r.losses.iter().zip(&o.losses).enumerate() {
            assert!(relative(*a as f64, *b as f64) <= 1e-5, "{what}, member {rank}, window {window}: {a} against {b}");
        }
        for (a, b) in r.epochs.iter().zip(&o.epochs) {
            assert!(relative(a.train_ppl, b.train_ppl) <= 1e-5, "{what}: {a:?} against {b:?}");
            assert!(relative(a.valid_ppl.unwrap(), b.valid_ppl.unwrap()) <= 1e-5, "{what}: {a:?} against {b:?}");
            assert_eq!((a.iters, a.lr), (b.iters, b.lr), "{what}: the schedule decided otherwise");
        }
        assert_eq!(member.params, members[0].params, "{what}: member {rank}'s weights drifted apart");
        let (state, one_state) = (r.last_state.as_ref().unwrap(), o.last_state.as_ref().unwrap());
        assert_eq!(state.now.progress.iter, one_state.now.progress.iter);
        assert_eq!(state.now.model.state.len(), one_state.now.model.state.len(), "the whole batch's state is saved");
        assert!(normwise(&state.now.model.state, &one_state.now.model.state) <= 1e-4, "{what}: carried state");
    }
    let apart = normwise(&members[0].params, &one.params);
    assert!(apart <= 1e-4, "{what}: weights {apart:e} apart");
}

#[test]
fn a_group_of_two_or_three_trains_as_one_model_does() {
    let one = alone(&options(), None, None);
    assert!(one.record.epochs.len() >= 2 && one.record.save_points >= 4);
    assert!(one.record.epochs.windows(2).any(|pair| pair[1].lr < pair[0].lr), "the schedule is exercised");
    for size in [2, 3] {
        check_same_run(&one, &group(size, &options(), None, None), &format!("{size} members"));
    }
}

#[test]
fn a_stop_asked_by_one_member_stops_every_member_at_that_window_and_the_state_resumes_anywhere() {
    let whole = alone(&options(), None, None);
    let one = alone(&options(), Some(10), None);
    let members = group(3, &options(), Some((1, 10)), None);
    check_same_run(&one, &members, "stopped by member 1");
    assert_eq!(members[0].stop, Stop::Interrupted);
    assert_eq!(members[0].record.windows, 10);

    // Saved by the group of three, resumed by one model; saved by one, resumed by two.
    let state = members[0].record.last_state.clone();
    let resumed = alone(&options(), None, state);
    let resumed_in_two = group(2, &options(), None, one.record.last_state.clone());
    for (what, params) in [("three, then one", &resumed.params), ("one, then two", &resumed_in_two[0].params)] {
        let apart = normwise(params, &whole.params);
        assert!(apart <= 1e-4, "{what}: weights {apart:e} from the uninterrupted run's");
    }
    assert_eq!(resumed.record.epochs.last().unwrap().lr, whole.record.epochs.last().unwrap().lr);
}

#[test]
fn members_whose_windows_do_not_hold_their_rows_all_refuse_before_training() {
    let train_ids = corpus(1500, 1);
    let errors: Vec<TrainError> = std::thread::scope(|scope| {
        let handles: Vec<_> = ThreadGroup::all(2)
            .into_iter()
            .map(|mut member| {
                let train_ids = &train_ids;
                scope.spawn(move || {
                    // Windows of 3 and 1 rows: a batch of 4, of which each member's share is 2.
                    let rows = if member.rank == 0 { 3 } else { 1 };
                    let mut model = model(Window { batch: rows, time: WINDOW.time });
                    let mut record = Record::default();
                    let options = TrainOptions::constant(1, 1.0);
                    let ids = Ids::U32(train_ids);
                    train_shared(&mut model, &mut member, ids, None, &options, &mut record, None).unwrap_err()
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    for error in errors {
        assert!(error.to_string().contains("every member's window must hold its rows"), "{error}");
    }
}
