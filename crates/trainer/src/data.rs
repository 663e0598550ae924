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
        let size = ImageSize {
            channels: 1,
            rows_cols: None,
            resize: false,
        };
        Self::load_sized(dir.as_ref(), size)
    }

    /// [`DataSets::load`] for `config`'s network: an image folder's images
    /// are read at its input size, other sizes resized or refused as its
    /// `other_sizes` says.
    pub fn load_for(dir: impl AsRef<Path>, config: &TrainConfig) -> Result<Self> {
        let dir = dir.as_ref();
        if !is_image_folder(dir) {
            return Self::load(dir);
        }
        let [c, h, w] = crate::config::image_input(&config.network)?;
        if c != 1 && c != 3 {
            bail!("{}: an image folder is read as grey (input [1, {h}, {w}]) or RGB images (input [3, {h}, {w}]), but the network's input is [{c}, {h}, {w}]", dir.display());
        }
        let size = ImageSize {
            channels: c,
            rows_cols: Some([h, w]),
            resize: config.training.other_sizes == OtherSizes::Resize,
        };
        Self::load_sized(dir, size)
    }

    fn load_sized(dir: &Path, size: ImageSize) -> Result<Self> {
        if is_image_folder(dir) {
            let train = load_split(dir, "train", size, None)?;
            let classes = train.data.named_classes().map(<[String]>::to_vec);
            let test = load_split(dir, "test", size, classes.as_deref())?;
            return Ok(DataSets {
                train: train.data,
                test: test.data,
                files_sha256: Some([train.files_sha256, test.files_sha256]),
            });
        }
        let train = Dataset::load(dir, Split::Train)
            .with_context(|| format!("loading the training set from {}", dir.display()))?;
        let test = Dataset::load(dir, Split::Test)
            .with_context(|| format!("loading the test set from {}", dir.display()))?;
        Ok(DataSets {
            train,
            test,
            files_sha256: None,
        })
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
            let train = Dataset::load(dir, Split::Train)
                .with_context(|| format!("loading the training set from {}", dir.display()))?;
            config.normalize(&train)
        }
        // These scalings ignore the data set: an empty one stands in for it.
        _ => {
            let empty =
                Dataset::from_parts(Vec::new(), Vec::new(), 1, 1).map_err(|e| anyhow!("{e}"))?;
            config.normalize(&empty)
        }
    }
}
