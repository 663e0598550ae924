//! One training step, data-parallel: the micro-batches of [`crate::step`]
//! run at the same time, each on its own copy of the network.
//!
//! **Why the bits do not depend on the thread count.** The cut into
//! micro-batches depends on nothing but the batch size and `micro_batch`.
//! Each micro-batch runs `MicroBatch::forward_backward` (in `step.rs`) on its own replica
//! of the network, by kernels whose results do not depend on the thread that
//! runs them. The batch gradient is then the micro-batch gradients summed in
//! micro-batch order, each weighted by its share of the batch, `n_k / n`:
//! the same sum, in the same order, as the plain step. So which thread ran
//! which micro-batch, and how many threads there were, changes nothing, and
//! the result is the plain step's to the bit.
//!
//! **Randomness and batch statistics.** Micro-batch k draws its dropout
//! masks from `Rng::from_keys(&[key, k])`, as in the plain step. Batch norm
//! normalises each micro-batch by that micro-batch's own mean and variance:
//! each replica computes them alone, with no exchange between threads. The
//! network's running statistics then take the micro-batches' statistics in
//! order k, one update each, as the plain step's network does running them
//! one after another.
//!
//! A step, for one batch:
//! 1. in parallel (rayon), for each micro-batch k on replica k: copy the
//!    network's weights, then forward, loss and backward: the replica's
//!    `Param::grad` now holds the gradient of micro-batch k's mean loss;
//! 2. sum: `grad = Σ_k (n_k / n) · grad_k`, in order k, into the network's
//!    own gradients (parallel over pieces of each parameter: elementwise);
//!    fold each replica's batch statistics, in order k, into the network's
//!    running statistics;
//! 3. the optimizer's update of the network: `d = μd + (g + λW); W -= ηd`.
//!
//! On a pool of one thread the replicas would run one after another and
//! only add the weight copies: there the step is the plain one,
//! [`crate::step::forward_backward`], which gives the same bits.

use layers::{LayerError, Loss, Network, Param};
use optim::Optimizer;
use rayon::prelude::*;
use tensor::Rng;

use crate::batch::Batch;
use crate::step::{add_share, empty_batch, micro_batches, MicroBatch, StepResult};

/// One micro-batch's copy of the network and its buffers.
struct Replica {
    net: Network,
    micro: MicroBatch,
}

impl Replica {
    /// Copies `weights`, the network's parameters, into the replica's.
    fn load(&mut self, weights: &[&Param]) {
        for (mine, master) in self.net.params_mut().into_iter().zip(weights) {
            let values = master.value.as_slice().expect("parameters are contiguous");
            mine.value
                .as_slice_mut()
                .expect("parameters are contiguous")
                .copy_from_slice(values);
        }
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

    /// [`crate::step::forward_backward`], the micro-batches in parallel:
    /// leaves the gradient of the batch's mean loss in `net`'s parameters,
    /// folds the micro-batches' statistics into its running statistics
    /// (batch norm), and returns the loss and the correct count. `net`'s
    /// weights are not changed. `key` is the step's key.
    pub fn forward_backward(
        &mut self,
        net: &mut Network,
        loss: &Loss,
        batch: &dyn Batch,
        key: u64,
    ) -> Result<StepResult, LayerError> {
        if rayon::current_num_threads() == 1 {
            return crate::step::forward_backward(net, loss, batch, self.micro_batch, key);
        }
        let n = batch.len();
        if n == 0 {
            return Err(empty_batch());
        }
        let ranges: Vec<_> = micro_batches(n, self.micro_batch).collect();
        self.make_replicas(net, ranges.len())?;
        let replicas = &mut self.replicas[..ranges.len()];

        // 1. Each micro-batch on its own replica, in parallel.
        let weights = net.params();
        let parts = replicas
            .par_iter_mut()
            .zip(ranges.par_iter())
            .enumerate()
            .map(|(k, (replica, range))| {
                replica.load(&weights);
                let mut rng = Rng::from_keys(&[key, k as u64]);
                let Replica { net, micro } = replica;
                micro.forward_backward(net, loss, batch, range.clone(), &mut rng)
            })
            .collect::<Result<Vec<(f64, usize)>, LayerError>>()?;

        // 2. The batch gradient: Σ_k (n_k / n) · grad_k, in order k; then the
        // running statistics, each micro-batch's in order k.
        sum_gradients(net, replicas, &ranges, n);
        for replica in replicas.iter() {
            net.track_running_stats_of(&replica.net);
        }

        let mut result = StepResult::default();
        for ((mean_loss, correct), range) in parts.into_iter().zip(&ranges) {
            result.loss += mean_loss * range.len() as f64 / n as f64;
            result.correct += correct;
        }
        Ok(result)
    }

    /// At least `count` replicas of `net`: rebuilt if `net` is another network.
    fn make_replicas(&mut self, net: &Network, count: usize) -> Result<(), LayerError> {
        if self
            .replicas
            .first()
            .is_some_and(|r| r.net.config() != net.config())
        {
            self.replicas.clear();
        }
        while self.replicas.len() < count {
            // Its weights are overwritten at each step.
            let copy = net
                .config()
                .build(&mut Rng::seed_from_u64(0))
                .map_err(|e| LayerError::new("network", "network", e.to_string()))?;
            self.replicas.push(Replica {
                net: copy,
                micro: MicroBatch::default(),
            });
        }
        Ok(())
    }

    /// One training step: [`DataParallel::forward_backward`] with the step's
    /// key `key`, then `optimizer`'s update of `net`. Returns the batch's
    /// loss and correct count: the plain [`crate::step::step`]'s, to the bit.
    /// A batch the network cannot take is an error, and then nothing is updated.
    pub fn step(
        &mut self,
        net: &mut Network,
        loss: &Loss,
        batch: &dyn Batch,
        key: u64,
        optimizer: &mut Optimizer,
    ) -> Result<StepResult, LayerError> {
        let result = self.forward_backward(net, loss, batch, key)?;
        optimizer.step(net.params_mut());
        Ok(result)
    }
}

/// Elements per parallel task of the gradient sum (fc1's 200k weights: 13 tasks).
const SUM_CHUNK: usize = 1 << 14;

/// `net`'s gradients = Σ_k (n_k / n) · (replica k's), in order k, each
/// parameter in pieces of [`SUM_CHUNK`] in parallel (the sum is elementwise).
fn sum_gradients(
    net: &mut Network,
    replicas: &[Replica],
    ranges: &[std::ops::Range<usize>],
    n: usize,
) {
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
    for (j, p) in net.params_mut().into_iter().enumerate() {
        let dst = p.grad.as_slice_mut().expect("gradients are contiguous");
        dst.par_chunks_mut(SUM_CHUNK)
            .enumerate()
            .for_each(|(c, dst)| {
                let at = c * SUM_CHUNK;
                for (k, grad) in grads.iter().enumerate() {
                    let share = ranges[k].len() as f32 / n as f32;
                    add_share(dst, &grad[j][at..at + dst.len()], share, k == 0);
                }
            });
    }
}
