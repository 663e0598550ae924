//! One training step, data-parallel over fixed micro-batches.
//!
//! The batch is cut into micro-batches of `micro_batch` images (the last may
//! be shorter). [`DataParallel::step`] runs each on its own replica of the
//! network, shared out over a [`Team`]: the replica copies the master's
//! weights, fills its input from the data set (the u8 pixels are converted
//! there, by the thread that uses them), and runs forward, loss and
//! backward. In the same phase the team updates the master's parameters, in
//! blocks, from the last layer's to the first's: a block starts as soon as
//! every replica's backward pass has left its layer, sums the replicas'
//! gradients in micro-batch order, weighted by their share of the batch,
//! into the master's gradient, and the optimizer updates it at once, while
//! it is in cache. fc1 and fc2 hold 97% of the seed network's parameters and
//! back-propagation leaves them first, so most of the update runs while the
//! last micro-batches are still in their convolutions' backward passes.
//!
//! Why not one network with parallel kernels only: a step then has about 30
//! parallel loops, each ending in a join. On a machine shared with other busy
//! processes, a worker is often descheduled while it holds a piece of a loop,
//! and the join waits a whole time slice for it: the epoch took 4-5x its
//! quiet time beside two busy loops. Here the threads meet once per step,
//! and they wait for each other awake (see [`crate::team`] for why). Nothing
//! runs on one thread alone: a serial batch fill, gradient sum and
//! finiteness scan cost 11% of a 2-thread step.
//!
//! The cut depends only on the batch and micro-batch sizes, and each
//! micro-batch's gradient is computed by the same kernels in the same order
//! wherever it runs, so the results are bit-identical on any number of
//! threads, and to [`DataParallel::forward_backward`] (the gradients alone)
//! followed by a plain optimizer step.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Mutex;

use optim::Optimizer;
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

/// One replica: a copy of the network and its micro-batch.
struct Replica {
    net: Network,
    input: Tensor,
    labels: Vec<usize>,
    target: Tensor,
    grad: Tensor,
    loss: f64,
    correct: usize,
}

/// What every micro-batch of a step shares.
struct Job<'a> {
    batch: &'a dyn BatchSource,
    /// One example's shape.
    example: Vec<usize>,
    classes: usize,
    loss_fn: &'a Loss,
}

impl Replica {
    /// Forward, loss and backward for the examples `range` of the job's
    /// batch, from the weights that `weights(j, values)` writes for
    /// parameter `j`; `done` is called as each layer's backward part ends
    /// (see [`Network::backward_each`]).
    fn run(
        &mut self,
        job: &Job,
        range: Range<usize>,
        weights: &dyn Fn(usize, &mut [f32]),
        done: &mut dyn FnMut(usize, &mut [&mut Param]),
    ) -> Result<(), LayerError> {
        for (j, p) in self.net.params_mut().into_iter().enumerate() {
            weights(
                j,
                p.value.as_slice_mut().expect("parameters are contiguous"),
            );
        }
        let mut shape = Vec::with_capacity(job.example.len() + 1);
        shape.push(range.len());
        shape.extend_from_slice(&job.example);
        if self.input.shape() != shape {
            self.input = Tensor::zeros(shape);
        }
        self.labels.resize(range.len(), 0);
        job.batch.fill(
            range,
            self.input.as_slice_mut().expect("contiguous"),
            &mut self.labels,
        );
        let logits = self.net.forward(&self.input)?;
        one_hot_into(&self.labels, job.classes, &mut self.target);
        self.loss = job
            .loss_fn
            .forward_backward(logits, &self.target, &mut self.grad)?;
        self.correct = count_correct(logits, &self.labels);
        self.net.backward_each(&self.grad, done)
    }
}

/// Replicas of a network, for [`DataParallel::step`].
pub struct DataParallel {
    micro_batch: usize,
    replicas: Vec<Replica>,
    /// `gradients[k][j]`: micro-batch k's gradient of parameter j. Each is
    /// swapped with the replica's own gradient buffer as soon as its
    /// layer's backward part is done (no copy), so that the update of
    /// [`DataParallel::step`] can read it while the replica runs on.
    gradients: Vec<Vec<Mutex<Tensor>>>,
    /// The last batch's size: it says how many micro-batches there were,
    /// and their weights in the sum.
    batch: usize,
}

impl DataParallel {
    /// Micro-batches of `micro_batch` images (at least 1). Replicas are built
    /// on first use.
    pub fn new(micro_batch: usize) -> Self {
        DataParallel {
            micro_batch: micro_batch.max(1),
            replicas: Vec::new(),
            gradients: Vec::new(),
            batch: 0,
        }
    }

    fn ensure_replicas(&mut self, master: &Network, count: usize) -> Result<(), LayerError> {
        // (Replicas take the master's weights at the start of every step.)
        while self.replicas.len() < count {
            // The draw is overwritten by the master's weights in `forward_backward`.
            let net = master
                .config()
                .build(&mut Rng::seed_from_u64(0))
                .map_err(|e| LayerError::new("network", "network", e.to_string()))?;
            self.replicas.push(Replica {
                net,
                input: Tensor::zeros(vec![0]),
                labels: Vec::new(),
                target: Tensor::zeros(vec![0]),
                grad: Tensor::zeros(vec![0]),
                loss: 0.0,
                correct: 0,
            });
        }
        Ok(())
    }

    /// Micro-batch `k`'s examples.
    fn range(&self, k: usize) -> Range<usize> {
        k * self.micro_batch..((k + 1) * self.micro_batch).min(self.batch)
    }

    /// Checks the batch and readies a replica and gradient slots per
    /// micro-batch; returns how many micro-batches there are.
    fn begin(&mut self, master: &Network, batch: &dyn BatchSource) -> Result<usize, LayerError> {
        let n = batch.len();
        if n == 0 {
            return Err(LayerError::new(
                "input",
                "network",
                "a batch with at least one example",
            ));
        }
        self.batch = n;
        let count = n.div_ceil(self.micro_batch);
        self.ensure_replicas(master, count)?;
        while self.gradients.len() < count {
            let slots = master
                .params()
                .iter()
                .map(|p| Mutex::new(Tensor::zeros(p.value.shape())))
                .collect();
            self.gradients.push(slots);
        }
        Ok(count)
    }

    /// The batch's mean loss and correct count, from the replicas.
    fn result(&self, count: usize) -> StepResult {
        let replicas = &self.replicas[..count];
        let loss = replicas
            .iter()
            .enumerate()
            .map(|(k, r)| r.loss * self.range(k).len() as f64 / self.batch as f64)
            .sum();
        let correct = replicas.iter().map(|r| r.correct).sum();
        StepResult { loss, correct }
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
        let count = self.begin(master, batch)?;
        let job = Job {
            batch,
            example: batch.example_shape(),
            classes: master.outputs(),
            loss_fn,
        };
        let values: Vec<&[f32]> = master
            .params()
            .into_iter()
            .map(|p| p.value.as_slice().expect("parameters are contiguous"))
            .collect();
        let ranges: Vec<Range<usize>> = (0..count).map(|k| self.range(k)).collect();
        let DataParallel {
            replicas,
            gradients,
            ..
        } = self;
        // One task per replica; the locks are never contended.
        let slots: Vec<Mutex<(&mut Replica, Result<(), LayerError>)>> = replicas[..count]
            .iter_mut()
            .map(|r| Mutex::new((r, Ok(()))))
            .collect();
        team.for_each(count, &|k| {
            let mut slot = slots[k].lock().expect("one task per replica");
            let (r, result) = &mut *slot;
            *result = r.run(
                &job,
                ranges[k].clone(),
                &|j, dst| dst.copy_from_slice(values[j]),
                &mut {
                    let mut taker = Taker::new(&gradients[k]);
                    move |_, params| {
                        taker.take(params);
                    }
                },
            );
        });
        for slot in slots {
            slot.into_inner()
                .expect("a task that panicked re-raised its panic")
                .1?;
        }
        Ok(self.result(count))
    }

    /// One training step: forward, loss and backward for `batch` on the
    /// replicas, from `master`'s weights, and `optimizer`'s update of
    /// `master` at learning rate `lr`, all in one phase of `team` (see the
    /// module's comment). Returns the batch's loss and correct count, and
    /// the name of a parameter that became NaN or infinite, if any.
    ///
    /// If a micro-batch fails, its error is returned and nothing is updated
    /// that needed its gradients; the layers whose gradients were complete
    /// by then may be updated already. (Errors come from shapes that do not
    /// fit the network, which the first layer's forward pass finds.)
    pub fn step(
        &mut self,
        team: &Team,
        master: &mut Network,
        loss_fn: &Loss,
        batch: &dyn BatchSource,
        optimizer: &mut Optimizer,
        lr: f32,
    ) -> Result<(StepResult, Option<String>), LayerError> {
        let count = self.begin(master, batch)?;
        let job = Job {
            batch,
            example: batch.example_shape(),
            classes: master.outputs(),
            loss_fn,
        };
        let ranges: Vec<Range<usize>> = (0..count).map(|k| self.range(k)).collect();
        let shares = self.shares();
        // Replicas whose backward pass has handed over each parameter.
        let param_done: Vec<AtomicUsize> = (0..self.gradients[0].len())
            .map(|_| AtomicUsize::new(0))
            .collect();
        let failed = AtomicBool::new(false);

        let DataParallel {
            replicas,
            gradients,
            ..
        } = self;
        let gradients = &gradients[..count];
        // One task per replica; the locks are never contended.
        let slots: Vec<Mutex<(&mut Replica, Result<(), LayerError>)>> = replicas[..count]
            .iter_mut()
            .map(|r| Mutex::new((r, Ok(()))))
            .collect();
        let update = optimizer.prepare(master, lr);
        let blocks = update.blocks();
        let sum = |j: usize, at: usize, dst: &mut [f32]| sum_block(gradients, &shares, j, at, dst);
        // The micro-batches first, then the update's blocks, last layer's
        // first, each claimed once every replica's backward pass has left
        // its layer: a thread that runs out of micro-batches updates what
        // the others' backward passes have finished.
        let block = |i: usize| blocks - 1 - (i - count);
        let ready = |i: usize| {
            i < count
                || failed.load(Acquire)
                || param_done[update.param_of(block(i))].load(Acquire) == count
        };
        team.for_each_when(count + blocks, &ready, &|i| {
            if i < count {
                let failing = SetOnUnwind(&failed);
                let mut slot = slots[i].lock().expect("one task per replica");
                let (r, result) = &mut *slot;
                *result = r.run(
                    &job,
                    ranges[i].clone(),
                    // Read before any block of this parameter is updated:
                    // that waits for every replica's backward pass.
                    &|j, dst| update.read_values(j, dst),
                    &mut {
                        let mut taker = Taker::new(&gradients[i]);
                        let param_done = &param_done;
                        move |_, params| {
                            for j in taker.take(params) {
                                param_done[j].fetch_add(1, Release);
                            }
                        }
                    },
                );
                if result.is_err() {
                    failed.store(true, Release);
                }
                std::mem::forget(failing);
            } else if !failed.load(Acquire) {
                update.update_block(block(i), &sum);
            }
        });
        let non_finite = update.finish();
        for slot in slots {
            slot.into_inner()
                .expect("a task that panicked re-raised its panic")
                .1?;
        }
        Ok((self.result(count), non_finite))
    }

    /// Sums the last batch's gradients into `master`'s, without an update:
    /// the gradient of the batch's mean loss.
    pub fn gradients_into(&self, master: &mut Network) {
        let gradients = &self.gradients[..self.batch.div_ceil(self.micro_batch)];
        let shares = self.shares();
        for (j, p) in master.params_mut().into_iter().enumerate() {
            let g = p.grad.as_slice_mut().expect("gradients are contiguous");
            sum_block(gradients, &shares, j, 0, g);
        }
    }

    /// Each micro-batch's share of the batch: its weight in the gradient sum.
    fn shares(&self) -> Vec<f32> {
        (0..self.batch.div_ceil(self.micro_batch))
            .map(|k| self.range(k).len() as f32 / self.batch as f32)
            .collect()
    }
}

/// Writes elements `at..` of parameter `j`'s batch gradient into `dst`,
/// from `gradients[k][j]`, micro-batch k's gradient. Each micro-batch's
/// gradient is that of its own mean loss; the batch's mean is their sum
/// weighted by n_k / N (`shares`), added in order k whatever thread does it.
fn sum_block(
    gradients: &[Vec<Mutex<Tensor>>],
    shares: &[f32],
    j: usize,
    at: usize,
    dst: &mut [f32],
) {
    for (k, (g, &w)) in gradients.iter().zip(shares).enumerate() {
        let g = g[j].lock().expect("no task panicked");
        let src = &g.as_slice().expect("gradients are contiguous")[at..at + dst.len()];
        if k == 0 {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = w * s);
        } else {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += w * s);
        }
    }
}

/// Takes a replica's gradients into one micro-batch's slots (by parameter)
/// as its backward pass hands them over, swapping the buffers, not copying.
/// Backward hands the layers over last first, so each layer's parameters
/// are the ones just before those already taken, in [`Network::params`]
/// order: no table of owners is needed.
struct Taker<'a> {
    slots: &'a [Mutex<Tensor>],
    /// The first parameter already taken (all of them: none yet).
    taken_from: usize,
}

impl<'a> Taker<'a> {
    fn new(slots: &'a [Mutex<Tensor>]) -> Self {
        Taker {
            slots,
            taken_from: slots.len(),
        }
    }

    /// Takes `params`, one layer's; returns their indices.
    fn take(&mut self, params: &mut [&mut Param]) -> Range<usize> {
        let taken = self.taken_from - params.len()..self.taken_from;
        for (p, j) in params.iter_mut().zip(taken.clone()) {
            let mut slot = self.slots[j].lock().expect("no task panicked");
            std::mem::swap(&mut p.grad, &mut slot);
        }
        self.taken_from = taken.start;
        taken
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;

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
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
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
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
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
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
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
