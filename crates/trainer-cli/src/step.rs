//! One training step, data-parallel over fixed micro-batches.
//!
//! The batch is cut into micro-batches of `micro_batch` images (the last may
//! be shorter). Each runs forward, loss and backward on its own replica of
//! the network, the replicas in parallel; then each parameter's gradient is
//! the sum, in micro-batch order, of the replicas' gradients weighted by
//! their share of the batch, written into the master network, which the
//! optimizer then updates. Each replica copies the master's weights at the
//! start of its task.
//!
//! Why not one network with parallel kernels only: a step then has about 30
//! parallel loops, each ending in a join. On a machine shared with other busy
//! processes, a worker is often descheduled while it holds a piece of a loop,
//! and the join waits a whole time slice for it: the epoch took 4-5x its
//! quiet time beside two busy loops. Here the threads meet twice per step
//! (the replicas' join and the optimizer's update of fc1's weights), and a
//! thread that runs out of micro-batches steals pieces of the kernels of the
//! others (they are still parallel loops inside).
//!
//! The cut depends only on the batch and micro-batch sizes, and each
//! micro-batch's gradient is computed by the same kernels in the same order
//! wherever it runs, so the results are bit-identical on any number of threads.

use rayon::prelude::*;
use tensor::{Rng, Tensor};

use layers::{one_hot_into, LayerError, Loss, Network};

use crate::eval::count_correct;

/// The gradient sum walks each parameter in blocks this long, adding every
/// replica's block before moving on, so that the blocks stay in cache.
const BLOCK: usize = 1 << 14;

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
    target: Tensor,
    grad: Tensor,
    loss: f64,
    correct: usize,
}

/// Replicas of a network, for [`DataParallel::step`].
pub struct DataParallel {
    micro_batch: usize,
    replicas: Vec<Replica>,
}

impl DataParallel {
    /// Micro-batches of `micro_batch` images (at least 1). Replicas are built
    /// on first use.
    pub fn new(micro_batch: usize) -> Self {
        DataParallel {
            micro_batch: micro_batch.max(1),
            replicas: Vec::new(),
        }
    }

    fn ensure_replicas(&mut self, master: &Network, count: usize) -> Result<(), LayerError> {
        // (Replicas take the master's weights at the start of every step.)
        if self.replicas.len() >= count {
            return Ok(());
        }
        while self.replicas.len() < count {
            // The draw is overwritten by the master's weights in `step`.
            let net = master
                .config()
                .build(&mut Rng::seed_from_u64(0))
                .map_err(|e| LayerError::new("network", "network", e.to_string()))?;
            self.replicas.push(Replica {
                net,
                input: Tensor::zeros(vec![0]),
                target: Tensor::zeros(vec![0]),
                grad: Tensor::zeros(vec![0]),
                loss: 0.0,
                correct: 0,
            });
        }
        Ok(())
    }

    /// Forward, loss and backward for the batch `images` (N x ...) with
    /// `labels`, leaving the gradient of the batch's mean loss in each of
    /// `master`'s parameters. Each replica first copies `master`'s weights;
    /// `master`'s own layers do not run.
    pub fn step(
        &mut self,
        master: &mut Network,
        loss_fn: &Loss,
        images: &Tensor,
        labels: &[usize],
    ) -> Result<StepResult, LayerError> {
        let n = labels.len();
        if n == 0 || images.shape().first() != Some(&n) {
            return Err(LayerError::new(
                "input",
                "network",
                format!(
                    "a batch of {} labels for images {}",
                    n,
                    tensor::shape_string(images.shape())
                ),
            ));
        }
        let mb = self.micro_batch;
        let count = n.div_ceil(mb);
        self.ensure_replicas(master, count)?;
        let classes = master.outputs();
        let values: Vec<&[f32]> = master
            .params()
            .into_iter()
            .map(|p| p.value.as_slice().expect("parameters are contiguous"))
            .collect();
        let pixels = images.as_slice().expect("batches are contiguous");
        let per_image = pixels.len() / n;

        self.replicas[..count]
            .par_iter_mut()
            .enumerate()
            .try_for_each(|(k, r)| -> Result<(), LayerError> {
                // The master's weights, as the optimizer left them.
                for (p, v) in r.net.params_mut().into_iter().zip(&values) {
                    p.value
                        .as_slice_mut()
                        .expect("parameters are contiguous")
                        .copy_from_slice(v);
                }
                let (lo, hi) = (k * mb, ((k + 1) * mb).min(n));
                let mut shape = images.shape().to_vec();
                shape[0] = hi - lo;
                if r.input.shape() != shape {
                    r.input = Tensor::zeros(shape);
                }
                r.input
                    .as_slice_mut()
                    .expect("contiguous")
                    .copy_from_slice(&pixels[lo * per_image..hi * per_image]);
                let logits = r.net.forward(&r.input)?;
                one_hot_into(&labels[lo..hi], classes, &mut r.target);
                r.loss = loss_fn.forward_backward(logits, &r.target, &mut r.grad)?;
                r.correct = count_correct(logits, &labels[lo..hi]);
                r.net.backward(&r.grad)
            })?;

        // Each micro-batch's gradient is that of its own mean loss; the
        // batch's mean is their sum weighted by n_k / N, added in order k.
        // On this thread alone (about 0.1 ms): a parallel loop here would be
        // one more place for the threads to wait on each other.
        let replicas = &self.replicas[..count];
        let weights: Vec<f32> = (0..count)
            .map(|k| (((k + 1) * mb).min(n) - k * mb) as f32 / n as f32)
            .collect();
        let grads: Vec<Vec<&[f32]>> = replicas
            .iter()
            .map(|r| {
                r.net
                    .params()
                    .into_iter()
                    .map(|p| p.grad.as_slice().expect("gradients are contiguous"))
                    .collect()
            })
            .collect();
        for (j, p) in master.params_mut().into_iter().enumerate() {
            p.grad
                .as_slice_mut()
                .expect("gradients are contiguous")
                .chunks_mut(BLOCK)
                .enumerate()
                .for_each(|(c, dst)| {
                    let at = c * BLOCK;
                    for (k, (g, &w)) in grads.iter().zip(&weights).enumerate() {
                        let src = &g[j][at..at + dst.len()];
                        if k == 0 {
                            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = w * s);
                        } else {
                            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += w * s);
                        }
                    }
                });
        }
        let loss = replicas
            .iter()
            .enumerate()
            .map(|(k, r)| r.loss * (((k + 1) * mb).min(n) - k * mb) as f64 / n as f64)
            .sum();
        let correct = replicas.iter().map(|r| r.correct).sum();
        Ok(StepResult { loss, correct })
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

    fn grads(net: &Network) -> Vec<Vec<f32>> {
        net.params()
            .iter()
            .map(|p| p.grad.iter().copied().collect())
            .collect()
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
        let r = DataParallel::new(12)
            .step(&mut b, &Loss::SoftmaxCrossEntropy, &x, &labels)
            .unwrap();
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
                    let r = DataParallel::new(5)
                        .step(&mut net, &Loss::SoftmaxCrossEntropy, &x, &labels)
                        .unwrap();
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
        dp.step(&mut net, &Loss::SoftmaxCrossEntropy, &x, &labels)
            .unwrap();
        for p in net.params_mut() {
            p.value.mapv_inplace(|v| v * 0.5);
        }
        let r = dp
            .step(&mut net, &Loss::SoftmaxCrossEntropy, &x, &labels)
            .unwrap();
        let mut fresh = seed_network();
        for p in fresh.params_mut() {
            p.value.mapv_inplace(|v| v * 0.5);
        }
        let r2 = DataParallel::new(4)
            .step(&mut fresh, &Loss::SoftmaxCrossEntropy, &x, &labels)
            .unwrap();
        assert_eq!(r, r2);
        assert_eq!(grads(&net), grads(&fresh));
    }

    #[test]
    fn a_batch_without_images_is_an_error() {
        let (x, _) = batch(2);
        let err = DataParallel::new(4)
            .step(
                &mut seed_network(),
                &Loss::SoftmaxCrossEntropy,
                &x,
                &[1, 2, 3],
            )
            .unwrap_err();
        assert!(err.to_string().contains("3 labels"), "{err}");
    }
}
