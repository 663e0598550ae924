//! One training step, data-parallel over fixed micro-batches.
//!
//! **Why the bits do not depend on the thread count.** A batch of `n`
//! examples is cut into micro-batches of `micro_batch` examples (the last may
//! be shorter); the cut depends on nothing but those two numbers. Each
//! micro-batch runs forward and backward on its own replica of the network,
//! by kernels whose results do not depend on the thread that runs them. The
//! batch gradient is then the micro-batch gradients summed in micro-batch
//! order, each weighted by its share of the batch, `n_k / n`. So which thread
//! ran which micro-batch, and how many threads there were, changes nothing.
//!
//! **Randomness and batch statistics.** Micro-batch k draws its dropout
//! masks from its own stream, `Rng::from_keys(&[noise, k])`, where `noise`
//! is the step's key (the loop derives it from the run's seed and the step's
//! place), so the masks depend on the step and k only. Batch norm normalises
//! each micro-batch by that micro-batch's own mean and variance: each
//! replica computes them alone, with no exchange between threads. The
//! network's running statistics then take the micro-batches' statistics in
//! order k, one update each (as PyTorch would running the micro-batches one
//! after another), so they too are the same bits on any thread count.
//!
//! A step, for one batch:
//! 1. in parallel (rayon), for each micro-batch k on replica k: copy the
//!    network's weights, fill the input from the batch, forward in training
//!    mode, loss and d(loss)/d(logits), backward: the replica's
//!    `Param::grad` now holds the gradient of micro-batch k's mean loss;
//! 2. sum: `grad = Σ_k (n_k / n) · grad_k`, in order k, into the network's
//!    own gradients (parallel over pieces of each parameter: elementwise);
//!    fold each replica's batch statistics, in order k, into the network's
//!    running statistics;
//! 3. the optimizer's update of the network: `d = μd + (g + λW); W -= ηd`.

use std::ops::Range;

use layers::{LayerError, Loss, Network, Param};
use optim::Optimizer;
use rayon::prelude::*;
use tensor::{Rng, Tensor};

use crate::eval::count_correct;

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
    /// The same range gives the same values on any thread.
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

/// One micro-batch's copy of the network and its buffers.
struct Replica {
    net: Network,
    input: Tensor,
    labels: Vec<usize>,
    grad: Tensor,
}

impl Replica {
    /// Forward in training mode (dropout drawing from `noise`), loss and
    /// backward for the examples `range` of `batch`, from `weights`; leaves
    /// the gradient of the micro-batch's mean loss in the replica's
    /// parameters and returns that loss and the correct count.
    fn forward_backward(
        &mut self,
        weights: &[&Param],
        loss_fn: &Loss,
        batch: &dyn BatchSource,
        range: Range<usize>,
        noise: &mut Rng,
    ) -> Result<(f64, usize), LayerError> {
        for (mine, master) in self.net.params_mut().into_iter().zip(weights) {
            let values = master.value.as_slice().expect("parameters are contiguous");
            mine.value
                .as_slice_mut()
                .expect("parameters are contiguous")
                .copy_from_slice(values);
        }
        let mut shape = vec![range.len()];
        shape.extend(batch.example_shape());
        if self.input.shape() != shape {
            self.input = Tensor::zeros(shape);
        }
        self.labels.resize(range.len(), 0);
        let images = self.input.as_slice_mut().expect("contiguous");
        batch.fill(range, images, &mut self.labels);

        let logits = self.net.forward_train_with_noise(&self.input, noise)?;
        let loss = loss_fn.with_labels_into(logits, &self.labels, &mut self.grad)?;
        let correct = count_correct(logits, &self.labels);
        self.net.backward(&self.grad)?;
        Ok((loss, correct))
    }
}

/// Trains a network a batch at a time, each batch cut into micro-batches
/// that run in parallel on replicas (see the module's comment). Holds only
/// the replicas and their buffers, reused from step to step; every step
/// copies the network's current weights into them.
pub struct DataParallel {
    micro_batch: usize,
    replicas: Vec<Replica>,
}

impl DataParallel {
    /// Micro-batches of `micro_batch` examples (at least 1).
    pub fn new(micro_batch: usize) -> Self {
        DataParallel {
            micro_batch: micro_batch.max(1),
            replicas: Vec::new(),
        }
    }

    /// Forward (training mode), loss and backward for `batch`: leaves the
    /// gradient of the batch's mean loss in `net`'s parameters
    /// (`Param::grad`), folds the micro-batches' statistics into its running
    /// statistics (batch norm), and returns the loss and the correct count.
    /// `net`'s weights are not changed. `noise` is the step's key: micro-batch
    /// k's dropout masks come from `Rng::from_keys(&[noise, k])`.
    pub fn forward_backward(
        &mut self,
        net: &mut Network,
        loss_fn: &Loss,
        batch: &dyn BatchSource,
        noise: u64,
    ) -> Result<StepResult, LayerError> {
        let n = batch.len();
        if n == 0 {
            return Err(LayerError::new(
                "input",
                "network",
                "a batch with at least one example",
            ));
        }
        let micro_batch = self.micro_batch;
        let count = n.div_ceil(micro_batch);
        let range = |k: usize| k * micro_batch..((k + 1) * micro_batch).min(n);
        // Replicas of this network: rebuilt if the network is another one.
        if self
            .replicas
            .first()
            .is_some_and(|r| r.net.config() != net.config())
        {
            self.replicas.clear();
        }
        while self.replicas.len() < count {
            self.replicas.push(Replica {
                // Its weights are overwritten at each step.
                net: net
                    .config()
                    .build(&mut tensor::Rng::seed_from_u64(0))
                    .map_err(|e| LayerError::new("network", "network", e.to_string()))?,
                input: Tensor::zeros(vec![0]),
                labels: Vec::new(),
                grad: Tensor::zeros(vec![0]),
            });
        }

        // 1. Each micro-batch on its own replica, in parallel.
        let weights = net.params();
        let parts = self.replicas[..count]
            .par_iter_mut()
            .enumerate()
            .map(|(k, replica)| {
                let mut stream = Rng::from_keys(&[noise, k as u64]);
                replica.forward_backward(&weights, loss_fn, batch, range(k), &mut stream)
            })
            .collect::<Result<Vec<(f64, usize)>, LayerError>>()?;

        // 2. The batch gradient: Σ_k (n_k / n) · grad_k, in order k.
        let share = |k: usize| range(k).len() as f32 / n as f32;
        let grads: Vec<Vec<&[f32]>> = self.replicas[..count]
            .iter()
            .map(|r| {
                r.net
                    .params()
                    .into_iter()
                    .map(|p| contiguous(&p.grad))
                    .collect()
            })
            .collect();
        for (j, p) in net.params_mut().into_iter().enumerate() {
            let dst = p.grad.as_slice_mut().expect("gradients are contiguous");
            dst.par_chunks_mut(SUM_CHUNK)
                .enumerate()
                .for_each(|(c, dst)| {
                    let at = c * SUM_CHUNK;
                    for (k, grad) in grads.iter().enumerate() {
                        let (w, src) = (share(k), &grad[j][at..at + dst.len()]);
                        if k == 0 {
                            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = w * s);
                        } else {
                            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += w * s);
                        }
                    }
                });
        }

        // The running statistics: each micro-batch's, in order k.
        for replica in &self.replicas[..count] {
            net.track_running_stats_of(&replica.net);
        }

        let mut result = StepResult {
            loss: 0.0,
            correct: 0,
        };
        for (k, (loss, correct)) in parts.into_iter().enumerate() {
            result.loss += loss * range(k).len() as f64 / n as f64;
            result.correct += correct;
        }
        Ok(result)
    }

    /// One training step: [`DataParallel::forward_backward`] with the step's
    /// key `noise`, then `optimizer`'s update of `net` at learning rate `lr`. Returns the
    /// batch's loss and correct count, and the name of a parameter that
    /// became NaN or infinite, if any. A batch the network cannot take is an
    /// error, and then nothing is updated.
    pub fn step(
        &mut self,
        net: &mut Network,
        loss_fn: &Loss,
        batch: &dyn BatchSource,
        optimizer: &mut Optimizer,
        lr: f32,
        noise: u64,
    ) -> Result<(StepResult, Option<String>), LayerError> {
        let result = self.forward_backward(net, loss_fn, batch, noise)?;
        let non_finite = optimizer.step(net.params_mut(), lr);
        Ok((result, non_finite))
    }
}

/// Elements per parallel task of the gradient sum (fc1's 200k weights: 13 tasks).
const SUM_CHUNK: usize = 1 << 14;

fn contiguous(t: &Tensor) -> &[f32] {
    t.as_slice().expect("gradients are contiguous")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use tensor::Rng;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    fn seed_network() -> Network {
        TrainConfig::load("seed").unwrap().build_network().unwrap()
    }

    fn batch(n: usize, seed: u64) -> (Tensor, Vec<usize>) {
        let mut rng = Rng::seed_from_u64(seed);
        let x: Vec<f32> = (0..n * 784).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
        let labels = (0..n).map(|i| (i * 3 + seed as usize) % 10).collect();
        (
            Tensor::from_shape_vec(vec![n, 1, 28, 28], x).unwrap(),
            labels,
        )
    }

    /// A step without an update: the batch's gradient left in `net`.
    fn dp_gradient(
        dp: &mut DataParallel,
        net: &mut Network,
        x: &Tensor,
        labels: &[usize],
    ) -> StepResult {
        let batch = TensorBatch { images: x, labels };
        dp.forward_backward(net, &Loss::SoftmaxCrossEntropy, &batch, 0)
            .unwrap()
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
        layers::one_hot_into(labels, 10, &mut target);
        let mut grad = Tensor::zeros(vec![0]);
        let loss = Loss::SoftmaxCrossEntropy
            .forward_backward(&logits, &target, &mut grad)
            .unwrap();
        net.backward(&grad).unwrap();
        (loss, count_correct(&logits, labels))
    }

    #[test]
    fn one_micro_batch_is_the_plain_step_bit_for_bit() {
        let (x, labels) = batch(12, 7);
        let mut a = seed_network();
        let (loss, correct) = plain(&mut a, &x, &labels);
        let mut b = seed_network();
        let r = dp_gradient(&mut DataParallel::new(12), &mut b, &x, &labels);
        assert_eq!((r.loss.to_bits(), r.correct), (loss.to_bits(), correct));
        assert_eq!(grads(&a), grads(&b));
    }

    /// Micro-batches of 5, 5 and 2: the weighted sum is the batch's
    /// gradient up to rounding, and the same bits on 1, 2 and 3 threads.
    #[test]
    fn micro_batches_add_up_to_the_batch_gradient_on_any_thread_count() {
        let (x, labels) = batch(12, 7);
        let mut whole = seed_network();
        let (loss, correct) = plain(&mut whole, &x, &labels);
        let expected = grads(&whole);
        let runs: Vec<(StepResult, Vec<Vec<f32>>)> = (1..=3)
            .map(|threads| {
                pool(threads).install(|| {
                    let mut net = seed_network();
                    let r = dp_gradient(&mut DataParallel::new(5), &mut net, &x, &labels);
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

    /// The sum is the formula written out: Σ_k (n_k / n) · grad_k in order k,
    /// each micro-batch's gradient taken on its own by the plain path.
    #[test]
    fn the_batch_gradient_is_the_weighted_sum_in_micro_batch_order() {
        let (x, labels) = batch(7, 3);
        let mut net = seed_network();
        dp_gradient(&mut DataParallel::new(3), &mut net, &x, &labels);
        let parts: Vec<(f32, Vec<Vec<f32>>)> = [0..3, 3..6, 6..7]
            .into_iter()
            .map(|r| {
                let mut one = seed_network();
                let pixels = &x.as_slice().unwrap()[r.start * 784..r.end * 784];
                let xs = Tensor::from_shape_vec(vec![r.len(), 1, 28, 28], pixels.to_vec()).unwrap();
                plain(&mut one, &xs, &labels[r.clone()]);
                (r.len() as f32 / 7.0, grads(&one))
            })
            .collect();
        for (j, got) in grads(&net).iter().enumerate() {
            for (i, &g) in got.iter().enumerate() {
                let mut want = parts[0].0 * parts[0].1[j][i];
                for (w, part) in &parts[1..] {
                    want += w * part[j][i];
                }
                assert_eq!(g.to_bits(), want.to_bits());
            }
        }
    }

    /// Replicas take the network's current weights at every step, and are
    /// rebuilt for another network.
    #[test]
    fn replicas_follow_the_networks_weights() {
        let (x, labels) = batch(8, 7);
        let mut dp = DataParallel::new(4);
        let mut net = seed_network();
        dp_gradient(&mut dp, &mut net, &x, &labels);
        for p in net.params_mut() {
            p.value.mapv_inplace(|v| v * 0.5);
        }
        let r = dp_gradient(&mut dp, &mut net, &x, &labels);
        let mut fresh = seed_network();
        for p in fresh.params_mut() {
            p.value.mapv_inplace(|v| v * 0.5);
        }
        let r2 = dp_gradient(&mut DataParallel::new(4), &mut fresh, &x, &labels);
        assert_eq!(r, r2);
        assert_eq!(grads(&net), grads(&fresh));

        let mut mlp = TrainConfig::load("mlp").unwrap().build_network().unwrap();
        let r3 = dp_gradient(&mut dp, &mut mlp, &x, &labels);
        let mut mlp2 = TrainConfig::load("mlp").unwrap().build_network().unwrap();
        let r4 = dp_gradient(&mut DataParallel::new(4), &mut mlp2, &x, &labels);
        assert_eq!(r3, r4);
        assert_eq!(grads(&mlp), grads(&mlp2));
    }

    /// Steps on 1, 2 and 3 threads: the same weights, gradients, losses
    /// and optimizer state, bit for bit, and the same as summing the
    /// gradients and then taking a plain optimizer step.
    #[test]
    fn steps_give_the_same_bits_on_any_thread_count() {
        let batches: Vec<(Tensor, Vec<usize>)> = (0..3).map(|s| batch(30, s)).collect();
        let config = TrainConfig::load("seed").unwrap().optimizer;
        let by_hand = {
            let mut net = seed_network();
            let mut opt = Optimizer::new(config.clone());
            let mut dp = DataParallel::new(7);
            for (x, labels) in &batches {
                dp_gradient(&mut dp, &mut net, x, labels);
                assert_eq!(opt.step(net.params_mut(), 0.05), None);
            }
            (grads_and_values(&net), opt.state().clone())
        };
        for threads in [1, 2, 3] {
            let got = pool(threads).install(|| {
                let mut net = seed_network();
                let mut opt = Optimizer::new(config.clone());
                let mut dp = DataParallel::new(7);
                for (x, labels) in &batches {
                    let batch = TensorBatch { images: x, labels };
                    let (_, bad) = dp
                        .step(
                            &mut net,
                            &Loss::SoftmaxCrossEntropy,
                            &batch,
                            &mut opt,
                            0.05,
                            0,
                        )
                        .unwrap();
                    assert_eq!(bad, None);
                }
                (grads_and_values(&net), opt.state().clone())
            });
            assert!(got == by_hand, "{threads} threads");
        }
    }

    /// Every buffer (batch norm's running statistics), by value.
    fn buffers(net: &Network) -> Vec<Vec<f32>> {
        net.buffers()
            .iter()
            .map(|b| b.value.iter().copied().collect())
            .collect()
    }

    /// With batch norm and dropout (the `modern` network): steps on 1, 2
    /// and 3 threads give the same weights, gradients and running
    /// statistics, bit for bit; another step key draws other dropout masks.
    #[test]
    fn batch_norm_and_dropout_give_the_same_bits_on_any_thread_count() {
        let config = TrainConfig::load("modern").unwrap();
        let batches: Vec<(Tensor, Vec<usize>)> = (0..2).map(|s| batch(30, s)).collect();
        let run = |threads: usize, key: u64| {
            pool(threads).install(|| {
                let mut net = config.build_network().unwrap();
                let mut opt = Optimizer::new(config.optimizer.clone());
                let mut dp = DataParallel::new(7);
                for (i, (x, labels)) in batches.iter().enumerate() {
                    let batch = TensorBatch { images: x, labels };
                    dp.step(
                        &mut net,
                        &config.loss_fn(),
                        &batch,
                        &mut opt,
                        0.05,
                        key + i as u64,
                    )
                    .unwrap();
                }
                (grads_and_values(&net), buffers(&net))
            })
        };
        let one = run(1, 10);
        assert_eq!(run(2, 10), one);
        assert_eq!(run(3, 10), one);
        assert_ne!(run(1, 20).0, one.0, "other keys, other dropout masks");
        assert!(one
            .1
            .iter()
            .any(|b| b.iter().any(|&v| v != 0.0 && v != 1.0)));
    }

    /// The running statistics after a step are those of one network running
    /// the micro-batches one after another in training mode (what PyTorch
    /// does), and each micro-batch's dropout masks come from its own
    /// stream `Rng::from_keys(&[key, k])`: the step's gradient is the
    /// weighted sum of those sequential runs' gradients.
    #[test]
    fn running_statistics_take_the_micro_batches_in_order() {
        let config = TrainConfig::load("modern").unwrap();
        let (x, labels) = batch(12, 3);
        let mut net = config.build_network().unwrap();
        let batch_ref = TensorBatch {
            images: &x,
            labels: &labels,
        };
        DataParallel::new(5)
            .forward_backward(&mut net, &config.loss_fn(), &batch_ref, 99)
            .unwrap();

        let mut one = config.build_network().unwrap();
        let mut want: Vec<Vec<f32>> = Vec::new();
        for (k, r) in [0..5, 5..10, 10..12].into_iter().enumerate() {
            let pixels = &x.as_slice().unwrap()[r.start * 784..r.end * 784];
            let xs = Tensor::from_shape_vec(vec![r.len(), 1, 28, 28], pixels.to_vec()).unwrap();
            let logits = one
                .forward_train_with_noise(&xs, &mut Rng::from_keys(&[99, k as u64]))
                .unwrap()
                .clone();
            let mut grad = Tensor::zeros(vec![0]);
            config
                .loss_fn()
                .with_labels_into(&logits, &labels[r.clone()], &mut grad)
                .unwrap();
            one.backward(&grad).unwrap();
            let w = r.len() as f32 / 12.0;
            for (j, g) in grads(&one).into_iter().enumerate() {
                if k == 0 {
                    want.push(g.iter().map(|v| w * v).collect());
                } else {
                    want[j].iter_mut().zip(&g).for_each(|(a, b)| *a += w * b);
                }
            }
        }
        assert_eq!(buffers(&net), buffers(&one));
        assert_eq!(grads(&net), want);
    }

    /// A weight pushed to infinity by the update is named: the first such
    /// parameter in the network's order.
    #[test]
    fn a_step_names_a_parameter_that_overflows() {
        let (x, labels) = batch(4, 7);
        let mut net = seed_network();
        let mut opt = Optimizer::new(optim::OptimizerConfig::sgd(1.0, 0.0, 0.0));
        let batch = TensorBatch {
            images: &x,
            labels: &labels,
        };
        let (_, bad) = DataParallel::new(2)
            .step(
                &mut net,
                &Loss::SoftmaxCrossEntropy,
                &batch,
                &mut opt,
                f32::INFINITY,
                0,
            )
            .unwrap();
        assert_eq!(bad.as_deref(), Some(net.params()[0].name.as_str()));
    }

    /// A batch the network cannot take fails: the step returns the error,
    /// on any thread count, and updates nothing.
    #[test]
    fn a_failing_step_returns_its_error_and_updates_nothing() {
        let x = Tensor::zeros(vec![6, 1, 20, 20]);
        let labels = [1usize; 6];
        for threads in [1, 2] {
            pool(threads).install(|| {
                let mut net = seed_network();
                let before = grads_and_values(&net);
                let mut opt = Optimizer::new(optim::OptimizerConfig::sgd(0.1, 0.9, 0.0));
                let batch = TensorBatch {
                    images: &x,
                    labels: &labels,
                };
                let err = DataParallel::new(2)
                    .step(
                        &mut net,
                        &Loss::SoftmaxCrossEntropy,
                        &batch,
                        &mut opt,
                        0.1,
                        0,
                    )
                    .unwrap_err();
                assert!(err.to_string().contains("expected a batch"), "{err}");
                assert_eq!(grads_and_values(&net), before);
                assert_eq!(opt.state().steps, 0);
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
        let mut net = seed_network();
        let err = DataParallel::new(4)
            .forward_backward(&mut net, &Loss::SoftmaxCrossEntropy, &batch, 0)
            .unwrap_err();
        assert!(err.to_string().contains("at least one example"), "{err}");
    }
}
