//! A batch: the examples of one step, and how they become tensors.
//!
//! A step may cut its batch into micro-batches and fill each one on the
//! thread that runs it, so a [`Batch`] is anything that can write any range
//! of its examples as floats: [`DatasetBatch`] (examples of a data set, kept
//! as bytes until then) or [`TensorBatch`] (examples already in a tensor).
//! [`BatchTensors`] holds one filled range, reused from step to step.

use std::ops::Range;

use mnist_io::{Dataset, Motion, Normalize};
use tensor::{Rng, Tensor};

use crate::config::Augmentation;

/// The examples of one step, which can fill any range of themselves: each
/// micro-batch fills its own input, on the thread that runs it.
pub trait Batch: Sync {
    /// Examples in the batch.
    fn len(&self) -> usize;
    /// Whether the batch has no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The shape of one example (channels x rows x cols).
    fn example_shape(&self) -> Vec<usize>;
    /// Writes the examples `range` into `images` (one after another, each as
    /// [`Batch::example_shape`] says) and their labels into `labels`.
    /// The same range gives the same values on any thread.
    fn fill(&self, range: Range<usize>, images: &mut [f32], labels: &mut [usize]);
}

/// The examples at `indices` of a data set, kept as its u8 pixels until a
/// micro-batch asks for its share.
pub struct DatasetBatch<'a> {
    /// The data set.
    pub data: &'a Dataset,
    /// The batch's examples, by index in `data`.
    pub indices: &'a [usize],
    /// How pixels are standardised after scaling them to [0, 1], if they are.
    pub normalize: Option<Normalize>,
    /// Random motions, and the key they are drawn with: example j of the
    /// batch is moved by a motion drawn from `Rng::from_keys(&[key, j])`,
    /// whichever micro-batch and thread fill it.
    pub augment: Option<(&'a Augmentation, u64)>,
}

impl Batch for DatasetBatch<'_> {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn example_shape(&self) -> Vec<usize> {
        vec![self.data.channels(), self.data.rows(), self.data.cols()]
    }
    fn fill(&self, range: Range<usize>, images: &mut [f32], labels: &mut [usize]) {
        let first = range.start;
        self.data
            .fill_batch(&self.indices[range], self.normalize, images, labels);
        let Some((augment, key)) = self.augment else {
            return;
        };
        // What a black pixel (byte 0) becomes: the moved image's background.
        let background = self.normalize.map_or(0.0, |n| -n.mean / n.std);
        let (rows, cols) = (self.data.rows(), self.data.cols());
        let per_image = self.data.channels() * rows * cols;
        let mut original = vec![0.0; rows * cols];
        for (j, image) in images.chunks_exact_mut(per_image).enumerate() {
            let motion = draw_motion(augment, &mut Rng::from_keys(&[key, (first + j) as u64]));
            // One motion per image, the same for each of its planes.
            for plane in image.chunks_exact_mut(rows * cols) {
                original.copy_from_slice(plane);
                motion.apply(&original, rows, cols, background, plane);
            }
        }
    }
}

/// A motion within `augment`'s limits, drawn from `rng`: the shifts first
/// (columns, rows), then the angle.
pub(crate) fn draw_motion(augment: &Augmentation, rng: &mut Rng) -> Motion {
    let s = u64::from(augment.shift);
    let mut shift = || (rng.below(2 * s + 1) as i64 - s as i64) as f32;
    let (dx, dy) = (shift(), shift());
    let degrees = f64::from(augment.rotation);
    let angle = rng.uniform(-degrees, degrees).to_radians() as f32;
    Motion { angle, dx, dy }
}

/// A batch already in memory as an N x ... tensor and N labels.
pub struct TensorBatch<'a> {
    /// The examples.
    pub images: &'a Tensor,
    /// Their labels.
    pub labels: &'a [usize],
}

impl Batch for TensorBatch<'_> {
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

/// A range of a batch as tensors: what a network takes. Its buffers are
/// reused from fill to fill, reallocated only when the size changes.
pub struct BatchTensors {
    /// n x (one example's shape) floats.
    pub images: Tensor,
    /// n labels.
    pub labels: Vec<usize>,
}

impl Default for BatchTensors {
    fn default() -> Self {
        BatchTensors {
            images: Tensor::zeros(vec![0]),
            labels: Vec::new(),
        }
    }
}

impl BatchTensors {
    /// Fills the buffers with the examples `range` of `batch`.
    pub fn fill(&mut self, batch: &dyn Batch, range: Range<usize>) {
        let mut shape = vec![range.len()];
        shape.extend(batch.example_shape());
        if self.images.shape() != shape {
            self.images = Tensor::zeros(shape);
        }
        self.labels.resize(range.len(), 0);
        let images = self.images.as_slice_mut().expect("contiguous");
        batch.fill(range, images, &mut self.labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors(batch: &dyn Batch) -> BatchTensors {
        let mut t = BatchTensors::default();
        t.fill(batch, 0..batch.len());
        t
    }

    /// Any range of the batch fills the same floats and labels as the
    /// whole batch does at those places.
    #[test]
    fn a_range_fills_its_part_of_the_whole_batch() {
        let pixels = (0..20 * 30).map(|i| (i * 7 % 256) as u8).collect();
        let labels = (0..20).map(|i| (i % 10) as u8).collect();
        let ds = Dataset::from_parts(pixels, labels, 6, 5).unwrap();
        let indices = [4, 17, 0, 9, 9, 12, 3];
        let batch = DatasetBatch {
            data: &ds,
            indices: &indices,
            normalize: Some(Normalize {
                mean: 0.13,
                std: 0.31,
            }),
            augment: None,
        };
        let whole = tensors(&batch);
        assert_eq!(whole.images.shape(), &[7, 1, 6, 5]);
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
        let batch = |augment| DatasetBatch {
            data: &ds,
            indices: &indices,
            normalize: Some(Normalize {
                mean: 0.13,
                std: 0.31,
            }),
            augment,
        };
        let fill = |key: u64, range: Range<usize>| {
            let mut images = vec![0.0; range.len() * 64];
            let mut labels = vec![0; range.len()];
            batch(Some((&augment, key))).fill(range, &mut images, &mut labels);
            images
        };
        let whole = fill(7, 0..7);
        assert_eq!(fill(7, 2..5), whole[2 * 64..5 * 64]);
        assert_eq!(fill(7, 6..7), whole[6 * 64..]);
        assert_ne!(fill(8, 0..7), whole);
        let unmoved = tensors(&batch(None));
        assert_ne!(whole, unmoved.images.as_slice().unwrap());
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

    /// A tensor batch fills exactly its own rows.
    #[test]
    fn a_tensor_batch_fills_its_rows() {
        let images =
            Tensor::from_shape_vec(vec![3, 1, 1, 2], (0..6).map(|v| v as f32).collect()).unwrap();
        let batch = TensorBatch {
            images: &images,
            labels: &[5, 6, 7],
        };
        let mut t = BatchTensors::default();
        t.fill(&batch, 1..3);
        assert_eq!(t.images.shape(), &[2, 1, 1, 2]);
        assert_eq!(t.images.as_slice().unwrap(), &[2.0, 3.0, 4.0, 5.0]);
        assert_eq!(t.labels, [6, 7]);
    }
}
