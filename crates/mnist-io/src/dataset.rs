//! [`Dataset`]: images and labels kept as bytes, served as `f32` mini-batches.

use std::path::Path;
use std::sync::Arc;

use tensor::Tensor;

use crate::idx::{check_labels, decompress_maybe_gz, find_file, parse_images, parse_labels};
use crate::order::validation_permutation;
use crate::spec::{identify, sha256_hex};
use crate::{read_maybe_gz, DatasetSpec, IdxError, Split, MAX_FILE_BYTES};

/// How pixels scaled to `[0, 1]` are standardised: `(x - mean) / std`.
/// [`Dataset::pixel_mean_std`] measures it on a training set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    /// Subtracted from every pixel.
    pub mean: f32,
    /// What the difference is divided by.
    pub std: f32,
}

/// A set of equally sized images with class labels: grey with labels
/// `0..10` from IDX files, or (from an image folder) grey or RGB with named classes.
///
/// Pixels stay `u8` (47 MB for MNIST's training set, a quarter of `f32`);
/// [`Dataset::fill_batch`] converts the few images of one mini-batch at a time.
#[derive(Clone)]
pub struct Dataset {
    /// `len * rows * cols` pixel bytes, image after image, row-major.
    pixels: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
    /// Planes per image: 1 (grey, IDX files) or 3 (red, green, blue).
    channels: usize,
    /// The known data set these examples come from, if recognised by checksum.
    spec: Option<&'static DatasetSpec>,
    /// Class names given with the examples (an image folder's), label `i`
    /// naming class `names[i]`; `None` for IDX files (ten classes).
    names: Option<Arc<[String]>>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("len", &self.len())
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("dataset", &self.spec.map(|s| s.name))
            .finish()
    }
}

impl Dataset {
    /// Reads one split of a data set from `dir`: `<dir>/{train,t10k}-images-idx3-ubyte`
    /// and `<dir>/{train,t10k}-labels-idx1-ubyte`, each either under that name or
    /// with `.gz` appended (the plain name is preferred when both exist).
    ///
    /// Gzip is detected by the magic bytes `1f 8b`, not by the name. Files
    /// whose checksums match a known data set get its [class names](Self::class_names).
    pub fn load(dir: impl AsRef<Path>, split: Split) -> Result<Dataset, IdxError> {
        let dir = dir.as_ref();
        let [images, labels] = split.file_names();
        let images = find_file(dir, &images)?;
        let labels = find_file(dir, &labels)?;
        Self::from_files(&images, &labels)
    }

    /// Reads any IDX image file and IDX label file (each gzipped or not) as a data set.
    pub fn from_files(
        images: impl AsRef<Path>,
        labels: impl AsRef<Path>,
    ) -> Result<Dataset, IdxError> {
        let (images, labels) = (images.as_ref(), labels.as_ref());
        let image_bytes = read_maybe_gz(images)?;
        let label_bytes = read_maybe_gz(labels)?;
        Self::from_idx_bytes(images, image_bytes, labels, label_bytes)
    }

    /// Parses the contents of an IDX image file and an IDX label file, each
    /// gzipped or not, as [`from_files`](Self::from_files) does after reading them.
    ///
    /// `images_path` and `labels_path` only name the data in errors.
    pub fn from_idx_bytes(
        images_path: &Path,
        images: Vec<u8>,
        labels_path: &Path,
        labels: Vec<u8>,
    ) -> Result<Dataset, IdxError> {
        let images = decompress_maybe_gz(images_path, images, MAX_FILE_BYTES)?;
        let labels = decompress_maybe_gz(labels_path, labels, MAX_FILE_BYTES)?;
        let known = identify(&sha256_hex(&images), &sha256_hex(&labels));
        let images = parse_images(images_path, images)?;
        let labels = parse_labels(labels_path, labels)?;
        if images.count != labels.len() {
            return Err(IdxError::CountMismatch {
                images_path: images_path.to_path_buf(),
                images: images.count,
                labels_path: labels_path.to_path_buf(),
                labels: labels.len(),
            });
        }
        Ok(Dataset {
            pixels: images.pixels,
            labels,
            rows: images.rows,
            cols: images.cols,
            spec: known.map(|(spec, _)| spec),
            channels: 1,
            names: None,
        })
    }

    /// A data set from raw pixels (`len * rows * cols` bytes, image after image,
    /// row-major, no IDX header) and labels (`len` bytes in `0..10`).
    ///
    /// For tests and synthetic data; it has no [class names](Self::class_names).
    /// Errors name the data `<in-memory images>` / `<in-memory labels>`.
    pub fn from_parts(
        images: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
    ) -> Result<Dataset, IdxError> {
        Self::from_planes(images, labels, [1, rows, cols], 10)
    }

    /// A data set of named classes (at most 256, as a label is a byte) and
    /// `channels` planes per image (1 grey, or 3: red, green, blue, each
    /// `rows * cols` bytes): like [`Self::from_parts`], but label `l` stands
    /// for `class_names[l]` and may be any index into it. For image folders.
    pub fn from_named_parts(
        images: Vec<u8>,
        labels: Vec<u8>,
        shape: [usize; 3],
        class_names: Vec<String>,
    ) -> Result<Dataset, IdxError> {
        let ds = Self::from_planes(images, labels, shape, class_names.len())?;
        Ok(Dataset {
            names: Some(class_names.into()),
            ..ds
        })
    }

    /// Raw pixels of `channels * rows * cols` bytes per image and labels in
    /// `0..classes`, checked; no class names.
    fn from_planes(
        images: Vec<u8>,
        labels: Vec<u8>,
        [channels, rows, cols]: [usize; 3],
        classes: usize,
    ) -> Result<Dataset, IdxError> {
        let images_path = Path::new("<in-memory images>");
        let labels_path = Path::new("<in-memory labels>");
        // An image's planes are checked as one image, `channels` times taller.
        let tall = channels.saturating_mul(rows);
        let per = (tall as u64).saturating_mul(cols as u64);
        if tall == 0 || cols == 0 || per > crate::idx::MAX_IMAGE_PIXELS {
            return Err(IdxError::BadShape {
                path: images_path.to_path_buf(),
                rows: tall as u64,
                cols: cols as u64,
            });
        }
        let expected = labels.len() as u128 * u128::from(per);
        if (images.len() as u128) != expected {
            return Err(IdxError::CountMismatch {
                images_path: images_path.to_path_buf(),
                images: images.len() / per as usize,
                labels_path: labels_path.to_path_buf(),
                labels: labels.len(),
            });
        }
        check_labels(labels_path, &labels, classes)?;
        Ok(Dataset {
            pixels: images,
            labels,
            rows,
            cols,
            spec: None,
            channels,
            names: None,
        })
    }

    /// The class names given with the examples (an image folder's folder
    /// names), if any.
    pub fn named_classes(&self) -> Option<&[String]> {
        self.names.as_deref()
    }

    /// How many classes the examples' labels index: the named classes', else 10.
    pub fn classes(&self) -> usize {
        self.names.as_ref().map_or(10, |n| n.len())
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Rows (height) of every image.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (width) of every image.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Planes per image: 1 (grey) or 3 (red, green, blue).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Bytes per image: `channels * rows * cols`.
    pub(crate) fn pixels_per_image(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// The pixels of image `i`, plane after plane, each row-major:
    /// `channels * rows * cols` bytes.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let p = self.pixels_per_image();
        &self.pixels[i * p..(i + 1) * p]
    }

    /// The label of example `i`, in `0..10`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// All labels, in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// All pixels, image after image.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The known data set whose files these are, recognised by the SHA-256 of
    /// both files; `None` for other or altered files.
    pub fn spec(&self) -> Option<&'static DatasetSpec> {
        self.spec
    }

    /// The names of classes 0..10 when the files were recognised as a known data set.
    pub fn class_names(&self) -> Option<&'static [&'static str; 10]> {
        self.spec.map(|s| &s.class_names)
    }

    /// How many examples each class 0..10 has (the classes past 10 of a
    /// data set of more named classes are in [`Self::class_counts`]).
    pub fn label_histogram(&self) -> [usize; 10] {
        let mut h = [0; 10];
        for (h, n) in h.iter_mut().zip(self.class_counts()) {
            *h = n;
        }
        h
    }

    /// How many examples each of the [`Self::classes`] classes has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut h = vec![0; self.classes()];
        for &l in &self.labels {
            h[usize::from(l)] += 1;
        }
        h
    }

    /// The images at `indices` as one N x channels x rows x cols tensor, scaled as
    /// [`Dataset::fill_batch`] scales them, and their labels.
    ///
    /// ```
    /// let d = mnist_io::Dataset::from_parts(vec![0, 255, 51, 0], vec![3, 7], 1, 2).unwrap();
    /// let (images, labels) = d.tensors(&[1, 0], None);
    /// assert_eq!(images.shape(), &[2, 1, 1, 2]);
    /// assert_eq!(images.as_slice().unwrap(), &[0.2, 0.0, 0.0, 1.0]);
    /// assert_eq!(labels, [7, 3]);
    /// ```
    pub fn tensors(&self, indices: &[usize], normalize: Option<Normalize>) -> (Tensor, Vec<usize>) {
        let mut images = Tensor::zeros(vec![indices.len(), self.channels, self.rows, self.cols]);
        let mut labels = vec![0; indices.len()];
        let out = images.as_slice_mut().expect("a new tensor is contiguous");
        self.fill_batch(indices, normalize, out, &mut labels);
        (images, labels)
    }

    /// Copies the images at `indices` into `out` as `f32`, layout N x channels x rows x cols,
    /// and their labels into `labels_out`. Allocates nothing.
    ///
    /// Each pixel `v` becomes `v / 255`, then with `normalize = Some(Normalize { mean, std })`,
    /// `(v / 255 - mean) / std`.
    ///
    /// # Panics
    /// If `out.len() != indices.len() * rows * cols`, `labels_out.len() != indices.len()`,
    /// or an index is out of range.
    pub fn fill_batch(
        &self,
        indices: &[usize],
        normalize: Option<Normalize>,
        out: &mut [f32],
        labels_out: &mut [usize],
    ) {
        let p = self.pixels_per_image();
        assert_eq!(
            out.len(),
            indices.len() * p,
            "fill_batch: output holds {} floats, {} images of {p} pixels need {}",
            out.len(),
            indices.len(),
            indices.len() * p
        );
        assert_eq!(
            labels_out.len(),
            indices.len(),
            "fill_batch: label output length differs from the number of indices"
        );
        // One lookup table per call: 256 floats on the stack, the same formula for every pixel.
        let mut table = [0f32; 256];
        for (v, t) in table.iter_mut().enumerate() {
            let x = v as f32 / 255.0;
            *t = match normalize {
                Some(Normalize { mean, std }) => (x - mean) / std,
                None => x,
            };
        }
        for ((&i, dst), label) in indices
            .iter()
            .zip(out.chunks_exact_mut(p))
            .zip(labels_out.iter_mut())
        {
            for (d, &s) in dst.iter_mut().zip(self.image(i)) {
                *d = table[usize::from(s)];
            }
            *label = usize::from(self.labels[i]);
        }
    }

    /// Mean and (population) standard deviation of all pixels scaled to `[0, 1]`,
    /// computed exactly from a histogram of byte values in `f64`.
    /// Both 0 for an empty data set.
    pub fn pixel_mean_std(&self) -> Normalize {
        let mut counts = [0u64; 256];
        for &v in &self.pixels {
            counts[usize::from(v)] += 1;
        }
        let n = self.pixels.len() as f64;
        if n == 0.0 {
            return Normalize {
                mean: 0.0,
                std: 0.0,
            };
        }
        let value = |v: usize| v as f64 / 255.0;
        let mean = counts
            .iter()
            .enumerate()
            .map(|(v, &c)| c as f64 * value(v))
            .sum::<f64>()
            / n;
        let var = counts
            .iter()
            .enumerate()
            .map(|(v, &c)| c as f64 * (value(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        Normalize {
            mean: mean as f32,
            std: var.sqrt() as f32,
        }
    }

    /// The examples at `indices`, in that order, as a new data set (same class names).
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let p = self.pixels_per_image();
        let mut pixels = Vec::with_capacity(indices.len() * p);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            pixels,
            labels,
            rows: self.rows,
            cols: self.cols,
            channels: self.channels,
            spec: self.spec,
            names: self.names.clone(),
        }
    }

    /// Splits off a validation set, deterministically: with `perm` a permutation of
    /// `0..len` seeded by `seed`, returns
    /// `(examples perm[..len - val], examples perm[len - val..])`, each in permutation order.
    ///
    /// # Panics
    /// If `val > len()`.
    pub fn split_validation(&self, val: usize, seed: u64) -> (Dataset, Dataset) {
        assert!(
            val <= self.len(),
            "validation set of {val} examples asked from a data set of {}",
            self.len()
        );
        let perm = validation_permutation(self.len(), seed);
        let (train, valid) = perm.split_at(self.len() - val);
        (self.subset(train), self.subset(valid))
    }
}
