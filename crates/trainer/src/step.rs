//! One training step, the plain way: the batch's micro-batches one after
//! another on one network, then the optimizer's update.
//!
//! ```text
//! for each micro-batch k (examples range_k of the batch, n_k of them):
//!     inputs  = the examples range_k as tensors               n_k x 1 x 28 x 28
//!     logits  = net.forward_train_with_noise(inputs, rng_k)   n_k x 10
//!     loss_k, d(loss_k)/d(logits) = loss(logits, labels)
//!     net.backward(d(loss_k)/d(logits))       each Param::grad = d(loss_k)/d(param)
//!     sum    += (n_k / n) * grad              in order k
//! Param::grad = sum                           the gradient of the batch's mean loss
//! optimizer.step(params)                      d = mu*d + (g + lambda*W); W -= lr*d
//! ```
//!
//! The batch is cut into micro-batches (of 25 in the seed config) because
//! that cut is what [`crate::parallel`] runs in parallel: doing the same
//! micro-batches here, in the same order, makes the two steps give the same
//! bits. Micro-batch k's random stream (dropout's masks) is
//! `Rng::from_keys(&[key, k])`, where `key` is the step's key ([`step_key`]:
//! from the run's seed and the step's place). Batch norm
//! normalises each micro-batch by its own statistics and folds them into
//! its running statistics in order k.

use std::ops::Range;

use layers::{count_correct, LayerError, Loss, Network};
use optim::Optimizer;
use tensor::{Rng, Tensor};

use crate::batch::{Batch, BatchTensors};

/// A batch's mean loss and the number of its examples classified correctly.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepResult {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Examples whose largest output is their label.
    pub correct: usize,
}

/// The stream of a step's dropout masks, for [`step_key`].
pub const DROPOUT_STREAM: u64 = 0;
/// The stream of a step's augmentation (shifts and rotations), for [`step_key`].
pub const AUGMENT_STREAM: u64 = 1;

/// The key of random stream `stream` ([`DROPOUT_STREAM`], [`AUGMENT_STREAM`])
/// of the step on batch `batch` of epoch `epoch` (both from 0) of a run
/// seeded `seed`. A function of the step's place alone: a resumed run, or
/// the same run elsewhere, draws the same.
pub fn step_key(seed: u64, epoch: u64, batch: u64, stream: u64) -> u64 {
    Rng::from_keys(&[seed, epoch, batch, stream]).next_u64()
}

/// The buffers of one micro-batch: its inputs and labels, and the loss's
/// gradient with respect to the logits. Reused from step to step.
#[derive(Default)]
pub(crate) struct MicroBatch {
    inputs: BatchTensors,
    grad_logits: Tensor,
}

impl MicroBatch {
    /// Forward in training mode (dropout drawing from `rng`), loss and
    /// backward for the examples `range` of `batch`: leaves the gradient of
    /// the micro-batch's mean loss in `net`'s parameters (`Param::grad`)
    /// and returns that loss and the number of examples classified correctly.
    pub fn forward_backward(
        &mut self,
        net: &mut Network,
        loss: &Loss,
        batch: &dyn Batch,
        range: Range<usize>,
        rng: &mut Rng,
    ) -> Result<(f64, usize), LayerError> {
        self.inputs.fill(batch, range);
        let labels = &self.inputs.labels;
        let logits = net.forward_train_with_noise(&self.inputs.images, rng)?;
        let mean_loss = loss.with_labels_into(logits, labels, &mut self.grad_logits)?;
        let correct = count_correct(logits, labels);
        net.backward(&self.grad_logits)?;
        Ok((mean_loss, correct))
    }
}

/// The examples of each micro-batch of a batch of `n`: `0..size`,
/// `size..2*size`, ..., the last one shorter if `size` does not divide `n`.
pub fn micro_batches(n: usize, size: usize) -> impl ExactSizeIterator<Item = Range<usize>> {
    let size = size.max(1);
    (0..n.div_ceil(size)).map(move |k| k * size..((k + 1) * size).min(n))
}

/// `dst = share * grad` for the first micro-batch, `dst += share * grad`
/// after it: one term of the batch gradient `Σ_k (n_k / n) · grad_k`.
pub(crate) fn add_share(dst: &mut [f32], grad: &[f32], share: f32, first: bool) {
    if first {
        dst.iter_mut().zip(grad).for_each(|(d, &g)| *d = share * g);
    } else {
        dst.iter_mut().zip(grad).for_each(|(d, &g)| *d += share * g);
    }
}

/// The error of a batch with no example.
pub(crate) fn empty_batch() -> LayerError {
    LayerError::new("input", "network", "a batch with at least one example")
}

/// Forward, loss and backward for `batch`, a micro-batch of `micro_batch`
/// examples at a time: leaves the gradient of the batch's mean loss in
/// `net`'s parameters and returns the loss and the correct count. `key` is
/// the step's key: micro-batch k draws from `Rng::from_keys(&[key, k])`.
pub fn forward_backward(
    net: &mut Network,
    loss: &Loss,
    batch: &dyn Batch,
    micro_batch: usize,
    key: u64,
) -> Result<StepResult, LayerError> {
    // On the thread pool: the kernels inside are parallel, and each one
    // called from outside the pool would hand its work over and wait.
    rayon::scope(|_| {
        let n = batch.len();
        if n == 0 {
            return Err(empty_batch());
        }
        let mut micro = MicroBatch::default();
        let mut sum: Vec<Vec<f32>> = net
            .params()
            .iter()
            .map(|p| vec![0.0; p.grad.len()])
            .collect();
        let mut result = StepResult::default();
        for (k, range) in micro_batches(n, micro_batch).enumerate() {
            let n_k = range.len();
            let mut rng = Rng::from_keys(&[key, k as u64]);
            let (mean_loss, correct) = micro.forward_backward(net, loss, batch, range, &mut rng)?;
            for (dst, p) in sum.iter_mut().zip(net.params()) {
                let grad = p.grad.as_slice().expect("gradients are contiguous");
                add_share(dst, grad, n_k as f32 / n as f32, k == 0);
            }
            result.loss += mean_loss * n_k as f64 / n as f64;
            result.correct += correct;
        }
        for (p, sum) in net.params_mut().into_iter().zip(&sum) {
            let grad = p.grad.as_slice_mut().expect("gradients are contiguous");
            grad.copy_from_slice(sum);
        }
        Ok(result)
    })
}

/// One training step: [`forward_backward`], then the optimizer's update of
/// `net`. A batch the network cannot take is an error, and then nothing is
/// updated. The update may leave a NaN or an infinity in a parameter (a
/// learning rate far too high, say): [`first_non_finite`] tells.
pub fn step(
    net: &mut Network,
    loss: &Loss,
    batch: &dyn Batch,
    micro_batch: usize,
    key: u64,
    optimizer: &mut Optimizer,
) -> Result<StepResult, LayerError> {
    rayon::scope(|_| {
        let result = forward_backward(net, loss, batch, micro_batch, key)?;
        optimizer.step(net.params_mut());
        Ok(result)
    })
}

/// The name of the first parameter, in the network's order, that holds a
/// NaN or an infinity.
pub fn first_non_finite(net: &Network) -> Option<&str> {
    net.params().into_iter().find_map(|p| {
        let values = p.value.as_slice().expect("parameters are contiguous");
        // A fold rather than `any`: no early exit, so it vectorises.
        let finite = values.iter().fold(true, |ok, v| ok & v.is_finite());
        (!finite).then_some(p.name.as_str())
    })
}
