//! One training step, data-parallel over fixed micro-batches.
//!
//! The batch is cut into micro-batches of `micro_batch` images (the last may
//! be shorter). [`DataParallel::forward_backward`] runs each on its own
//! replica of the network, shared out over a [`Team`]: the replica copies
//! the master's weights, fills its input from the data set (the u8 pixels
//! are converted there, by the thread that uses them), and runs forward,
//! loss and backward. [`DataParallel::update`] then walks every parameter in
//! blocks, over the same team: for each block it sums the replicas'
//! gradients in micro-batch order, weighted by their share of the batch,
//! into the master's gradient, and the optimizer updates that block at once,
//! while it is in cache.
//!
//! Why not one network with parallel kernels only: a step then has about 30
//! parallel loops, each ending in a join. On a machine shared with other busy
//! processes, a worker is often descheduled while it holds a piece of a loop,
//! and the join waits a whole time slice for it: the epoch took 4-5x its
//! quiet time beside two busy loops. Here the threads meet twice per step
//! (after the replicas, and after the update), and they wait for each other
//! awake (see [`crate::team`] for why). Nothing runs on one thread alone: a
//! serial batch fill, gradient sum and finiteness scan cost 11% of a
//! 2-thread step.
//!
//! The cut depends only on the batch and micro-batch sizes, and each
//! micro-batch's gradient is computed by the same kernels in the same order
//! wherever it runs, so the results are bit-identical on any number of threads.

use std::ops::Range;
use std::sync::Mutex;

use optim::Optimizer;
use tensor::{Rng, Tensor};

use layers::{one_hot_into, LayerError, Loss, Network};

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

/// Replicas of a network, for [`DataParallel::forward_backward`].
pub struct DataParallel {
    micro_batch: usize,
    replicas: Vec<Replica>,
    /// The last batch's size: it says which replicas hold gradients, and
    /// their weights in the sum.
    batch: usize,
}

impl DataParallel {
    /// Micro-batches of `micro_batch` images (at least 1). Replicas are built
    /// on first use.
    pub fn new(micro_batch: usize) -> Self {
        DataParallel {
            micro_batch: micro_batch.max(1),
            replicas: Vec::new(),
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

    /// Micro-batch `k`'s share of the batch: its weight in the gradient sum.
    fn share(&self, k: usize) -> f32 {
        self.range(k).len() as f32 / self.batch as f32
    }

    /// Forward, loss and backward for `batch` on the replicas, from
    /// `master`'s weights; `master` itself does not run. The gradients stay
    /// in the replicas until [`DataParallel::update`] (or
    /// [`DataParallel::gradients_into`]) sums them.
    pub fn forward_backward(
        &mut self,
        team: &Team,
        master: &Network,
        loss_fn: &Loss,
        batch: &dyn BatchSource,
    ) -> Result<StepResult, LayerError> {
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
        let classes = master.outputs();
        let values: Vec<&[f32]> = master
            .params()
            .into_iter()
            .map(|p| p.value.as_slice().expect("parameters are contiguous"))
            .collect();
        let example = batch.example_shape();
        let ranges: Vec<Range<usize>> = (0..count).map(|k| self.range(k)).collect();

        let run = |r: &mut Replica, range: Range<usize>| -> Result<(), LayerError> {
            // The master's weights, as the optimizer left them.
            for (p, v) in r.net.params_mut().into_iter().zip(&values) {
                p.value
                    .as_slice_mut()
                    .expect("parameters are contiguous")
                    .copy_from_slice(v);
            }
            let mut shape = Vec::with_capacity(example.len() + 1);
            shape.push(range.len());
            shape.extend_from_slice(&example);
            if r.input.shape() != shape {
                r.input = Tensor::zeros(shape);
            }
            r.labels.resize(range.len(), 0);
            batch.fill(
                range,
                r.input.as_slice_mut().expect("contiguous"),
                &mut r.labels,
            );
            let logits = r.net.forward(&r.input)?;
            one_hot_into(&r.labels, classes, &mut r.target);
            r.loss = loss_fn.forward_backward(logits, &r.target, &mut r.grad)?;
            r.correct = count_correct(logits, &r.labels);
            r.net.backward(&r.grad)
        };
        // One task per replica; the locks are never contended.
        let slots: Vec<Mutex<(&mut Replica, Result<(), LayerError>)>> = self.replicas[..count]
            .iter_mut()
            .map(|r| Mutex::new((r, Ok(()))))
            .collect();
        team.for_each(count, &|k| {
            let mut slot = slots[k].lock().expect("one task per replica");
            let (r, result) = &mut *slot;
            *result = run(r, ranges[k].clone());
        });
        for slot in slots {
            slot.into_inner()
                .expect("a task that panicked re-raised its panic")
                .1?;
        }

        let replicas = &self.replicas[..count];
        let loss = replicas
            .iter()
            .enumerate()
            .map(|(k, r)| r.loss * self.range(k).len() as f64 / n as f64)
            .sum();
        let correct = replicas.iter().map(|r| r.correct).sum();
        Ok(StepResult { loss, correct })
    }

    /// Sums the last batch's gradients into `master`'s and lets `optimizer`
    /// update each block of `master`'s parameters as soon as it is summed,
    /// at learning rate `lr`. Returns the name of a parameter that became
    /// NaN or infinite, if any. The blocks are shared out over `team`.
    pub fn update(
        &self,
        team: &Team,
        master: &mut Network,
        optimizer: &mut Optimizer,
        lr: f32,
    ) -> Option<String> {
        let grads = self.replica_gradients();
        optimizer.step_on(
            master,
            lr,
            |j, at, dst| self.sum_block(&grads, j, at, dst),
            &|n, task| team.for_each(n, task),
        )
    }

    /// Sums the last batch's gradients into `master`'s, without an update:
    /// the gradient of the batch's mean loss.
    pub fn gradients_into(&self, master: &mut Network) {
        let grads = self.replica_gradients();
        for (j, p) in master.params_mut().into_iter().enumerate() {
            let g = p.grad.as_slice_mut().expect("gradients are contiguous");
            self.sum_block(&grads, j, 0, g);
        }
    }

    /// Each replica's gradients, parameter by parameter.
    fn replica_gradients(&self) -> Vec<Vec<&[f32]>> {
        self.replicas[..self.batch.div_ceil(self.micro_batch)]
            .iter()
            .map(|r| {
                r.net
                    .params()
                    .into_iter()
                    .map(|p| p.grad.as_slice().expect("gradients are contiguous"))
                    .collect()
            })
            .collect()
    }

    /// Writes elements `at..` of parameter `j`'s batch gradient into `dst`.
    /// Each micro-batch's gradient is that of its own mean loss; the batch's
    /// mean is their sum weighted by n_k / N, added in order k whatever
    /// thread does it.
    fn sum_block(&self, grads: &[Vec<&[f32]>], j: usize, at: usize, dst: &mut [f32]) {
        for (k, g) in grads.iter().enumerate() {
            let w = self.share(k);
            let src = &g[j][at..at + dst.len()];
            if k == 0 {
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d = w * s);
            } else {
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d += w * s);
            }
        }
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
            for _ in 0..2 {
                dp_step(&mut dp, &mut net, &x, &labels);
                assert_eq!(opt.step(&mut net, 0.05), None);
            }
            grads_and_values(&net)
        };
        for threads in [1, 2] {
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
                    for _ in 0..2 {
                        dp.forward_backward(team, &net, &Loss::SoftmaxCrossEntropy, &batch)
                            .unwrap();
                        assert_eq!(dp.update(team, &mut net, &mut opt, 0.05), None);
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
        let bad = Team::scope(|team| {
            let batch = TensorBatch {
                images: &x,
                labels: &labels,
            };
            dp.forward_backward(team, &net, &Loss::SoftmaxCrossEntropy, &batch)
                .unwrap();
            dp.update(team, &mut net, &mut opt, f32::INFINITY)
        });
        assert_eq!(bad.as_deref(), Some(net.params()[0].name.as_str()));
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
