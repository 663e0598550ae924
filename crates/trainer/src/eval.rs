//! Evaluation: loss, accuracy, per-class accuracy and the confusion matrix.

use anyhow::{anyhow, Result};
use layers::{one_hot_into, Loss, Network};
use mnist_io::{Dataset, Normalize};
use rayon::prelude::*;
use tensor::Tensor;

use crate::batch::{BatchTensors, DatasetBatch};

/// The figures of one pass over a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss per example.
    pub loss: f64,
    /// Fraction of examples classified correctly.
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// Examples evaluated.
    pub count: usize,
}

/// Index of the largest output of each row of `logits` (N x K).
pub fn predictions(logits: &Tensor) -> Vec<usize> {
    let k = logits.shape()[1];
    logits
        .as_slice()
        .expect("contiguous")
        .chunks_exact(k.max(1))
        .map(tensor::argmax)
        .collect()
}

/// Runs the network over the whole of `ds`, `batch` examples at a time.
///
/// The batches run in parallel, a contiguous run of them on each of a few
/// copies of the network, and their losses are added in batch order
/// afterwards: the same batches, the same kernels and the same order of
/// addition as [`evaluate_each`], so the same figures to the bit, on any
/// number of threads. (Running the batches one after another, each layer
/// parallel inside, leaves the second core idle a third of the time.)
pub fn evaluate(
    net: &Network,
    ds: &Dataset,
    batch: usize,
    normalize: Option<Normalize>,
) -> Result<Evaluation> {
    let order: Vec<usize> = (0..ds.len()).collect();
    let batches: Vec<&[usize]> = mnist_io::batches(&order, batch.max(1))
        .map(|(_, idx)| idx)
        .collect();
    let weights = net.state_dict();
    // Two runs of batches per thread, so that a slower thread gets less.
    let per_copy = batches
        .len()
        .div_ceil(2 * rayon::current_num_threads())
        .max(1);
    // Each run: its batches' (mean loss x size) in order, and its confusion counts.
    let runs: Vec<(Vec<f64>, Vec<Vec<u64>>)> = batches
        .par_chunks(per_copy)
        .map(|run| -> Result<(Vec<f64>, Vec<Vec<u64>>)> {
            let mut copy = net
                .config()
                .build(&mut tensor::Rng::seed_from_u64(0))
                .map_err(|e| anyhow!("{e}"))?;
            copy.load_state_dict(&weights).map_err(|e| anyhow!("{e}"))?;
            let mut pass = Pass::new(&copy, normalize);
            let losses = run
                .iter()
                .map(|idx| pass.batch(&mut copy, ds, idx, &mut |_| {}))
                .collect::<Result<_>>()?;
            Ok((losses, pass.confusion))
        })
        .collect::<Result<_>>()?;
    let classes = net.outputs();
    let mut confusion = vec![vec![0u64; classes]; classes];
    let mut loss_sum = 0f64;
    for (losses, counts) in &runs {
        for l in losses {
            loss_sum += l;
        }
        for (row, counts_row) in confusion.iter_mut().zip(counts) {
            for (c, n) in row.iter_mut().zip(counts_row) {
                *c += n;
            }
        }
    }
    Ok(Evaluation::from_counts(loss_sum, confusion, ds.len()))
}

/// What a pass over a data set keeps from batch to batch.
struct Pass {
    loss: Loss,
    normalize: Option<Normalize>,
    inputs: BatchTensors,
    target: Tensor,
    /// `confusion[true][predicted]` counts so far.
    confusion: Vec<Vec<u64>>,
}

impl Pass {
    fn new(net: &Network, normalize: Option<Normalize>) -> Pass {
        let classes = net.outputs();
        Pass {
            loss: net.config().loss,
            normalize,
            inputs: BatchTensors::default(),
            target: Tensor::zeros(vec![0]),
            confusion: vec![vec![0u64; classes]; classes],
        }
    }

    /// The examples `idx` of `ds` through `net`, each counted and shown to
    /// `each`; returns the batch's mean loss times its size.
    fn batch(
        &mut self,
        net: &mut Network,
        ds: &Dataset,
        idx: &[usize],
        each: &mut dyn FnMut(Example<'_>),
    ) -> Result<f64> {
        let classes = self.confusion.len();
        let batch = DatasetBatch {
            data: ds,
            indices: idx,
            normalize: self.normalize,
            augment: None,
        };
        self.inputs.fill(&batch, 0..idx.len());
        let logits = net
            .forward(&self.inputs.images)
            .map_err(|e| anyhow!("{e}"))?;
        one_hot_into(&self.inputs.labels, classes, &mut self.target);
        let mean = self
            .loss
            .forward(logits, &self.target)
            .map_err(|e| anyhow!("{e}"))?;
        let rows = logits
            .as_slice()
            .ok_or_else(|| anyhow!("network output is not contiguous"))?;
        for ((&index, &truth), outputs) in idx
            .iter()
            .zip(&self.inputs.labels)
            .zip(rows.chunks_exact(classes.max(1)))
        {
            let predicted = tensor::argmax(outputs);
            if truth < classes {
                self.confusion[truth][predicted] += 1;
            }
            each(Example {
                index,
                truth,
                predicted,
                outputs,
            });
        }
        Ok(mean * idx.len() as f64)
    }
}

/// One example as [`evaluate_each`] saw it.
pub struct Example<'a> {
    /// Its index in the data set.
    pub index: usize,
    /// Its label.
    pub truth: usize,
    /// The predicted class (arg-max of the outputs).
    pub predicted: usize,
    /// The network's outputs for it.
    pub outputs: &'a [f32],
}

/// [`evaluate`], calling `each` on every example as it goes (to collect mistakes, say).
pub fn evaluate_each(
    net: &mut Network,
    ds: &Dataset,
    batch: usize,
    normalize: Option<Normalize>,
    each: &mut dyn FnMut(Example<'_>),
) -> Result<Evaluation> {
    let mut pass = Pass::new(net, normalize);
    let mut loss_sum = 0f64;
    let order: Vec<usize> = (0..ds.len()).collect();
    for (_, idx) in mnist_io::batches(&order, batch.max(1)) {
        loss_sum += pass.batch(net, ds, idx, each)?;
    }
    Ok(Evaluation::from_counts(loss_sum, pass.confusion, ds.len()))
}

impl Evaluation {
    /// The figures of `count` examples from their summed loss and confusion counts.
    fn from_counts(loss_sum: f64, confusion: Vec<Vec<u64>>, count: usize) -> Evaluation {
        let correct: u64 = (0..confusion.len()).map(|c| confusion[c][c]).sum();
        let n = count.max(1) as f64;
        Evaluation {
            loss: loss_sum / n,
            accuracy: correct as f64 / n,
            confusion,
            count,
        }
    }

    /// Accuracy of each true class (NaN for a class with no examples).
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let total: u64 = row.iter().sum();
                if total == 0 {
                    f64::NAN
                } else {
                    row[c] as f64 / total as f64
                }
            })
            .collect()
    }

    /// A readable report: totals, per-class accuracy and the confusion matrix (rows: true class).
    pub fn table(&self, class_names: &[String]) -> String {
        let mut s = format!(
            "examples {}   loss {:.4}   accuracy {:.2}%\n\n",
            self.count,
            self.loss,
            100.0 * self.accuracy
        );
        let name = |c: usize| class_names.get(c).cloned().unwrap_or_else(|| c.to_string());
        let width = (0..self.confusion.len())
            .map(|c| name(c).len())
            .max()
            .unwrap_or(1)
            .max(5);
        s.push_str(&format!("{:>width$}  accuracy\n", "class"));
        for (c, acc) in self.per_class_accuracy().iter().enumerate() {
            s.push_str(&format!("{:>width$}  {:>7.2}%\n", name(c), 100.0 * acc));
        }
        s.push_str("\nconfusion matrix (rows: true class, columns: predicted)\n");
        s.push_str(&format!("{:>width$}", ""));
        for c in 0..self.confusion.len() {
            s.push_str(&format!(" {:>5}", c));
        }
        s.push('\n');
        for (c, row) in self.confusion.iter().enumerate() {
            s.push_str(&format!("{:>width$}", name(c)));
            for v in row {
                s.push_str(&format!(" {:>5}", v));
            }
            s.push('\n');
        }
        s
    }
}
