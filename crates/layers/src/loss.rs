//! Losses: a scalar from the network's output and the targets, and its
//! gradient with respect to that output. All are means over the batch.
//!
//! * Softmax cross-entropy: `L = −(1/N) Σₙ Σₖ tₙₖ · ln softmax(xₙ)ₖ`.
//!   With `ln softmax(x)ₖ = xₖ − lse(x)` and `lse(x) = m + ln Σⱼ e^(xⱼ − m)`,
//!   `m = maxⱼ xⱼ`: subtracting the row maximum keeps every exponent ≤ 0, so
//!   nothing overflows however large the logits. The gradient is
//!   `∂L/∂xₙⱼ = ((Σₖ tₙₖ)·softmax(xₙ)ⱼ − tₙⱼ) / N`, i.e. `(softmax − t) / N`
//!   for one-hot targets.
//! * MSE, the post's Euclidean loss: `L = (1/N) Σₙ ½ Σₖ (tₙₖ − yₙₖ)²`, so
//!   `∂L/∂y = (y − t) / N`.
//! * Sigmoid + binary cross-entropy (logistic regression), on logits x:
//!   `L = (1/N) Σ [max(x, 0) − t·x + ln(1 + e^(−|x|))]` (the stable form of
//!   `−t ln σ(x) − (1 − t) ln(1 − σ(x))`), so `∂L/∂x = (σ(x) − t) / N`.
//!
//! Sums run in f64, row by row in order, so the loss is exact to f32's
//! precision and independent of threads.

use serde::{Deserialize, Serialize};
use tensor::Tensor;

use crate::layer::{data, data_mut, ensure_shape};
use crate::LayerError;

/// What a loss compares the output with.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// One row per example, the output's shape.
    Dense(&'a Tensor),
    /// One class per example, checked to be below the number of outputs.
    Labels(&'a [usize]),
}

/// Which loss a network is trained with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Loss {
    /// Softmax followed by cross-entropy against target probabilities (one-hot labels).
    #[default]
    SoftmaxCrossEntropy,
    /// Half the squared error, summed over outputs, mean over the batch.
    Mse,
    /// Sigmoid on each output followed by binary cross-entropy.
    SigmoidBinaryCrossEntropy,
}

impl Loss {
    /// The name used in configs.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::SoftmaxCrossEntropy => "softmax_cross_entropy",
            Loss::Mse => "mse",
            Loss::SigmoidBinaryCrossEntropy => "sigmoid_binary_cross_entropy",
        }
    }

    fn check(&self, output: &Tensor, target: Target<'_>) -> Result<(usize, usize), LayerError> {
        let err = |m: String| LayerError::new("loss", self.name(), m);
        if output.ndim() != 2 {
            return Err(err(format!(
                "expected output [N, classes], got {:?}",
                output.shape()
            )));
        }
        let (n, k) = (output.shape()[0], output.shape()[1]);
        match target {
            Target::Dense(target) => {
                if target.shape() != output.shape() {
                    return Err(err(format!(
                        "target {:?} does not match output {:?}",
                        target.shape(),
                        output.shape()
                    )));
                }
                if !target.is_standard_layout() {
                    return Err(err(
                        "output and target must be in standard row-major layout".into(),
                    ));
                }
            }
            Target::Labels(labels) => {
                if labels.len() != n {
                    return Err(err(format!(
                        "{} labels for an output of {n} rows {:?}",
                        labels.len(),
                        output.shape()
                    )));
                }
                if let Some((row, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
                    return Err(err(format!(
                        "label {label} (row {row}) is out of range for {k} classes"
                    )));
                }
            }
        }
        if !output.is_standard_layout() {
            return Err(err(
                "output and target must be in standard row-major layout".into(),
            ));
        }
        Ok((n, k))
    }

    /// The mean loss over the batch, against target rows (one-hot labels or probabilities).
    pub fn forward(&self, output: &Tensor, target: &Tensor) -> Result<f64, LayerError> {
        self.compute(output, Target::Dense(target), None)
    }

    /// The mean loss over the batch against target rows (one-hot labels or
    /// probabilities, the shape of `output`), and d(loss)/d(output) written
    /// into `grad` (reshaped to the output's shape, its allocation reused).
    /// For class labels, [`Loss::with_labels`] is shorter.
    pub fn forward_backward(
        &self,
        output: &Tensor,
        target: &Tensor,
        grad: &mut Tensor,
    ) -> Result<f64, LayerError> {
        ensure_shape(grad, output.shape());
        self.compute(output, Target::Dense(target), Some(grad))
    }

    /// The mean loss over the batch for class `labels` (one per row of
    /// `output`, each below the number of columns), and d(loss)/d(output).
    /// The same bits as [`Loss::forward_backward`] with the labels' one-hot
    /// rows ([`one_hot_into`]); a label out of range is an error.
    ///
    /// ```
    /// use layers::Loss;
    /// use tensor::Tensor;
    ///
    /// let logits = Tensor::from_shape_vec(vec![2, 3], vec![0.0, 1.0, 2.0, 0.5, 0.5, 0.5]).unwrap();
    /// let (loss, grad) = Loss::SoftmaxCrossEntropy.with_labels(&logits, &[2, 0]).unwrap();
    /// assert!(loss > 0.0 && grad.shape() == logits.shape());
    /// let err = Loss::SoftmaxCrossEntropy.with_labels(&logits, &[2, 3]).unwrap_err();
    /// assert_eq!(err.to_string(), "loss (softmax_cross_entropy): label 3 (row 1) is out of range for 3 classes");
    /// ```
    pub fn with_labels(
        &self,
        output: &Tensor,
        labels: &[usize],
    ) -> Result<(f64, Tensor), LayerError> {
        let mut grad = Tensor::zeros(output.shape());
        let loss = self.compute(output, Target::Labels(labels), Some(&mut grad))?;
        Ok((loss, grad))
    }

    /// [`Loss::with_labels`], writing d(loss)/d(output) into `grad` (reshaped
    /// to the output's shape, its allocation reused from step to step).
    pub fn with_labels_into(
        &self,
        output: &Tensor,
        labels: &[usize],
        grad: &mut Tensor,
    ) -> Result<f64, LayerError> {
        ensure_shape(grad, output.shape());
        self.compute(output, Target::Labels(labels), Some(grad))
    }

    fn compute(
        &self,
        output: &Tensor,
        target: Target<'_>,
        grad: Option<&mut Tensor>,
    ) -> Result<f64, LayerError> {
        let (n, k) = self.check(output, target)?;
        if n == 0 || k == 0 {
            return Ok(0.0);
        }
        let x = data(output);
        let mut grad = grad.map(data_mut);
        let inv_n = 1.0 / n as f64;
        let mut total = 0f64;
        // A label's one-hot row, so that labels run the very arithmetic of
        // one-hot targets and give the same bits.
        let mut one_hot = Vec::new();
        for r in 0..n {
            let xr = &x[r * k..(r + 1) * k];
            let tr: &[f32] = match target {
                Target::Dense(t) => &data(t)[r * k..(r + 1) * k],
                Target::Labels(labels) => {
                    one_hot.clear();
                    one_hot.resize(k, 0.0);
                    one_hot[labels[r]] = 1.0;
                    &one_hot
                }
            };
            let mut g = grad.as_deref_mut().map(|g| &mut g[r * k..(r + 1) * k]);
            match self {
                Loss::SoftmaxCrossEntropy => {
                    let m = xr.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                    let sum_exp: f64 = xr.iter().map(|&v| (v as f64 - m).exp()).sum();
                    let lse = m + sum_exp.ln();
                    let t_sum: f64 = tr.iter().map(|&v| v as f64).sum();
                    total += xr
                        .iter()
                        .zip(tr)
                        .map(|(&xv, &tv)| tv as f64 * (lse - xv as f64))
                        .sum::<f64>();
                    if let Some(g) = g.as_deref_mut() {
                        for ((gv, &xv), &tv) in g.iter_mut().zip(xr).zip(tr) {
                            let p = (xv as f64 - lse).exp();
                            *gv = ((t_sum * p - tv as f64) * inv_n) as f32;
                        }
                    }
                }
                Loss::Mse => {
                    total += 0.5
                        * xr.iter()
                            .zip(tr)
                            .map(|(&y, &tv)| (tv as f64 - y as f64).powi(2))
                            .sum::<f64>();
                    if let Some(g) = g.as_deref_mut() {
                        for ((gv, &y), &tv) in g.iter_mut().zip(xr).zip(tr) {
                            *gv = ((y as f64 - tv as f64) * inv_n) as f32;
                        }
                    }
                }
                Loss::SigmoidBinaryCrossEntropy => {
                    for (j, (&xv, &tv)) in xr.iter().zip(tr).enumerate() {
                        let (xv, tv) = (xv as f64, tv as f64);
                        total += xv.max(0.0) - tv * xv + (-xv.abs()).exp().ln_1p();
                        if let Some(g) = g.as_deref_mut() {
                            let s = if xv >= 0.0 {
                                1.0 / (1.0 + (-xv).exp())
                            } else {
                                xv.exp() / (1.0 + xv.exp())
                            };
                            g[j] = ((s - tv) * inv_n) as f32;
                        }
                    }
                }
            }
        }
        Ok(total * inv_n)
    }

    /// What the network predicts, as probabilities, for one output row:
    /// softmax for cross-entropy, σ for binary cross-entropy, and the outputs
    /// themselves for MSE.
    pub fn probabilities(&self, row: &[f32]) -> Vec<f32> {
        match self {
            Loss::SoftmaxCrossEntropy => {
                let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let e: Vec<f64> = row.iter().map(|&v| ((v - m) as f64).exp()).collect();
                let s: f64 = e.iter().sum();
                e.iter().map(|v| (v / s) as f32).collect()
            }
            Loss::SigmoidBinaryCrossEntropy => {
                row.iter().map(|&v| crate::sigmoid::sigmoid(v)).collect()
            }
            Loss::Mse => row.to_vec(),
        }
    }
}

/// The share of the rows of `logits` (N x K) whose largest output is at
/// their label: the accuracy of a batch.
///
/// ```
/// use tensor::Tensor;
///
/// let logits = Tensor::from_shape_vec(vec![2, 3], vec![0.1, 0.7, 0.2, 0.9, 0.0, 0.1]).unwrap();
/// assert_eq!(layers::accuracy(&logits, &[1, 2]), 0.5);
/// ```
pub fn accuracy(logits: &Tensor, labels: &[usize]) -> f64 {
    count_correct(logits, labels) as f64 / labels.len().max(1) as f64
}

/// How many rows of `logits` (N x K) have their largest output at their
/// label; allocates nothing, for the training step.
pub fn count_correct(logits: &Tensor, labels: &[usize]) -> usize {
    let k = logits.shape().get(1).copied().unwrap_or(1).max(1);
    let rows = logits.as_slice().expect("layer outputs are contiguous");
    rows.chunks_exact(k)
        .zip(labels)
        .filter(|(row, &label)| tensor::argmax(row) == label)
        .count()
}

/// Writes one-hot rows for `labels` into `target` (reshaped to N x `classes`,
/// allocation reused). A label of `classes` or more gives a row of zeros;
/// [`Loss::with_labels`] takes labels directly and refuses such a label.
pub fn one_hot_into(labels: &[usize], classes: usize, target: &mut Tensor) {
    ensure_shape(target, &[labels.len(), classes]);
    let t = data_mut(target);
    t.fill(0.0);
    for (r, &l) in labels.iter().enumerate() {
        if l < classes {
            t[r * classes + l] = 1.0;
        }
    }
}
