//! The data a run reads: a folder of IDX files, and mini-batches as tensors.

use std::path::Path;

use std::ops::Range;

use anyhow::{Context, Result};
use mnist_io::{Dataset, Split};
use tensor::Tensor;

use crate::step::BatchSource;

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

/// Checks that the network `net` can take the examples of `ds` (`what`
/// names the set in errors, e.g. `the test set in data/mnist`): the set is
/// not empty, its images are the network's input size, and the network has
/// one output per class.
pub fn check_fits(net: &layers::Network, ds: &Dataset, what: &str) -> Result<()> {
    if ds.is_empty() {
        anyhow::bail!("{what} is empty: it has no images");
    }
    let [c, h, w] = crate::config::image_input(net.config())?;
    if [c, h, w] != [1, ds.rows(), ds.cols()] {
        anyhow::bail!(
            "{what} holds {}x{} grey images (input [1, {}, {}]), but the network's input is [{c}, {h}, {w}]",
            ds.rows(),
            ds.cols(),
            ds.rows(),
            ds.cols()
        );
    }
    let classes = ds.label_histogram().len();
    if net.outputs() != classes {
        anyhow::bail!(
            "{what} has {classes} classes, but the network ends with {} outputs; its last layer must have one output per class",
            net.outputs()
        );
    }
    Ok(())
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

/// The examples at `indices` of a data set, kept as its u8 pixels until a
/// micro-batch asks for its share (see [`crate::step`]).
pub struct DatasetBatch<'a> {
    /// The data set.
    pub data: &'a Dataset,
    /// The batch's examples, by index in `data`.
    pub indices: &'a [usize],
    /// `(mean, std)` to normalise pixels with, after scaling them to [0, 1].
    pub norm: Option<(f32, f32)>,
}

impl BatchSource for DatasetBatch<'_> {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn example_shape(&self) -> Vec<usize> {
        vec![1, self.data.rows(), self.data.cols()]
    }
    fn fill(&self, range: Range<usize>, images: &mut [f32], labels: &mut [usize]) {
        self.data
            .fill_batch(&self.indices[range], self.norm, images, labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any range of the batch fills the same floats and labels as the
    /// whole batch does at those places.
    #[test]
    fn a_range_fills_its_part_of_the_whole_batch() {
        let pixels = (0..20 * 30).map(|i| (i * 7 % 256) as u8).collect();
        let labels = (0..20).map(|i| (i % 10) as u8).collect();
        let ds = Dataset::from_parts(pixels, labels, 6, 5).unwrap();
        let indices = [4, 17, 0, 9, 9, 12, 3];
        let norm = Some((0.13, 0.31));
        let mut whole = Batch::default();
        whole.fill(&ds, &indices, norm);
        let batch = DatasetBatch {
            data: &ds,
            indices: &indices,
            norm,
        };
        assert_eq!(batch.len(), 7);
        assert_eq!(batch.example_shape(), vec![1, 6, 5]);
        let (mut images, mut labels) = (vec![0.0; 3 * 30], vec![0; 3]);
        batch.fill(2..5, &mut images, &mut labels);
        assert_eq!(images, whole.images.as_slice().unwrap()[2 * 30..5 * 30]);
        assert_eq!(labels, whole.labels[2..5]);
    }
}
