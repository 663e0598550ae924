//! The data sets this crate knows: their files, checksums, class names and mirrors.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{read_maybe_gz, IdxError};

/// Which half of a data set: the training or the test files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`.
    Train,
    /// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`.
    Test,
}

impl Split {
    /// The file name prefix of this split: `"train"` or `"t10k"`.
    pub fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }

    /// The canonical (uncompressed) file names of this split: `[images, labels]`.
    pub fn file_names(self) -> [String; 2] {
        let p = self.prefix();
        [
            format!("{p}-images-idx3-ubyte"),
            format!("{p}-labels-idx1-ubyte"),
        ]
    }
}

/// One file of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    /// Canonical name without `.gz`, e.g. `"train-images-idx3-ubyte"`.
    pub name: &'static str,
    /// SHA-256 of the decompressed bytes, lowercase hex.
    ///
    /// Mirrors compress differently, so the gzip stream's hash is not stable;
    /// the decompressed content's is.
    pub sha256: &'static str,
}

/// A data set of four IDX files, 10 classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Short name, as given to `--dataset`: `"mnist"` or `"fashion-mnist"`.
    pub name: &'static str,
    /// Human names of the classes 0..10.
    pub class_names: [&'static str; 10],
    /// Train images, train labels, test images, test labels.
    pub files: [FileSpec; 4],
    /// Base URLs (ending in `/`) that serve `<name>.gz` for every file, tried in order.
    pub mirrors: &'static [&'static str],
}

impl DatasetSpec {
    /// The image and label files of one split: `[images, labels]`.
    pub(crate) fn split_files(&self, split: Split) -> [&FileSpec; 2] {
        match split {
            Split::Train => [&self.files[0], &self.files[1]],
            Split::Test => [&self.files[2], &self.files[3]],
        }
    }

    /// The file with canonical name `name` (without `.gz`), if it is one of this data set's.
    pub fn file(&self, name: &str) -> Option<&FileSpec> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// MNIST: handwritten digits, 60,000 training and 10,000 test images of 28 x 28.
pub const MNIST: DatasetSpec = DatasetSpec {
    name: "mnist",
    class_names: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
    files: [
        FileSpec {
            name: "train-images-idx3-ubyte",
            sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        },
        FileSpec {
            name: "train-labels-idx1-ubyte",
            sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        },
        FileSpec {
            name: "t10k-images-idx3-ubyte",
            sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        },
        FileSpec {
            name: "t10k-labels-idx1-ubyte",
            sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ],
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
};

/// Fashion-MNIST: Zalando article images, same shapes and file names as MNIST.
pub const FASHION_MNIST: DatasetSpec = DatasetSpec {
    name: "fashion-mnist",
    class_names: [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    files: [
        FileSpec {
            name: "train-images-idx3-ubyte",
            sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        },
        FileSpec {
            name: "train-labels-idx1-ubyte",
            sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        },
        FileSpec {
            name: "t10k-images-idx3-ubyte",
            sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        },
        FileSpec {
            name: "t10k-labels-idx1-ubyte",
            sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ],
    mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
};

/// Every data set this crate knows.
pub const KNOWN_DATASETS: [&DatasetSpec; 2] = [&MNIST, &FASHION_MNIST];

/// The data set called `name` (`"mnist"` or `"fashion-mnist"`, ASCII case ignored).
pub fn spec_by_name(name: &str) -> Option<&'static DatasetSpec> {
    KNOWN_DATASETS
        .into_iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// Checks already decompressed bytes against `spec`; `path` only names them in the error.
pub fn verify_bytes(path: &Path, decompressed: &[u8], spec: &FileSpec) -> Result<(), IdxError> {
    let actual = sha256_hex(decompressed);
    if actual == spec.sha256 {
        Ok(())
    } else {
        Err(IdxError::Checksum {
            path: path.to_path_buf(),
            expected: spec.sha256.to_string(),
            actual,
        })
    }
}

/// Reads `path` (gzipped or not, see [`read_maybe_gz`]) and checks the SHA-256
/// of its decompressed content against `spec`.
pub fn verify_file(path: impl AsRef<Path>, spec: &FileSpec) -> Result<(), IdxError> {
    let path = path.as_ref();
    let bytes = read_maybe_gz(path)?;
    verify_bytes(path, &bytes, spec)
}

/// The known data set and split whose image and label files have these
/// (decompressed) SHA-256 hashes, if any.
pub(crate) fn identify(
    images_sha256: &str,
    labels_sha256: &str,
) -> Option<(&'static DatasetSpec, Split)> {
    KNOWN_DATASETS.into_iter().find_map(|spec| {
        [Split::Train, Split::Test].into_iter().find_map(|split| {
            let [i, l] = spec.split_files(split);
            (i.sha256 == images_sha256 && l.sha256 == labels_sha256).then_some((spec, split))
        })
    })
}
