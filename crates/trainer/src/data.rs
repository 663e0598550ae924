//! The data a run reads: a folder of IDX files, and mini-batches as tensors.

use std::path::Path;

use std::ops::Range;

use anyhow::{Context, Result};
use mnist_io::{Dataset, Motion, Split};
use tensor::{Rng, Tensor};

use crate::config::Augmentation;
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
    /// Random motions, and the step's key: example j of the batch is moved
    /// by a motion drawn from `Rng::from_keys(&[key, j])`, whichever
    /// micro-batch and thread fill it.
    pub augment: Option<(&'a Augmentation, u64)>,
}

/// A motion within `augment`'s limits, drawn from `rng`: the shifts first
/// (columns, rows), then the angle.
pub fn draw_motion(augment: &Augmentation, rng: &mut Rng) -> Motion {
    let s = u64::from(augment.shift);
    let mut shift = || (rng.below(2 * s + 1) as i64 - s as i64) as f32;
    let (dx, dy) = (shift(), shift());
    let degrees = f64::from(augment.rotation);
    let angle = rng.uniform(-degrees, degrees).to_radians() as f32;
    Motion { angle, dx, dy }
}

impl BatchSource for DatasetBatch<'_> {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn example_shape(&self) -> Vec<usize> {
        vec![1, self.data.rows(), self.data.cols()]
    }
    fn fill(&self, range: Range<usize>, images: &mut [f32], labels: &mut [usize]) {
        let first = range.start;
        self.data
            .fill_batch(&self.indices[range], self.norm, images, labels);
        let Some((augment, key)) = self.augment else {
            return;
        };
        // What a black pixel (byte 0) becomes: the moved image's background.
        let background = self.norm.map_or(0.0, |(mean, std)| -mean / std);
        let (rows, cols) = (self.data.rows(), self.data.cols());
        let mut original = vec![0.0; rows * cols];
        for (j, image) in images.chunks_exact_mut(rows * cols).enumerate() {
            let motion = draw_motion(augment, &mut Rng::from_keys(&[key, (first + j) as u64]));
            original.copy_from_slice(image);
            motion.apply(&original, rows, cols, background, image);
        }
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
            augment: None,
        };
        assert_eq!(batch.len(), 7);
        assert_eq!(batch.example_shape(), vec![1, 6, 5]);
        let (mut images, mut labels) = (vec![0.0; 3 * 30], vec![0; 3]);
        batch.fill(2..5, &mut images, &mut labels);
        assert_eq!(images, whole.images.as_slice().unwrap()[2 * 30..5 * 30]);
        assert_eq!(labels, whole.labels[2..5]);
    }

    /// With augmentation, an example's moved image depends on the key and
    /// its place in the batch only: filling it as part of any range gives
    /// the same values, another key moves it otherwise, and the images do move.
    #[test]
    fn augmented_examples_do_not_depend_on_the_range_that_fills_them() {
        let pixels = (0..20 * 64).map(|i| (i * 7 % 256) as u8).collect();
        let labels = (0..20).map(|i| (i % 10) as u8).collect();
        let ds = Dataset::from_parts(pixels, labels, 8, 8).unwrap();
        let indices = [4, 17, 0, 9, 9, 12, 3];
        let augment = Augmentation {
            shift: 2,
            rotation: 10.0,
        };
        let fill = |key: u64, range: Range<usize>| {
            let batch = DatasetBatch {
                data: &ds,
                indices: &indices,
                norm: Some((0.13, 0.31)),
                augment: Some((&augment, key)),
            };
            let mut images = vec![0.0; range.len() * 64];
            let mut labels = vec![0; range.len()];
            batch.fill(range, &mut images, &mut labels);
            images
        };
        let whole = fill(7, 0..7);
        assert_eq!(fill(7, 2..5), whole[2 * 64..5 * 64]);
        assert_eq!(fill(7, 6..7), whole[6 * 64..]);
        assert_ne!(fill(8, 0..7), whole);
        let mut plain = Batch::default();
        plain.fill(&ds, &indices, Some((0.13, 0.31)));
        assert_ne!(whole, plain.images.as_slice().unwrap());
    }

    #[test]
    fn motions_stay_within_the_limits() {
        let augment = Augmentation {
            shift: 2,
            rotation: 10.0,
        };
        let mut seen = std::collections::BTreeSet::new();
        for j in 0..500 {
            let m = draw_motion(&augment, &mut Rng::from_keys(&[1, j]));
            assert!(m.dx.abs() <= 2.0 && m.dy.abs() <= 2.0 && m.dx.fract() == 0.0);
            assert!(m.angle.abs() <= 10f32.to_radians());
            seen.insert(m.dx as i64);
        }
        assert_eq!(seen.len(), 5, "every shift from -2 to 2 is drawn");
    }
}
