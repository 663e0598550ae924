//! Training steps, data-parallel over fixed micro-batches.
//!
//! Each batch is cut into micro-batches of `micro_batch` images (the last
//! may be shorter). [`DataParallel::run`] runs a run of batches (the
//! trainer's epoch) as one phase of a [`Team`]. Each micro-batch runs on a
//! replica of the network: the replica fills its input from the data set
//! (the u8 pixels are converted there, by the thread that uses them), and
//! runs forward, taking each layer's weights for the step as the layer
//! starts, then loss and backward. In the same
//! phase the team updates the master's parameters, in blocks, from the last
//! layer's to the first's: a block starts as soon as every micro-batch's
//! backward pass has left its layer, sums their gradients in micro-batch
//! order, weighted by their share of the batch, into the master's gradient,
//! and the optimizer updates it at once, while it is in cache. fc1 and fc2
//! hold 97% of the seed network's parameters and back-propagation leaves
//! them first, so most of the update runs while the last micro-batches are
//! still in their convolutions' backward passes. The next step's
//! micro-batches start as soon as the step's last block is claimed, each
//! layer waiting for its new weights: a thread whose partner is still
//! updating a block runs the next batch's first layers meanwhile.
//!
//! A thread that has nothing to do while a micro-batch still runs (so that
//! the step cannot end) checks whether the thread leading it (running it,
//! or the last to hand over one of its layers) is descheduled: its CPU
//! clock stands still. If it is, the waiting thread takes the lead and runs
//! the same micro-batch again on its own replica. Each layer's gradients
//! are handed over by whichever copy gets there first, and the step goes on
//! without waiting for the others. A copy that finds a layer handed over
//! that it did not know of is behind: it stops, unless the leader's thread
//! stands still, and then it takes the lead and goes on from where it is,
//! running the layers already handed over without handing them over again
//! (the layers before need their input gradients). Why: on a machine
//! shared with other busy processes, a thread is often descheduled for a
//! whole time slice (4 ms at 250 Hz) in the middle of a micro-batch, and
//! synchronous SGD has nothing else for the other thread to do; it would
//! spin through its own slice. Because the copies are of the same
//! micro-batch, from the same weights, by the same kernels, they are
//! bit-identical, and it does not matter which one hands a layer over.
//!
//! A waiting thread also runs a micro-batch again when its thread is
//! running but slower: each thread times its copies (CPU time), and a copy
//! that is due to end later than one started now would gets a chaser,
//! which does not stop when behind but passes the layers already handed
//! over until it overtakes. Why: on a VM one CPU may run at half the
//! other's speed for seconds, unseen as steal; the step then waited for the
//! slow thread's last micro-batch, about a third of each step.
//!
//! Why not one network with parallel kernels only: a step then has about 30
//! parallel loops, each ending in a join. On a shared machine, a worker is
//! often descheduled while it holds a piece of a loop, and the join waits a
//! whole time slice for it: the epoch took 4-5x its quiet time beside two
//! busy loops. Here the threads meet once per step, and they wait for each
//! other awake (see [`crate::team`] for why). Nothing runs on one thread
//! alone: a serial batch fill, gradient sum and finiteness scan cost 11% of
//! a 2-thread step.
//!
//! The cut depends only on the batch and micro-batch sizes, and each
//! micro-batch's gradient is computed by the same kernels in the same order
//! wherever it runs, so the results are bit-identical on any number of
//! threads, and to [`DataParallel::forward_backward`] (the gradients alone)
//! followed by a plain optimizer step.

use std::cell::Cell;
use std::ops::{ControlFlow, Range};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use optim::{Optimizer, Update};
use tensor::{Rng, Tensor};

use layers::{one_hot_into, LayerError, Loss, Network, Param};

use crate::eval::count_correct;
use crate::team::Team;

/// A batch that can fill any range of its examples: each micro-batch fills
/// its own input, on the thread that runs it.
pub trait BatchSource: Sync {
    /// Examples in the batch.
    fn len(&self) -> usize;
    /// Whether the batch has no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The shape of one example (channels x rows x cols).
    fn example_shape(&self) -> Vec<usize>;
    /// Writes the examples `range` into `images` (one after another, each as
    /// [`BatchSource::example_shape`] says) and their labels into `labels`.
    fn fill(&self, range: Range<usize>, images: &mut [f32], labels: &mut [usize]);
}

impl<T: BatchSource + ?Sized> BatchSource for &T {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn example_shape(&self) -> Vec<usize> {
        (**self).example_shape()
    }
    fn fill(&self, range: Range<usize>, images: &mut [f32], labels: &mut [usize]) {
        (**self).fill(range, images, labels)
    }
}

/// A batch already in memory as an N x ... tensor and N labels.
pub struct TensorBatch<'a> {
    /// The examples.
    pub images: &'a Tensor,
    /// Their labels.
    pub labels: &'a [usize],
}

impl BatchSource for TensorBatch<'_> {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn example_shape(&self) -> Vec<usize> {
        self.images.shape()[1..].to_vec()
    }
    fn fill(&self, range: Range<usize>, images: &mut [f32], labels: &mut [usize]) {
        let pixels = self.images.as_slice().expect("batches are contiguous");
        let per = pixels.len() / self.images.shape()[0].max(1);
        images.copy_from_slice(&pixels[range.start * per..range.end * per]);
        labels.copy_from_slice(&self.labels[range]);
    }
}

/// A batch's mean loss and the number of its examples classified correctly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepResult {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Examples whose largest output is their label.
    pub correct: usize,
}

/// One replica: a copy of the network and the micro-batch it runs.
struct Replica {
    net: Network,
    input: Tensor,
    labels: Vec<usize>,
    target: Tensor,
    grad: Tensor,
    /// Per parameter: the tag of the step whose weights `net` holds (0:
    /// none). A replica runs several micro-batches of a step, more so on
    /// a busy machine, where one thread may run them all; it copies each
    /// layer's weights (fc1's: 0.8 MB) once per step, not once per copy.
    holds: Vec<usize>,
}

impl Replica {
    /// Forward and loss for the examples `range` of `batch`; returns the
    /// micro-batch's mean loss and correct count, and leaves
    /// d(loss)/d(logits) in `self.grad` for the backward pass. Before each
    /// layer runs, `weights(taken, params)` writes the values of its
    /// parameters (indices `taken` in [`Network::params`] order), and may
    /// stop the pass (then `None`).
    fn forward(
        &mut self,
        batch: &dyn BatchSource,
        range: Range<usize>,
        classes: usize,
        loss_fn: &Loss,
        weights: &mut HandOver,
    ) -> Result<Option<(f64, usize)>, LayerError> {
        let example = batch.example_shape();
        let shape_fits = self.input.shape().first() == Some(&range.len())
            && self.input.shape()[1..] == example[..];
        if !shape_fits {
            let mut shape = Vec::with_capacity(example.len() + 1);
            shape.push(range.len());
            shape.extend_from_slice(&example);
            self.input = Tensor::zeros(shape);
        }
        self.labels.resize(range.len(), 0);
        batch.fill(
            range,
            self.input.as_slice_mut().expect("contiguous"),
            &mut self.labels,
        );
        let mut next = 0;
        let before = &mut |_, params: &mut [&mut Param]| {
            let taken = next..next + params.len();
            next = taken.end;
            weights(taken, params)
        };
        let Some(logits) = self.net.forward_each(&self.input, before)? else {
            return Ok(None);
        };
        one_hot_into(&self.labels, classes, &mut self.target);
        let loss = loss_fn.forward_backward(logits, &self.target, &mut self.grad)?;
        Ok(Some((loss, count_correct(logits, &self.labels))))
    }

    /// The backward pass; `hand_over(taken, params)` is called as each
    /// layer's part ends, with the layer's parameters and their indices in
    /// [`Network::params`] order (see [`Network::backward_each`]), and may
    /// stop it. Backward hands the layers over last first, so each layer's
    /// parameters are the ones just before those already handed over: no
    /// table of owners is needed.
    fn backward(&mut self, hand_over: &mut HandOver) -> Result<(), LayerError> {
        let mut taken_from = self.net.params().len();
        self.net.backward_each(&self.grad, &mut |_, params| {
            let taken = taken_from - params.len()..taken_from;
            taken_from = taken.start;
            hand_over(taken, params)
        })
    }
}

/// Writes one layer's weights before the forward pass enters it, or takes
/// its gradients as back-propagation leaves it (parameters `taken`, in
/// [`Network::params`] order); may stop the pass.
type HandOver<'a> = dyn FnMut(Range<usize>, &mut [&mut Param]) -> ControlFlow<()> + 'a;

/// Swaps one layer's gradients (parameters `taken`) with one micro-batch's
/// slots: a hand-over without a copy.
fn swap_into(slots: &[Mutex<Tensor>], taken: Range<usize>, params: &mut [&mut Param]) {
    for (p, j) in params.iter_mut().zip(taken) {
        let mut slot = slots[j].lock().expect("no task panicked");
        std::mem::swap(&mut p.grad, &mut slot);
    }
}

/// What became of micro-batch slot `k` in the steps of the runs so far.
/// Steps carry tags, numbered from 1 over the life of the
/// [`DataParallel`], so that 0 means "never" and a stale copy, from a step
/// already over, loses every claim.
struct Flight {
    /// The tag of the step whose first copy runs now (or ran last).
    started: AtomicUsize,
    /// The CPU clock of the thread of the leading copy: the one that
    /// started or took over last, or handed over a layer last. A thread
    /// that finds it standing still takes the lead by swapping in its own.
    clock: AtomicI64,
    /// How far the copies have got: `tag << 32 | h` once `h` parameters,
    /// counted from the last, have been handed over in step `tag`. A copy
    /// claims a layer by raising it to the layer's position. A copy that
    /// finds it there or beyond, or finds that it moved since the copy last
    /// looked, is behind: it stops, unless the leading copy's thread stands
    /// still, and then it takes the lead from where it is.
    frontier: AtomicU64,
    /// The earliest the first copy should end, from its thread's recent
    /// speed ([`clock::now`] nanoseconds; 0: not known).
    due: AtomicU64,
    /// The tag of the last step in which a thread ran a copy because the
    /// first copy's thread was slower (at most one per step).
    sped_up: AtomicUsize,
    /// The micro-batch's mean loss and correct count, from the copy that
    /// handed over its last layer.
    result: Mutex<(f64, usize)>,
}

/// Which copy of a micro-batch a thread runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CopyKind {
    /// The first, run as the step's task.
    First,
    /// A backup of a copy whose thread stands still. When behind, it stops,
    /// unless the leading copy's thread stands still too.
    Backup,
    /// A backup of a copy whose thread runs slower than this one. When
    /// behind, it goes on, passing the layers already handed over, until it
    /// overtakes the slower copy (which then stops) or the micro-batch is
    /// handed over whole.
    Chase,
}

/// Copies of micro-batches run because the thread running one was
/// descheduled (see the module's comment), counted over the runs so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backups {
    /// Backup copies started by a thread that had nothing else to do.
    pub started: usize,
    /// Backups that handed over their micro-batch's first layer, so
    /// finished it.
    pub won: usize,
    /// Times a copy that was behind took the lead, instead of stopping,
    /// because the leading copy's thread stood still.
    pub taken_over: usize,
    /// Backups (counted in `started`) of a micro-batch whose thread was
    /// running, but slower: the backup was due to end first.
    pub sped_up: usize,
}

/// Replicas of a network, for [`DataParallel::run`].
pub struct DataParallel {
    micro_batch: usize,
    /// Replicas, one per team thread: each thread runs one copy of a
    /// micro-batch at a time, on whichever replica is free.
    replicas: Vec<Mutex<Replica>>,
    /// `gradients[k][j]`: micro-batch k's gradient of parameter j. Each is
    /// swapped with a replica's own gradient buffer as soon as its layer's
    /// backward part is done (no copy), so that the update can read it
    /// while the replica runs on.
    gradients: Vec<Vec<Mutex<Tensor>>>,
    flights: Vec<Flight>,
    /// The weights that a step's micro-batches start from: step `s` of a
    /// run reads `weights[s % 2]`, parameter by parameter, and its update
    /// writes `weights[(s + 1) % 2]`, block by block, for the next. Copies
    /// never read the master, so a stale copy cannot see a half-updated
    /// parameter; whatever it reads, its result is thrown away.
    weights: [Vec<Mutex<Vec<f32>>>; 2],
    /// Steps run so far: the tag of a run's step `s` is `tags + s + 1`.
    tags: usize,
    /// Backup copies started so far, and how they went.
    backups: Backups,
    /// The last batch's size: it says how many micro-batches there were,
    /// and their weights in the sum.
    batch: usize,
    /// Tests: copies that stand still in their backward pass.
    #[cfg(test)]
    stall_in_backward: StallInBackward,
    /// Tests: a thread whose copies run slower.
    #[cfg(test)]
    slow_thread: SlowThread,
}

/// Tests: which copies of micro-batch slot `k` stand still, in every step,
/// after their first hand-over, as threads descheduled in their backward
/// pass would; each for 2 s at most.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default)]
enum StallInBackward {
    #[default]
    None,
    /// The first copy, until the micro-batch is handed over whole.
    Original(usize),
    /// The first copy, until another copy has handed over a layer; then
    /// that copy, until the micro-batch is handed over whole.
    Both(usize),
    /// The first copy, running (its clock moves) as on a slower CPU:
    /// before its first hand-over until a chaser has started, and after it
    /// until the micro-batch is handed over whole. Idle threads chase it
    /// whatever the times.
    Busy(usize),
}

#[cfg(test)]
impl StallInBackward {
    /// Called before a copy of slot `k` hands over a layer, in step `tag`,
    /// for its first hand-over if `first`.
    fn before_hand_over(
        self,
        k: usize,
        backup: bool,
        first: bool,
        sped_up: &AtomicUsize,
        tag: usize,
    ) {
        if matches!(self, StallInBackward::Busy(s) if s == k) && first && !backup {
            let deadline = Instant::now() + Duration::from_secs(2);
            while sped_up.load(Acquire) != tag && Instant::now() < deadline {
                std::hint::spin_loop();
            }
            // Long enough for the chaser to have looked at the frontier,
            // short against its forward pass.
            let since = Instant::now();
            while since.elapsed() < Duration::from_micros(200) {
                std::hint::spin_loop();
            }
        }
    }

    /// Whether idle threads chase slot `k` whatever the times.
    fn chase(self, k: usize) -> bool {
        matches!(self, StallInBackward::Busy(s) if s == k)
    }

    /// Called after a copy of slot `k` hands over a layer, at frontier
    /// position `here`, for its first hand-over if `first`.
    fn after_hand_over(
        self,
        k: usize,
        backup: bool,
        first: bool,
        frontier: &AtomicU64,
        here: u64,
        done: u64,
    ) {
        let until = match (self, backup) {
            _ if !first => return,
            (StallInBackward::Original(s), false) if s == k => done,
            (StallInBackward::Both(s), false) if s == k => here + 1,
            (StallInBackward::Both(s), true) if s == k => done,
            (StallInBackward::Busy(s), false) if s == k => done,
            _ => return,
        };
        let busy = matches!(self, StallInBackward::Busy(_));
        let deadline = Instant::now() + Duration::from_secs(2);
        while frontier.load(Acquire) < until && Instant::now() < deadline {
            match busy {
                true => std::hint::spin_loop(),
                false => std::thread::sleep(Duration::from_micros(100)),
            }
        }
    }
}

/// Tests: the team thread with this rayon index, if any, runs the first
/// copies of micro-batches `factor + 1` times slower: before each layer of
/// the forward pass and after each hand-over of the backward pass, it
/// burns `factor` times the CPU time since the last such point, as a
/// thread on a slower CPU would.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default)]
struct SlowThread(Option<(usize, u32)>);

#[cfg(test)]
impl SlowThread {
    fn burn(self, backup: bool, last: &Cell<Instant>) {
        let Some((index, factor)) = self.0 else {
            return;
        };
        if backup || rayon::current_thread_index() != Some(index) {
            return;
        }
        let since = Instant::now();
        let extra = (since - last.get()) * factor;
        while since.elapsed() < extra {
            std::hint::spin_loop();
        }
        last.set(Instant::now());
    }
}

/// How long a thread's CPU clock must stand still before a waiting thread
/// runs its micro-batch again: long enough that a thread that is running
/// shows progress, short against a time slice.
const STALL: Duration = Duration::from_micros(50);

/// What a waiting thread looked at: a step's tag, a micro-batch slot, and
/// the CPU clock of the thread leading it.
type Look = (usize, usize, i64);

thread_local! {
    /// The waiting thread's last look, the CPU time it read, and when.
    static LAST_LOOK: Cell<Option<(Look, u64, Instant)>> = const { Cell::new(None) };
    /// The CPU nanoseconds this thread's recent copies took from start to
    /// their last hand-over, less their waits for weights (a running mean;
    /// 0: none yet). Team threads are pinned, so this is their CPU's speed.
    static COPY_CPU: Cell<u64> = const { Cell::new(0) };
}

/// Wall-clock nanoseconds, for comparing when copies on different threads
/// are due to end.
mod clock {
    use std::sync::OnceLock;
    use std::time::Instant;

    /// Nanoseconds since the first call in this process.
    pub fn now() -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Everything a run's tasks share.
struct Run<'a, B> {
    batches: &'a [B],
    /// Micro-batches per step.
    counts: Vec<usize>,
    /// Task number of each step's first task, and one past the last.
    starts: Vec<usize>,
    classes: usize,
    loss_fn: &'a Loss,
    micro_batch: usize,
    replicas: &'a [Mutex<Replica>],
    gradients: &'a [Vec<Mutex<Tensor>>],
    flights: &'a [Flight],
    weights: &'a [Vec<Mutex<Vec<f32>>>; 2],
    tags: usize,
    update: Update<'a>,
    blocks: usize,
    /// The step whose update runs (or ran last).
    step: AtomicUsize,
    /// Per parameter: the tag of the latest step whose weights for it are
    /// in `weights`. A step's micro-batches start once the step before has
    /// claimed its last block, and wait, layer by layer, for its weights:
    /// a thread whose partner is descheduled in the middle of fc1's update
    /// runs the next batch's convolutions meanwhile.
    weights_ready: Vec<AtomicUsize>,
    /// Per parameter: its blocks, and those not yet updated this step.
    blocks_of: Vec<usize>,
    blocks_left: Vec<AtomicUsize>,
    /// Micro-batches of the current step that have handed over parameter j.
    param_done: Vec<AtomicUsize>,
    /// Blocks of the current step that are updated.
    blocks_done: AtomicUsize,
    /// A micro-batch failed or panicked: every task left is skipped.
    failed: AtomicBool,
    error: Mutex<Option<LayerError>>,
    /// `on_step` asked to stop: every task left is skipped.
    stopped: AtomicBool,
    /// Backup copies started, those that handed over a micro-batch's first
    /// layer (so finished it), and the times a copy that was behind took
    /// the lead from one whose thread stood still.
    backups: AtomicUsize,
    backups_won: AtomicUsize,
    taken_over: AtomicUsize,
    sped_up: AtomicUsize,
    on_step: &'a (dyn Fn(usize, StepResult, Option<String>) -> ControlFlow<()> + Sync),
    #[cfg(test)]
    stall_in_backward: StallInBackward,
    #[cfg(test)]
    slow_thread: SlowThread,
}

impl<B: BatchSource> Run<'_, B> {
    fn tag(&self, s: usize) -> usize {
        self.tags + s + 1
    }

    fn over(&self) -> bool {
        self.failed.load(Acquire) || self.stopped.load(Acquire)
    }

    /// Task `i`'s step, and its place in the step: micro-batch `k` for
    /// `k < counts[s]`, then the blocks.
    fn locate(&self, i: usize) -> (usize, usize) {
        let s = self.starts.partition_point(|&start| start <= i) - 1;
        (s, i - self.starts[s])
    }

    /// The update block of a step's task `at` (after its micro-batches):
    /// last layer's first.
    fn block(&self, s: usize, at: usize) -> usize {
        self.blocks - 1 - (at - self.counts[s])
    }

    fn ready(&self, i: usize) -> bool {
        if self.over() {
            return true;
        }
        let (s, at) = self.locate(i);
        // A micro-batch is claimed only after every block of the step
        // before: it may start, and waits inside for each layer's weights.
        if at < self.counts[s] {
            return true;
        }
        self.step.load(Acquire) >= s
            && self.param_done[self.update.param_of(self.block(s, at))].load(Acquire)
                == self.counts[s]
    }

    fn task(&self, i: usize) {
        if self.over() {
            return;
        }
        let (s, at) = self.locate(i);
        if at < self.counts[s] {
            let flight = &self.flights[at];
            flight.clock.store(stall::this_thread_clock(), Relaxed);
            // The earliest this copy should end: its thread's copies vary
            // by a few percent, and a backup that loses is wasted.
            let due = match COPY_CPU.get() {
                0 => 0,
                cpu => clock::now() + cpu - cpu / 8,
            };
            flight.due.store(due, Relaxed);
            flight.started.store(self.tag(s), Release);
            self.copy(s, at, CopyKind::First);
        } else {
            // A panic here (in `on_step`, say) must stop the run, not leave
            // the other threads waiting for a step that never ends.
            let failing = SetOnUnwind(&self.failed);
            self.update_block(s, self.block(s, at));
            std::mem::forget(failing);
        }
    }

    /// Runs micro-batch `k` of step `s` on a free replica, handing over each
    /// layer's gradients unless another copy did first.
    fn copy(&self, s: usize, k: usize, kind: CopyKind) {
        let backup = kind != CopyKind::First;
        let failing = SetOnUnwind(&self.failed);
        let tag = self.tag(s);
        let flight = &self.flights[k];
        let batch = &self.batches[s];
        let range = micro_range(k, self.micro_batch, batch.len());
        let mut replica = free_replica(self.replicas);
        let weights = &self.weights[s % 2];
        let params = self.param_done.len();
        let position = |handed: usize| (tag as u64) << 32 | handed as u64;
        // How far the copies had got when this one started, and then as far
        // as this one has handed over. A backup of a copy descheduled in its
        // backward pass starts past position 0: it runs the layers already
        // handed over without handing them over again (the layers before
        // need their input gradients), and takes over from there. A copy is
        // behind, and stops, once another has handed over a layer that this
        // one did not know of.
        let known = Cell::new(flight.frontier.load(Acquire).max(position(0)));
        let me = stall::this_thread_clock();
        // This copy's CPU time, less the waits for weights, tells this
        // thread's speed (see `COPY_CPU`).
        let cpu_at_start = stall::cpu_time(me);
        let waited = Cell::new(0);
        #[cfg(test)]
        let last = Cell::new(Instant::now());
        let behind = || {
            let frontier = flight.frontier.load(Acquire);
            // A copy of a step that is over (the next one has started
            // handing over) never leads: it would lead nothing.
            if self.over() || frontier >= position(params) || frontier >> 32 > tag as u64 {
                return true;
            }
            if frontier <= known.get() || kind == CopyKind::Chase {
                return false;
            }
            if !take_the_lead(flight, me) {
                return true;
            }
            known.set(flight.frontier.load(Acquire));
            self.taken_over.fetch_add(1, Relaxed);
            false
        };
        let go_on = || match behind() {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        };
        let mut holds = std::mem::take(&mut replica.holds);
        holds.resize(params, 0);
        let result = replica
            .forward(
                batch,
                range,
                self.classes,
                self.loss_fn,
                &mut |taken, layer_params| {
                    #[cfg(test)]
                    self.slow_thread.burn(backup, &last);
                    for (p, j) in layer_params.iter_mut().zip(taken) {
                        if holds[j] == tag {
                            continue;
                        }
                        if self.weights_ready[j].load(Acquire) < tag {
                            let since = clock::now();
                            while self.weights_ready[j].load(Acquire) < tag {
                                if behind() {
                                    return ControlFlow::Break(());
                                }
                                std::hint::spin_loop();
                            }
                            waited.set(waited.get() + clock::now() - since);
                        }
                        p.value
                            .as_slice_mut()
                            .expect("parameters are contiguous")
                            .copy_from_slice(&weights[j].lock().expect("no task panicked"));
                        holds[j] = tag;
                    }
                    #[cfg(test)]
                    last.set(Instant::now());
                    go_on()
                },
            )
            .and_then(|result| {
                let Some(result) = result else {
                    return Ok(());
                };
                #[cfg(test)]
                let mut handed = false;
                replica.backward(&mut |taken, layer_params| {
                    let here = position(params - taken.start);
                    if layer_params.is_empty() || here <= known.get() {
                        return go_on();
                    }
                    #[cfg(test)]
                    self.stall_in_backward.before_hand_over(
                        k,
                        backup,
                        !handed,
                        &flight.sped_up,
                        tag,
                    );
                    if flight.frontier.fetch_max(here, AcqRel) >= here {
                        // Another copy handed this layer over first.
                        return go_on();
                    }
                    known.set(here);
                    flight.clock.store(me, Release);
                    if taken.end == params {
                        *flight.result.lock().expect("no task panicked") = result;
                    }
                    swap_into(&self.gradients[k], taken.clone(), layer_params);
                    for j in taken.clone() {
                        self.param_done[j].fetch_add(1, Release);
                    }
                    if taken.start == 0 {
                        if backup {
                            self.backups_won.fetch_add(1, Relaxed);
                        }
                        if let (Some(start), Some(end)) = (cpu_at_start, stall::cpu_time(me)) {
                            let cpu = end.saturating_sub(start + waited.get());
                            COPY_CPU.set(match COPY_CPU.get() {
                                0 => cpu,
                                was => (3 * was + cpu) / 4,
                            });
                        }
                    }
                    #[cfg(test)]
                    {
                        self.stall_in_backward.after_hand_over(
                            k,
                            backup,
                            !handed,
                            &flight.frontier,
                            here,
                            position(params),
                        );
                        handed = true;
                        self.slow_thread.burn(backup, &last);
                    }
                    ControlFlow::Continue(())
                })
            });
        replica.holds = holds;
        if let Err(e) = result {
            self.error
                .lock()
                .expect("no task panicked")
                .get_or_insert(e);
            self.failed.store(true, Release);
        }
        std::mem::forget(failing);
    }

    /// Sums block `b`'s gradient over step `s`'s micro-batches, updates it,
    /// copies its new values out for the next step, and, if it was the
    /// step's last block, ends the step.
    fn update_block(&self, s: usize, b: usize) {
        let n = self.batches[s].len();
        let gradients = &self.gradients[..self.counts[s]];
        self.update.update_block(b, &|j, at, dst| {
            sum_block(gradients, self.micro_batch, n, j, at, dst)
        });
        let next = &self.weights[(s + 1) % 2];
        self.update.with_block_values(b, &mut |j, at, values| {
            next[j].lock().expect("no task panicked")[at..at + values.len()]
                .copy_from_slice(values);
        });
        if self.blocks_done.fetch_add(1, AcqRel) + 1 == self.blocks {
            self.end_step(s);
        }
        // After `end_step` if this was the step's last block: the next
        // step's micro-batches cannot pass this layer before it is over,
        // so no block of the next step starts before it either.
        let j = self.update.param_of(b);
        if self.blocks_left[j].fetch_sub(1, AcqRel) == 1 {
            self.blocks_left[j].store(self.blocks_of[j], Relaxed);
            self.weights_ready[j].store(self.tag(s + 1), Release);
        }
    }

    /// Reports step `s` and opens the next step's update. Runs on the
    /// thread that updated the step's last block; the next step's
    /// micro-batches may be running, but none has handed anything over.
    fn end_step(&self, s: usize) {
        let result = batch_result(
            self.flights[..self.counts[s]]
                .iter()
                .map(|f| *f.result.lock().expect("no task panicked")),
            self.micro_batch,
            self.batches[s].len(),
        );
        if (self.on_step)(s, result, self.update.non_finite()).is_break() {
            self.stopped.store(true, Release);
        }
        if s + 1 < self.batches.len() && !self.over() {
            self.update.next_step();
        }
        for done in &self.param_done {
            done.store(0, Relaxed);
        }
        self.blocks_done.store(0, Relaxed);
        self.step.store(s + 1, Release);
    }

    /// Whether a copy of micro-batch `k` started now on this thread is due
    /// to end before the first copy, with an eighth of either copy's time
    /// to spare, judged by both threads' recent speeds; true once per step
    /// (`tag`) at most. Why: on a VM a CPU may run at half speed for
    /// seconds, unseen as steal; its thread is running (its clock moves),
    /// but the step waits for its last micro-batch while the other thread
    /// has nothing to do.
    fn slower_than_me(&self, k: usize, tag: usize) -> bool {
        let flight = &self.flights[k];
        let (mine, due) = (COPY_CPU.get(), flight.due.load(Relaxed));
        #[cfg(test)]
        let due = match self.stall_in_backward.chase(k) {
            true => u64::MAX,
            false => due,
        };
        mine > 0
            && due > 0
            && clock::now() + mine + mine / 8 < due
            && flight.sped_up.swap(tag, Relaxed) != tag
    }

    /// What a thread does while it waits for task `i`: if a micro-batch of
    /// the current step is still running on a thread that is descheduled,
    /// or slower than this one, run it again (see the module's comment).
    fn idle(&self, i: usize) {
        if self.over() {
            return;
        }
        let (s, _) = self.locate(i);
        let tag = self.tag(s);
        let done = (tag as u64) << 32 | self.param_done.len() as u64;
        let me = stall::this_thread_clock();
        for (k, flight) in self.flights[..self.counts[s]].iter().enumerate() {
            let leader = flight.clock.load(Acquire);
            if flight.started.load(Acquire) != tag
                || flight.frontier.load(Acquire) >= done
                || leader == me
            {
                continue;
            }
            let kind = if self.slower_than_me(k, tag) {
                CopyKind::Chase
            } else {
                let Some(cpu) = stall::cpu_time(leader) else {
                    continue;
                };
                let now = Instant::now();
                let look = (tag, k, leader);
                let stalled = match LAST_LOOK.get() {
                    Some((l, was, when)) if l == look => {
                        if cpu != was {
                            LAST_LOOK.set(Some((look, cpu, now)));
                            false
                        } else {
                            now - when >= STALL
                        }
                    }
                    _ => {
                        LAST_LOOK.set(Some((look, cpu, now)));
                        false
                    }
                };
                if !stalled {
                    return;
                }
                CopyKind::Backup
            };
            // The swap makes this thread the leader: no other starts a
            // copy of this micro-batch until this one stands still.
            if flight
                .clock
                .compare_exchange(leader, me, AcqRel, Acquire)
                .is_ok()
            {
                LAST_LOOK.set(None);
                self.backups.fetch_add(1, Relaxed);
                if kind == CopyKind::Chase {
                    self.sped_up.fetch_add(1, Relaxed);
                }
                self.copy(s, k, kind);
            }
            return;
        }
    }
}

impl DataParallel {
    /// Micro-batches of `micro_batch` images (at least 1). Replicas are built
    /// on first use.
    pub fn new(micro_batch: usize) -> Self {
        DataParallel {
            micro_batch: micro_batch.max(1),
            replicas: Vec::new(),
            gradients: Vec::new(),
            flights: Vec::new(),
            weights: [Vec::new(), Vec::new()],
            tags: 0,
            backups: Backups::default(),
            batch: 0,
            #[cfg(test)]
            stall_in_backward: StallInBackward::None,
            #[cfg(test)]
            slow_thread: SlowThread::default(),
        }
    }

    /// Readies `replicas` replicas and gradient slots for `count`
    /// micro-batches.
    fn ensure(
        &mut self,
        master: &Network,
        replicas: usize,
        count: usize,
    ) -> Result<(), LayerError> {
        while self.replicas.len() < replicas {
            // The draw is overwritten by the step's weights.
            let net = master
                .config()
                .build(&mut Rng::seed_from_u64(0))
                .map_err(|e| LayerError::new("network", "network", e.to_string()))?;
            self.replicas.push(Mutex::new(Replica {
                net,
                input: Tensor::zeros(vec![0]),
                labels: Vec::new(),
                target: Tensor::zeros(vec![0]),
                grad: Tensor::zeros(vec![0]),
                holds: Vec::new(),
            }));
        }
        let params = master.params();
        for copies in &mut self.weights {
            if copies.is_empty() {
                *copies = params
                    .iter()
                    .map(|p| Mutex::new(vec![0.0; p.value.len()]))
                    .collect();
            }
        }
        while self.gradients.len() < count {
            let slots = params
                .iter()
                .map(|p| Mutex::new(Tensor::zeros(p.value.shape())))
                .collect();
            self.gradients.push(slots);
            self.flights.push(Flight {
                started: AtomicUsize::new(0),
                clock: AtomicI64::new(stall::NO_CLOCK),
                frontier: AtomicU64::new(0),
                due: AtomicU64::new(0),
                sped_up: AtomicUsize::new(0),
                result: Mutex::new((0.0, 0)),
            });
        }
        Ok(())
    }

    /// Checks that no batch is empty; returns each one's micro-batch count.
    fn counts<B: BatchSource>(&self, batches: &[B]) -> Result<Vec<usize>, LayerError> {
        batches
            .iter()
            .map(|b| match b.len() {
                0 => Err(LayerError::new(
                    "input",
                    "network",
                    "a batch with at least one example",
                )),
                n => Ok(n.div_ceil(self.micro_batch)),
            })
            .collect()
    }

    /// Forward, loss and backward for `batch` on the replicas, from
    /// `master`'s weights; `master` itself does not run. The gradients stay
    /// here until [`DataParallel::gradients_into`] sums them.
    pub fn forward_backward(
        &mut self,
        team: &Team,
        master: &Network,
        loss_fn: &Loss,
        batch: &dyn BatchSource,
    ) -> Result<StepResult, LayerError> {
        let count = self.counts(&[batch])?[0];
        self.ensure(master, team.threads(), count)?;
        self.batch = batch.len();
        let values: Vec<&[f32]> = master
            .params()
            .into_iter()
            .map(|p| p.value.as_slice().expect("parameters are contiguous"))
            .collect();
        let (micro_batch, n, classes) = (self.micro_batch, batch.len(), master.outputs());
        let results: Vec<Mutex<Result<(f64, usize), LayerError>>> =
            (0..count).map(|_| Mutex::new(Ok((0.0, 0)))).collect();
        let DataParallel {
            replicas,
            gradients,
            ..
        } = self;
        team.for_each(count, &|k| {
            let mut replica = free_replica(replicas);
            // The master's weights, which no step's tag names.
            replica.holds.clear();
            let range = micro_range(k, micro_batch, n);
            let result = replica
                .forward(batch, range, classes, loss_fn, &mut |taken, params| {
                    for (p, j) in params.iter_mut().zip(taken) {
                        p.value
                            .as_slice_mut()
                            .expect("parameters are contiguous")
                            .copy_from_slice(values[j]);
                    }
                    ControlFlow::Continue(())
                })
                .map(|result| result.expect("never stopped"))
                .and_then(|result| {
                    replica.backward(&mut |taken, params| {
                        swap_into(&gradients[k], taken, params);
                        ControlFlow::Continue(())
                    })?;
                    Ok(result)
                });
            *results[k].lock().expect("no task panicked") = result;
        });
        let results = results
            .into_iter()
            .map(|r| r.into_inner().expect("no task panicked"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(batch_result(results.into_iter(), micro_batch, n))
    }

    /// Trains on `batches`, one step each, in order: for each, forward,
    /// loss and backward on the replicas, and `optimizer`'s update of
    /// `master` at learning rate `lr`, all in one phase of `team` (see the
    /// module's comment). After each step, `on_step(s, result, non_finite)`
    /// gets batch `s`'s loss and correct count and the name of a parameter
    /// that became NaN or infinite, if any; it runs on one of the team's
    /// threads while the others wait, and may stop the run. Returns the
    /// number of steps taken.
    ///
    /// If a micro-batch fails, its error is returned and nothing is updated
    /// that needed its gradients; the layers whose gradients were complete
    /// by then may be updated already. (Errors come from shapes that do not
    /// fit the network, which the first layer's forward pass finds.)
    #[allow(clippy::too_many_arguments)]
    pub fn run<B: BatchSource>(
        &mut self,
        team: &Team,
        master: &mut Network,
        loss_fn: &Loss,
        batches: &[B],
        optimizer: &mut Optimizer,
        lr: f32,
        on_step: &(dyn Fn(usize, StepResult, Option<String>) -> ControlFlow<()> + Sync),
    ) -> Result<usize, LayerError> {
        let counts = self.counts(batches)?;
        let Some(&most) = counts.iter().max() else {
            return Ok(0);
        };
        self.ensure(master, team.threads(), most)?;
        // The run's first step starts from the master's weights.
        for (copy, p) in self.weights[0].iter_mut().zip(master.params()) {
            let copy = copy.get_mut().expect("no task panicked");
            copy.clear();
            copy.extend(p.value.iter());
        }
        let classes = master.outputs();
        let params = self.gradients[0].len();
        if params == 0 {
            return Err(LayerError::new(
                "network",
                "network",
                "a network with parameters to train",
            ));
        }
        let update = optimizer.prepare(master, lr);
        let blocks = update.blocks();
        let mut blocks_of = vec![0; params];
        for b in 0..blocks {
            blocks_of[update.param_of(b)] += 1;
        }
        let mut starts = Vec::with_capacity(counts.len() + 1);
        starts.push(0);
        for &c in &counts {
            starts.push(starts.last().expect("pushed") + c + blocks);
        }
        let run = Run {
            batches,
            counts,
            starts,
            classes,
            loss_fn,
            micro_batch: self.micro_batch,
            replicas: &self.replicas,
            gradients: &self.gradients,
            flights: &self.flights,
            weights: &self.weights,
            tags: self.tags,
            update,
            blocks,
            step: AtomicUsize::new(0),
            weights_ready: (0..params)
                .map(|_| AtomicUsize::new(self.tags + 1))
                .collect(),
            blocks_left: blocks_of.iter().map(|&n| AtomicUsize::new(n)).collect(),
            blocks_of,
            param_done: (0..params).map(|_| AtomicUsize::new(0)).collect(),
            blocks_done: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            stopped: AtomicBool::new(false),
            backups: AtomicUsize::new(0),
            backups_won: AtomicUsize::new(0),
            taken_over: AtomicUsize::new(0),
            sped_up: AtomicUsize::new(0),
            on_step,
            #[cfg(test)]
            stall_in_backward: self.stall_in_backward,
            #[cfg(test)]
            slow_thread: self.slow_thread,
        };
        let tasks = *run.starts.last().expect("pushed");
        team.for_each_waiting(tasks, &|i| run.ready(i), &|i| run.task(i), &|i| run.idle(i));
        let steps = run.step.load(Acquire);
        let backups = Backups {
            started: run.backups.load(Relaxed),
            won: run.backups_won.load(Relaxed),
            taken_over: run.taken_over.load(Relaxed),
            sped_up: run.sped_up.load(Relaxed),
        };
        tracing::debug!(
            "{steps} steps; {} micro-batches run again while their thread was descheduled ({} while it was slower), {} of them finished; copies took the lead from a descheduled one {} times",
            backups.started,
            backups.sped_up,
            backups.won,
            backups.taken_over
        );
        self.backups.started += backups.started;
        self.backups.won += backups.won;
        self.backups.taken_over += backups.taken_over;
        self.backups.sped_up += backups.sped_up;
        let error = run.error.into_inner().expect("no task panicked");
        drop(run.update);
        self.tags += batches.len();
        self.batch = batches[steps.min(batches.len() - 1)].len();
        match error {
            Some(e) => Err(e),
            None => Ok(steps),
        }
    }

    /// One training step: [`DataParallel::run`] on one batch. Returns the
    /// batch's loss and correct count, and the name of a parameter that
    /// became NaN or infinite, if any.
    pub fn step(
        &mut self,
        team: &Team,
        master: &mut Network,
        loss_fn: &Loss,
        batch: &dyn BatchSource,
        optimizer: &mut Optimizer,
        lr: f32,
    ) -> Result<(StepResult, Option<String>), LayerError> {
        let outcome = Mutex::new(None);
        self.run(
            team,
            master,
            loss_fn,
            &[batch],
            optimizer,
            lr,
            &|_, r, bad| {
                *outcome.lock().expect("no task panicked") = Some((r, bad));
                ControlFlow::Continue(())
            },
        )?;
        Ok(outcome
            .into_inner()
            .expect("no task panicked")
            .expect("a step that did not fail is reported"))
    }

    /// Backup copies of micro-batches started so far, and how they went
    /// (see the module's comment).
    pub fn backups(&self) -> Backups {
        self.backups
    }

    /// Sums the last batch's gradients into `master`'s, without an update:
    /// the gradient of the batch's mean loss.
    pub fn gradients_into(&self, master: &mut Network) {
        let gradients = &self.gradients[..self.batch.div_ceil(self.micro_batch)];
        for (j, p) in master.params_mut().into_iter().enumerate() {
            let g = p.grad.as_slice_mut().expect("gradients are contiguous");
            sum_block(gradients, self.micro_batch, self.batch, j, 0, g);
        }
    }
}

/// Whether this thread (CPU clock `me`) takes the lead of `flight`, whose
/// leading copy is ahead of the caller's: only if the leader's thread
/// stands still for [`STALL`] (it is descheduled) while the frontier does
/// not move either. Why: a thread that comes back from its time slice
/// finds that a backup, itself now descheduled, has handed over a few
/// layers; it goes on from where its own copy is rather than wait.
fn take_the_lead(flight: &Flight, me: i64) -> bool {
    let leader = flight.clock.load(Acquire);
    if leader == me {
        return false;
    }
    let (Some(cpu), frontier) = (stall::cpu_time(leader), flight.frontier.load(Acquire)) else {
        return false;
    };
    let since = Instant::now();
    while since.elapsed() < STALL {
        if flight.frontier.load(Acquire) != frontier {
            return false;
        }
        std::hint::spin_loop();
    }
    stall::cpu_time(leader) == Some(cpu)
        && flight
            .clock
            .compare_exchange(leader, me, AcqRel, Acquire)
            .is_ok()
}

/// A replica that no copy uses, the one this thread used last if it is
/// free. There are as many as team threads, and a thread runs one copy at a
/// time, so one is always free. Why the same one: its weights and buffers
/// are in this CPU's cache. Taking the first free one gave a thread the
/// other's replica whenever the other was between two copies.
fn free_replica(replicas: &[Mutex<Replica>]) -> MutexGuard<'_, Replica> {
    thread_local! {
        static LAST: Cell<usize> = const { Cell::new(0) };
    }
    let last = LAST.get();
    loop {
        for i in 0..replicas.len() {
            let at = (last + i) % replicas.len();
            if let Ok(guard) = replicas[at].try_lock() {
                LAST.set(at);
                return guard;
            }
        }
        std::hint::spin_loop();
    }
}

/// A batch of `n` examples' mean loss and correct count, from its
/// micro-batches' (mean loss, correct count), in order: each mean weighted
/// by its micro-batch's share of the batch.
fn batch_result(
    parts: impl Iterator<Item = (f64, usize)>,
    micro_batch: usize,
    n: usize,
) -> StepResult {
    let mut total = StepResult {
        loss: 0.0,
        correct: 0,
    };
    for (k, (loss, correct)) in parts.enumerate() {
        total.loss += loss * micro_range(k, micro_batch, n).len() as f64 / n as f64;
        total.correct += correct;
    }
    total
}

/// Micro-batch `k`'s examples in a batch of `n`.
fn micro_range(k: usize, micro_batch: usize, n: usize) -> Range<usize> {
    k * micro_batch..((k + 1) * micro_batch).min(n)
}

/// Writes elements `at..` of parameter `j`'s batch gradient into `dst`,
/// from `gradients[k][j]`, micro-batch k's gradient. Each micro-batch's
/// gradient is that of its own mean loss; the batch's mean is their sum
/// weighted by n_k / n, added in order k whatever thread does it.
fn sum_block(
    gradients: &[Vec<Mutex<Tensor>>],
    micro_batch: usize,
    n: usize,
    j: usize,
    at: usize,
    dst: &mut [f32],
) {
    for (k, g) in gradients.iter().enumerate() {
        let w = micro_range(k, micro_batch, n).len() as f32 / n as f32;
        let g = g[j].lock().expect("no task panicked");
        let src = &g.as_slice().expect("gradients are contiguous")[at..at + dst.len()];
        if k == 0 {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = w * s);
        } else {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += w * s);
        }
    }
}

/// Sets its flag if dropped during a panic (then forgotten on success), so
/// that no update waits for a micro-batch that will never finish.
struct SetOnUnwind<'a>(&'a AtomicBool);

impl Drop for SetOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.store(true, Release);
    }
}

/// Whether a thread is running: its CPU clock, read from another thread.
mod stall {
    /// No clock: nothing is known.
    pub const NO_CLOCK: i64 = i64::MIN;

    /// The calling thread's CPU-time clock.
    #[cfg(target_os = "linux")]
    pub fn this_thread_clock() -> i64 {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: pthread_self is always valid; the call writes `clock`.
        match unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } {
            0 => i64::from(clock),
            _ => NO_CLOCK,
        }
    }

    /// CPU time in nanoseconds on `clock`, from any thread.
    #[cfg(target_os = "linux")]
    pub fn cpu_time(clock: i64) -> Option<u64> {
        let clock = libc::clockid_t::try_from(clock).ok()?;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: the call writes `ts`; a clock whose thread has ended
        // gives an error, not undefined behaviour.
        (unsafe { libc::clock_gettime(clock, &mut ts) } == 0)
            .then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }

    #[cfg(not(target_os = "linux"))]
    pub fn this_thread_clock() -> i64 {
        NO_CLOCK
    }

    #[cfg(not(target_os = "linux"))]
    pub fn cpu_time(_clock: i64) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    fn seed_network() -> Network {
        TrainConfig::load("seed").unwrap().build_network().unwrap()
    }

    fn batch(n: usize) -> (Tensor, Vec<usize>) {
        let mut rng = Rng::seed_from_u64(7);
        let x: Vec<f32> = (0..n * 784).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
        let labels = (0..n).map(|i| (i * 3) % 10).collect();
        (
            Tensor::from_shape_vec(vec![n, 1, 28, 28], x).unwrap(),
            labels,
        )
    }

    /// A step without an update: the batch's gradient left in `net`.
    fn dp_step(
        dp: &mut DataParallel,
        net: &mut Network,
        x: &Tensor,
        labels: &[usize],
    ) -> StepResult {
        let batch = TensorBatch { images: x, labels };
        let r = Team::scope(|team| {
            dp.forward_backward(team, net, &Loss::SoftmaxCrossEntropy, &batch)
                .unwrap()
        });
        dp.gradients_into(net);
        r
    }

    fn grads(net: &Network) -> Vec<Vec<f32>> {
        net.params()
            .iter()
            .map(|p| p.grad.iter().copied().collect())
            .collect()
    }

    /// Every gradient, then every weight.
    fn grads_and_values(net: &Network) -> Vec<Vec<f32>> {
        let mut all = grads(net);
        all.extend(
            net.params()
                .iter()
                .map(|p| p.value.iter().copied().collect()),
        );
        all
    }

    /// The plain path: the whole batch through one network.
    fn plain(net: &mut Network, x: &Tensor, labels: &[usize]) -> (f64, usize) {
        let logits = net.forward(x).unwrap().clone();
        let mut target = Tensor::zeros(vec![0]);
        one_hot_into(labels, 10, &mut target);
        let mut grad = Tensor::zeros(vec![0]);
        let loss = Loss::SoftmaxCrossEntropy
            .forward_backward(&logits, &target, &mut grad)
            .unwrap();
        net.backward(&grad).unwrap();
        (loss, count_correct(&logits, labels))
    }

    #[test]
    fn one_micro_batch_is_the_plain_step_bit_for_bit() {
        let (x, labels) = batch(12);
        let mut a = seed_network();
        let (loss, correct) = plain(&mut a, &x, &labels);
        let mut b = seed_network();
        let r = dp_step(&mut DataParallel::new(12), &mut b, &x, &labels);
        assert_eq!((r.loss.to_bits(), r.correct), (loss.to_bits(), correct));
        assert_eq!(grads(&a), grads(&b));
    }

    /// Micro-batches of 5, 5 and 2: the weighted sum is the batch's
    /// gradient up to rounding, and the same bits on 1, 2 and 3 threads.
    #[test]
    fn micro_batches_add_up_to_the_batch_gradient_on_any_thread_count() {
        let (x, labels) = batch(12);
        let mut whole = seed_network();
        let (loss, correct) = plain(&mut whole, &x, &labels);
        let expected = grads(&whole);
        let runs: Vec<(StepResult, Vec<Vec<f32>>)> = (1..=3)
            .map(|threads| {
                let pool = pool(threads);
                pool.install(|| {
                    let mut net = seed_network();
                    let r = dp_step(&mut DataParallel::new(5), &mut net, &x, &labels);
                    (r, grads(&net))
                })
            })
            .collect();
        for (r, g) in &runs[1..] {
            assert_eq!(r.loss.to_bits(), runs[0].0.loss.to_bits());
            assert_eq!(g, &runs[0].1);
        }
        let (r, g) = &runs[0];
        assert_eq!(r.correct, correct);
        assert!(
            (r.loss - loss).abs() < 1e-6 * loss.abs(),
            "{} vs {loss}",
            r.loss
        );
        for (got, want) in g.iter().zip(&expected) {
            let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() <= 1e-4 * scale, "{a} vs {b}");
            }
        }
    }

    /// Replicas take the master's current weights at every step.
    #[test]
    fn replicas_follow_the_masters_weights() {
        let (x, labels) = batch(8);
        let mut dp = DataParallel::new(4);
        let mut net = seed_network();
        dp_step(&mut dp, &mut net, &x, &labels);
        for p in net.params_mut() {
            p.value.mapv_inplace(|v| v * 0.5);
        }
        let r = dp_step(&mut dp, &mut net, &x, &labels);
        let mut fresh = seed_network();
        for p in fresh.params_mut() {
            p.value.mapv_inplace(|v| v * 0.5);
        }
        let r2 = dp_step(&mut DataParallel::new(4), &mut fresh, &x, &labels);
        assert_eq!(r, r2);
        assert_eq!(grads(&net), grads(&fresh));
    }

    /// The fused update gives the bits of summing the gradients first and
    /// then taking a plain optimizer step, on 1 and 2 threads.
    #[test]
    fn fused_update_is_sum_then_step() {
        let (x, labels) = batch(30);
        let config = TrainConfig::load("seed").unwrap().optimizer;
        let plain = {
            let mut net = seed_network();
            let mut opt = Optimizer::new(config.clone());
            let mut dp = DataParallel::new(7);
            for _ in 0..3 {
                dp_step(&mut dp, &mut net, &x, &labels);
                assert_eq!(opt.step(&mut net, 0.05), None);
            }
            grads_and_values(&net)
        };
        for threads in [1, 2, 3] {
            let pool = pool(threads);
            let fused = pool.install(|| {
                let mut net = seed_network();
                let mut opt = Optimizer::new(config.clone());
                let mut dp = DataParallel::new(7);
                let batch = TensorBatch {
                    images: &x,
                    labels: &labels,
                };
                Team::scope(|team| {
                    // Three steps: the gradient buffers the replicas swap
                    // out come back to them holding an older step's values.
                    for _ in 0..3 {
                        let (_, bad) = dp
                            .step(
                                team,
                                &mut net,
                                &Loss::SoftmaxCrossEntropy,
                                &batch,
                                &mut opt,
                                0.05,
                            )
                            .unwrap();
                        assert_eq!(bad, None);
                    }
                });
                grads_and_values(&net)
            });
            assert_eq!(fused, plain, "{threads} threads");
        }
    }

    /// A weight pushed to infinity by the update is named: the first such
    /// parameter in the network's order.
    #[test]
    fn update_names_a_parameter_that_overflows() {
        let (x, labels) = batch(4);
        let mut net = seed_network();
        let mut dp = DataParallel::new(2);
        let mut opt = Optimizer::new(optim::OptimizerConfig::sgd(1.0, 0.0, 0.0));
        let (_, bad) = Team::scope(|team| {
            let batch = TensorBatch {
                images: &x,
                labels: &labels,
            };
            dp.step(
                team,
                &mut net,
                &Loss::SoftmaxCrossEntropy,
                &batch,
                &mut opt,
                f32::INFINITY,
            )
            .unwrap()
        });
        assert_eq!(bad.as_deref(), Some(net.params()[0].name.as_str()));
    }

    /// A batch the network cannot take fails every micro-batch: the step
    /// returns the error, on any thread count, without waiting forever for
    /// gradients that never come, and updates nothing.
    #[test]
    fn a_failing_step_returns_its_error_and_updates_nothing() {
        let x = Tensor::zeros(vec![6, 1, 20, 20]);
        let labels = [1usize; 6];
        for threads in [1, 2] {
            let pool = pool(threads);
            pool.install(|| {
                let mut net = seed_network();
                let before = grads_and_values(&net);
                let mut opt = Optimizer::new(optim::OptimizerConfig::sgd(0.1, 0.9, 0.0));
                let batch = TensorBatch {
                    images: &x,
                    labels: &labels,
                };
                let err = Team::scope(|team| {
                    DataParallel::new(2)
                        .step(
                            team,
                            &mut net,
                            &Loss::SoftmaxCrossEntropy,
                            &batch,
                            &mut opt,
                            0.1,
                        )
                        .unwrap_err()
                });
                assert!(err.to_string().contains("expected a batch"), "{err}");
                let after = grads_and_values(&net);
                let n = after.len() / 2;
                assert_eq!(after[n..], before[n..], "weights unchanged");
            });
        }
    }

    /// A batch whose micro-batch starting at `stall_at` sleeps in its
    /// first fill, as a thread descheduled in the middle of it would (its
    /// CPU clock stands still), until a second copy has filled it too (or
    /// 2 s have passed): a fixed sleep may end before the other thread has
    /// anything to wait for.
    struct StallingBatch<'a> {
        inner: TensorBatch<'a>,
        stall_at: usize,
        /// Fills of the stalling range so far; none stalls if it starts
        /// at 2 or more.
        fills: AtomicUsize,
    }

    impl BatchSource for StallingBatch<'_> {
        fn len(&self) -> usize {
            self.inner.len()
        }
        fn example_shape(&self) -> Vec<usize> {
            self.inner.example_shape()
        }
        fn fill(&self, range: Range<usize>, images: &mut [f32], labels: &mut [usize]) {
            if range.start == self.stall_at && self.fills.fetch_add(1, SeqCst) == 0 {
                let deadline = Instant::now() + Duration::from_secs(2);
                while self.fills.load(SeqCst) < 2 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            self.inner.fill(range, images, labels)
        }
    }

    /// What one run leaves: every gradient and weight, each step's (number,
    /// loss bits, correct count), the optimizer's state, and the backups.
    type Trained = (
        Vec<Vec<f32>>,
        Vec<(usize, u64, usize)>,
        optim::OptimizerState,
        Backups,
    );

    /// The seed network trained on `batches` in one run, on a pool of
    /// `threads` threads, micro-batches of 10; no step may make a NaN.
    fn train_in_one_run<B: BatchSource>(threads: usize, batches: &[B]) -> Trained {
        train_with(threads, batches, |_| {}, &|_| {})
    }

    /// [`train_in_one_run`], with `hooks` set on the [`DataParallel`]
    /// (copies that stand still, say), and `at_step(s)` called as step `s`
    /// ends.
    fn train_with<B: BatchSource>(
        threads: usize,
        batches: &[B],
        hooks: impl FnOnce(&mut DataParallel) + Send,
        at_step: &(dyn Fn(usize) + Sync),
    ) -> Trained {
        let config = TrainConfig::load("seed").unwrap().optimizer;
        let pool = pool(threads);
        pool.install(|| {
            let mut net = seed_network();
            let mut opt = Optimizer::new(config);
            let mut dp = DataParallel::new(10);
            hooks(&mut dp);
            let losses = Mutex::new(Vec::new());
            let steps = Team::scope(|team| {
                dp.run(
                    team,
                    &mut net,
                    &Loss::SoftmaxCrossEntropy,
                    batches,
                    &mut opt,
                    0.05,
                    &|s, r, bad| {
                        at_step(s);
                        assert_eq!(bad, None);
                        losses
                            .lock()
                            .unwrap()
                            .push((s, r.loss.to_bits(), r.correct));
                        ControlFlow::Continue(())
                    },
                )
                .unwrap()
            });
            assert_eq!(steps, batches.len());
            (
                grads_and_values(&net),
                losses.into_inner().unwrap(),
                opt.state().clone(),
                dp.backups(),
            )
        })
    }

    /// `f` on `steps` steps, each on the same batch of 40 images.
    fn with_repeated_batch<R>(steps: usize, f: impl FnOnce(&[&TensorBatch<'_>]) -> R) -> R {
        let (x, labels) = batch(40);
        let batch = TensorBatch {
            images: &x,
            labels: &labels,
        };
        f(&vec![&batch; steps])
    }

    /// `steps` steps on one repeated batch, on one thread and then on
    /// `threads` threads with `hooks`: checks that the second run gives the
    /// first one's bits, and returns its backups.
    fn backups_with_one_thread_bits(
        steps: usize,
        threads: usize,
        hooks: impl FnOnce(&mut DataParallel) + Send,
    ) -> Backups {
        with_repeated_batch(steps, |batches| {
            let want = train_in_one_run(1, batches);
            let got = train_with(threads, batches, hooks, &|_| {});
            assert_one_thread_bits(&want, threads, got)
        })
    }

    /// Hooks for [`train_with`]: copies that stand still as `how` says.
    fn stall(how: StallInBackward) -> impl FnOnce(&mut DataParallel) + Send {
        move |dp| dp.stall_in_backward = how
    }

    /// Checks that a run on `threads` threads left the one-thread run's
    /// weights, gradients, losses and optimizer state, bit for bit, and
    /// returns its backups.
    fn assert_one_thread_bits(want: &Trained, threads: usize, got: Trained) -> Backups {
        assert_eq!(got.0, want.0, "{threads} threads: weights and gradients");
        assert_eq!(got.1, want.1, "{threads} threads: losses");
        assert_eq!(got.2, want.2, "{threads} threads: optimizer state");
        got.3
    }

    /// Six steps in one run, each with a micro-batch whose thread stalls:
    /// on 2 and 3 threads the others run those micro-batches again, and the
    /// weights, gradients, losses and optimizer state are those of six
    /// plain steps on one thread, bit for bit. The copy that loses stops
    /// and is never waited for.
    #[test]
    fn backups_of_stalled_micro_batches_change_no_bits() {
        let (x, labels) = batch(40);
        let batches = |stalls: bool| -> Vec<StallingBatch> {
            (0..6)
                .map(|s| StallingBatch {
                    inner: TensorBatch {
                        images: &x,
                        labels: &labels,
                    },
                    stall_at: (s % 4) * 10,
                    fills: AtomicUsize::new(if stalls { 0 } else { 2 }),
                })
                .collect()
        };
        let want = train_in_one_run(1, &batches(false));
        assert_eq!(
            want.1.iter().map(|l| l.0).collect::<Vec<_>>(),
            (0..6).collect::<Vec<_>>()
        );
        for threads in [2, 3] {
            let got = train_in_one_run(threads, &batches(true));
            let backups = assert_one_thread_bits(&want, threads, got);
            assert!(
                backups.started >= 6,
                "{threads} threads: {backups:?}; want a backup per step"
            );
        }
    }

    /// Six steps in one run whose micro-batch 1 stands still in its backward
    /// pass, after handing over fc2, as a descheduled thread would, in two
    /// ways, with the bits of six plain steps on one thread each time:
    ///
    /// * until another copy has handed over the rest: a backup runs the
    ///   micro-batch again, passes fc2 without handing it over a second
    ///   time, and hands over fc1 to conv1 (a backup that gave up on
    ///   finding fc2 handed over would leave the step to wait 2 s for the
    ///   original, and win nothing);
    /// * until a backup has handed over fc1, the backup then standing still
    ///   in turn: the first copy comes back, finds fc1 handed over and the
    ///   backup's thread standing still, and instead of stopping takes the
    ///   lead and hands over the rest from its own replica (a copy that
    ///   stopped when behind would leave the step to wait 2 s).
    #[test]
    fn copies_take_over_a_backward_pass_where_it_stands() {
        for threads in [2, 3] {
            let backups =
                backups_with_one_thread_bits(6, threads, stall(StallInBackward::Original(1)));
            assert!(
                backups.won >= 6 && backups.started >= backups.won,
                "{threads} threads: {backups:?}; want one backup won per step"
            );
            let backups = backups_with_one_thread_bits(6, threads, stall(StallInBackward::Both(1)));
            assert!(
                backups.taken_over > 0 && backups.started >= 6,
                "{threads} threads: {backups:?}; want a backup per step, and take-overs"
            );
        }
    }

    /// Two threads, one of which runs the micro-batches it starts ten
    /// times slower, burning CPU time as a thread on a slower CPU would.
    /// Its clock moves, so it is not taken for descheduled; but once it has
    /// timed a copy, the other thread finds its own copies due to end
    /// first, runs the slow thread's micro-batches again, and wins. The
    /// bits are those of one thread. (Run beside other tests, the threads
    /// are also descheduled, and backups of stalled copies may win
    /// instead; on a quiet machine, without chasers, no backup starts and
    /// each step waits for the slow thread.)
    #[test]
    fn a_slower_thread_is_backed_up_while_it_runs() {
        let backups = backups_with_one_thread_bits(24, 2, |dp| {
            dp.slow_thread = SlowThread(Some((1, 9)));
        });
        assert!(
            backups.won >= 1,
            "{backups:?}; want backups of the slower thread's micro-batches, won"
        );
    }

    /// Six steps whose micro-batch 1 runs first on a thread that is running
    /// but slow: it hands over fc2 just after the other thread has started
    /// to chase it, and then takes as long as it may. The chaser, finding
    /// fc2 handed over when it gets there, passes it and hands over the
    /// rest (a backup that stopped when behind a running copy would leave
    /// the step to wait 2 s). The bits are those of one thread. On a quiet
    /// machine the chaser wins every step; beside other tests, the slow
    /// copy's thread may be descheduled and another copy win some.
    #[test]
    fn a_chaser_passes_the_layers_that_a_slower_copy_handed_over() {
        let backups = backups_with_one_thread_bits(6, 2, stall(StallInBackward::Busy(1)));
        assert!(
            backups.sped_up >= 6 && backups.won >= 1,
            "{backups:?}; want a chaser per step, and chasers that won"
        );
    }

    /// More threads than CPUs, so that the scheduler deschedules them at
    /// any point of a micro-batch or a block, as busy neighbours do: runs
    /// of twelve steps give the bits of one thread, every time, whatever
    /// backups ran and whichever copy handed each layer over.
    #[test]
    fn oversubscribed_runs_give_the_same_bits() {
        with_repeated_batch(12, |batches| {
            let want = train_in_one_run(1, batches);
            let threads = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
            for _ in 0..3 {
                assert_one_thread_bits(&want, threads, train_in_one_run(threads, batches));
            }
        });
    }

    /// A run is its steps one by one, bit for bit; `on_step` can stop it,
    /// and then the steps after are neither taken nor counted.
    #[test]
    fn a_run_is_its_steps_and_stops_when_told() {
        let (x, labels) = batch(30);
        let config = TrainConfig::load("seed").unwrap().optimizer;
        let batch = TensorBatch {
            images: &x,
            labels: &labels,
        };
        let loss = Loss::SoftmaxCrossEntropy;
        let (mut a, mut oa, mut da) = (
            seed_network(),
            Optimizer::new(config.clone()),
            DataParallel::new(7),
        );
        let by_step: Vec<StepResult> = Team::scope(|team| {
            (0..2)
                .map(|_| {
                    da.step(team, &mut a, &loss, &batch, &mut oa, 0.05)
                        .unwrap()
                        .0
                })
                .collect()
        });
        let (mut b, mut ob, mut db) = (
            seed_network(),
            Optimizer::new(config.clone()),
            DataParallel::new(7),
        );
        let reports = Mutex::new(Vec::new());
        let steps = Team::scope(|team| {
            db.run(
                team,
                &mut b,
                &loss,
                &[&batch; 4],
                &mut ob,
                0.05,
                &|s, r, _| {
                    reports.lock().unwrap().push(r);
                    if s == 1 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                },
            )
            .unwrap()
        });
        assert_eq!(steps, 2);
        assert_eq!(reports.into_inner().unwrap(), by_step);
        assert_eq!(grads_and_values(&a), grads_and_values(&b));
        assert_eq!(oa.state(), ob.state());
    }

    /// A panic in `on_step` (on whichever thread ends the step) reaches the
    /// caller of `run`, and the other threads stop: nobody waits for a
    /// step that will never end.
    #[test]
    fn a_panic_in_on_step_reaches_the_caller() {
        let outcome = with_repeated_batch(6, |batches| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                train_with(2, batches, |_| {}, &|s| {
                    assert!(s < 2, "on_step panics at step {s}")
                })
            }))
        });
        let message = outcome.expect_err("the panic reaches the caller");
        let message = message
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        assert!(message.contains("on_step panics at step 2"), "{message}");
    }

    #[test]
    fn an_empty_batch_is_an_error() {
        let x = Tensor::zeros(vec![0, 1, 28, 28]);
        let batch = TensorBatch {
            images: &x,
            labels: &[],
        };
        let err = Team::scope(|team| {
            DataParallel::new(4)
                .forward_backward(team, &seed_network(), &Loss::SoftmaxCrossEntropy, &batch)
                .unwrap_err()
        });
        assert!(err.to_string().contains("at least one example"), "{err}");
    }
}
