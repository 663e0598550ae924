//! The data a run reads: a training and a test set from a folder of IDX
//! files or an image folder, checked against the network that will take them.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use mnist_io::{Dataset, Normalize, Split};

use crate::config::{InputScaling, OtherSizes, TrainConfig};
use crate::image_folder::{is_image_folder, load_split, ImageSize};

/// A training and a test set from one folder.
pub struct DataSets {
    /// 60,000 images for MNIST.
    pub train: Dataset,
    /// 10,000 images for MNIST.
    pub test: Dataset,
    /// For an image folder: the SHA-256 of the training and the test
    /// set's file lists (see [`crate::image_folder::FolderSplit`]).
    pub files_sha256: Option<[String; 2]>,
}

impl DataSets {
    /// Loads `train-*` and `t10k-*` IDX files (gzipped or not) from `dir`,
    /// or, when `dir` holds `train` and `test` folders, an
    /// [image folder](crate::image_folder) whose images all have the first one's size.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if is_image_folder(dir) {
            let size = ImageSize {
                channels: 1,
                rows_cols: None,
                resize: false,
            };
            return Self::load_folder(dir, size);
        }
        Ok(DataSets {
            train: load_idx(dir, Split::Train)?,
            test: load_idx(dir, Split::Test)?,
            files_sha256: None,
        })
    }

    /// [`DataSets::load`] for `config`'s network: an image folder's images
    /// are read at its input size, other sizes resized or refused as its
    /// `other_sizes` says.
    pub fn load_for(dir: impl AsRef<Path>, config: &TrainConfig) -> Result<Self> {
        let dir = dir.as_ref();
        if !is_image_folder(dir) {
            return Self::load(dir);
        }
        Self::load_folder(dir, folder_size(dir, config)?)
    }

    /// An image folder's training set, then its test set, which must have the same classes.
    fn load_folder(dir: &Path, size: ImageSize) -> Result<Self> {
        let train = load_split(dir, "train", size, None)?;
        let test = load_split(dir, "test", size, train.data.named_classes())?;
        Ok(DataSets {
            train: train.data,
            test: test.data,
            files_sha256: Some([train.files_sha256, test.files_sha256]),
        })
    }

    /// The data set's name when its files are a known one (`mnist`, `fashion-mnist`).
    pub fn name(&self) -> Option<String> {
        self.train.spec().map(|s| s.name.to_string())
    }
}

/// One set of `dir`, the training or the test set, read as
/// [`DataSets::load_for`] reads it but without the other; an image folder's
/// classes must be the ones `config` records, if it does.
pub fn load_set_for(dir: &Path, config: &TrainConfig, split: Split) -> Result<Dataset> {
    if !is_image_folder(dir) {
        return load_idx(dir, split);
    }
    let folder = match split {
        Split::Train => "train",
        Split::Test => "test",
    };
    let classes = config.training.class_names.as_deref();
    Ok(load_split(dir, folder, folder_size(dir, config)?, classes)?.data)
}

/// How an image folder is read for `config`'s network: at its input size,
/// as grey or RGB images.
fn folder_size(dir: &Path, config: &TrainConfig) -> Result<ImageSize> {
    let [c, h, w] = crate::config::image_input(&config.network)?;
    if c != 1 && c != 3 {
        bail!("{}: an image folder is read as grey (input [1, {h}, {w}]) or RGB images (input [3, {h}, {w}]), but the network's input is [{c}, {h}, {w}]", dir.display());
    }
    Ok(ImageSize {
        channels: c,
        rows_cols: Some([h, w]),
        resize: config.training.other_sizes == OtherSizes::Resize,
    })
}

/// The IDX files of `split` in `dir` (gzipped or not).
fn load_idx(dir: &Path, split: Split) -> Result<Dataset> {
    let which = match split {
        Split::Train => "training",
        Split::Test => "test",
    };
    Dataset::load(dir, split)
        .with_context(|| format!("loading the {which} set from {}", dir.display()))
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
    let (dc, dh, dw) = (ds.channels(), ds.rows(), ds.cols());
    if [c, h, w] != [dc, dh, dw] {
        let kind = if dc == 3 { "RGB" } else { "grey" };
        anyhow::bail!(
            "{what} holds {dh}x{dw} {kind} images (input [{dc}, {dh}, {dw}]), but the network's input is [{c}, {h}, {w}]"
        );
    }
    let classes = ds.classes();
    if net.outputs() != classes {
        anyhow::bail!(
            "{what} has {classes} classes, but the network ends with {} outputs; its last layer must have one output per class",
            net.outputs()
        );
    }
    Ok(())
}

/// Class names of an image folder or a known data set, or the digits 0-9.
pub fn class_names(ds: &Dataset) -> Vec<String> {
    if let Some(names) = ds.named_classes() {
        return names.to_vec();
    }
    match ds.class_names() {
        Some(names) => names.iter().map(|s| s.to_string()).collect(),
        None => (0..10).map(|i| i.to_string()).collect(),
    }
}

/// What the config's input scaling does after dividing pixels by 255
/// (see [`TrainConfig::normalize`]). Only standardised inputs need the
/// training set, read from `data`; the others need no data.
pub fn input_norm(config: &TrainConfig, data: Option<&Path>) -> Result<Option<Normalize>> {
    match config.training.input_scaling {
        // A model from before the constants were recorded: from the training set.
        InputScaling::Standardized if config.training.input_mean_std.is_none() => {
            let dir = data.ok_or_else(|| {
                anyhow!("this checkpoint standardises its inputs with the training set's pixel mean and std: pass --data <dir> with the training IDX files")
            })?;
            config.normalize(&load_idx(dir, Split::Train)?)
        }
        // These scalings ignore the data set: an empty one stands in for it.
        _ => {
            let empty =
                Dataset::from_parts(Vec::new(), Vec::new(), 1, 1).map_err(|e| anyhow!("{e}"))?;
            config.normalize(&empty)
        }
    }
}
