//! The data a run reads: a folder of IDX files, and mini-batches as tensors.

use std::path::Path;

use anyhow::{Context, Result};
use mnist_io::{Dataset, Split};
use tensor::Tensor;

/// A training and a test set from one folder.
pub struct DataSets {
    /// 60,000 images for MNIST.
    pub train: Dataset,
    /// 10,000 images for MNIST.
    pub test: Dataset,
}

impl DataSets {
    /// Loads `train-*` and `t10k-*` IDX files (gzipped or not) from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let train = Dataset::load(dir, Split::Train)
            .with_context(|| format!("loading the training set from {}", dir.display()))?;
        let test = Dataset::load(dir, Split::Test)
            .with_context(|| format!("loading the test set from {}", dir.display()))?;
        Ok(DataSets { train, test })
    }

    /// The data set's name when its files are a known one (`mnist`, `fashion-mnist`).
    pub fn name(&self) -> Option<String> {
        self.train.spec().map(|s| s.name.to_string())
    }
}

/// Class names of a known data set, or the digits 0-9.
pub fn class_names(ds: &Dataset) -> Vec<String> {
    match ds.class_names() {
        Some(names) => names.iter().map(|s| s.to_string()).collect(),
        None => (0..10).map(|i| i.to_string()).collect(),
    }
}

/// A mini-batch buffer reused from step to step.
pub struct Batch {
    /// N x 1 x rows x cols pixels.
    pub images: Tensor,
    /// N labels.
    pub labels: Vec<usize>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            images: Tensor::zeros(vec![0, 1, 1, 1]),
            labels: Vec::new(),
        }
    }
}

impl Batch {
    /// Fills the buffer with the examples at `indices` (reallocating only when the batch size changes).
    pub fn fill(&mut self, ds: &Dataset, indices: &[usize], norm: Option<(f32, f32)>) {
        let shape = [indices.len(), 1, ds.rows(), ds.cols()];
        if self.images.shape() != shape {
            self.images = Tensor::zeros(shape.to_vec());
        }
        self.labels.resize(indices.len(), 0);
        ds.fill_batch(
            indices,
            norm,
            self.images.as_slice_mut().expect("contiguous"),
            &mut self.labels,
        );
    }
}
