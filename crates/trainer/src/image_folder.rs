//! Image folders: a training and a test set as PNG files, one folder per
//! class, as `torchvision.datasets.ImageFolder` reads them:
//!
//! ```text
//! DIR/train/<class>/*.png
//! DIR/test/<class>/*.png
//! ```
//!
//! The classes are the folder names of `train`, sorted (byte order);
//! `test` must have the same folders. The network's input decides the
//! channels: with `[1, H, W]` every image becomes 8-bit grey (as `cnn
//! predict` reads a PNG: any colour type and bit depth, colour to luma,
//! transparency over white); with `[3, H, W]` its red, green and blue
//! planes (a grey image gives three equal planes). An image of another size
//! than the network's input is refused, naming the file, or resized as
//! `predict` resizes (padded to a square with black, then area-averaged),
//! each plane alike, as the
//! config's `other_sizes` says.
//!
//! What is refused, each with an error naming the folder or file: no class
//! folder, a class folder without images, more than 256 classes (a label
//! is one byte), a file that is not a `.png` or does not decode as one, a
//! folder inside a class folder, and a link to a folder (links are not
//! followed into folders, so a link loop cannot trap the loader). Names
//! starting with `.` are skipped. Files are decoded in parallel.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use mnist_io::Dataset;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::files::{read_limited, MAX_PNG_BYTES};
use crate::image::{decode_png_grey, decode_png_planes, GreyImage};

/// Most classes an image folder may have: labels are stored as one byte.
pub const MAX_CLASSES: usize = 256;
/// Most images a split may hold.
pub const MAX_IMAGES: usize = 10_000_000;
/// Most pixel bytes a split may hold once decoded (2 GiB).
pub const MAX_TOTAL_BYTES: u64 = 2 << 30;

/// Whether `dir` is laid out as an image folder: it holds `train` and
/// `test` folders.
pub fn is_image_folder(dir: &Path) -> bool {
    dir.join("train").is_dir() && dir.join("test").is_dir()
}

/// The size every image must have, and whether other sizes are resized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSize {
    /// 1: every image read as grey; 3: as red, green and blue planes.
    pub channels: usize,
    /// `[rows, cols]`; `None`: the first image's size.
    pub rows_cols: Option<[usize; 2]>,
    /// Resize images of another size instead of refusing them.
    pub resize: bool,
}

/// One split read from an image folder.
pub struct FolderSplit {
    /// The images and labels, with the class names.
    pub data: Dataset,
    /// SHA-256 (hex) of the file list: `<class>/<file>` lines, in order.
    pub files_sha256: String,
}

/// The class folders of `split` (`DIR/train`), sorted by name.
fn class_folders(split: &Path) -> Result<Vec<(String, PathBuf)>> {
    let s = split.display();
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(split).with_context(|| format!("{s}: cannot list"))? {
        let entry = entry.with_context(|| format!("{s}: cannot list"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("{}", path.display()))?;
        if kind.is_symlink() {
            bail!(
                "{}: a link; links are not followed in an image folder (copy the folder in)",
                path.display()
            );
        }
        if !kind.is_dir() {
            bail!(
                "{}: not a folder; {s} must hold one folder of PNG images per class",
                path.display()
            );
        }
        classes.push((name, path));
        if classes.len() > MAX_CLASSES {
            bail!("{s}: more than {MAX_CLASSES} class folders; at most {MAX_CLASSES} classes are read (a label is one byte)");
        }
    }
    if classes.is_empty() {
        bail!("{s}: no class folders; put each class's PNG images in a folder named after it, e.g. {s}/cat/1.png");
    }
    classes.sort();
    Ok(classes)
}

/// The PNG files of one class folder, sorted by name.
fn class_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let f = folder.display();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).with_context(|| format!("{f}: cannot list"))? {
        let entry = entry.with_context(|| format!("{f}: cannot list"))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry
            .file_type()
            .with_context(|| format!("{}: cannot read", path.display()))?;
        // A link is followed only to a file: metadata() follows it, and a folder is refused.
        let is_dir = match kind.is_symlink() {
            true => std::fs::metadata(&path)
                .with_context(|| format!("{}: cannot read", path.display()))?
                .is_dir(),
            false => kind.is_dir(),
        };
        if is_dir {
            bail!(
                "{}: a folder inside a class folder; only PNG files are read there",
                path.display()
            );
        }
        let png = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if !png {
            bail!(
                "{}: not a .png file; a class folder holds PNG images only",
                path.display()
            );
        }
        files.push(path);
    }
    if files.is_empty() {
        bail!("{f}: no PNG images; every class folder needs at least one");
    }
    files.sort();
    Ok(files)
}

/// The image of `path` at `rows` x `cols`, into `out`: grey, or with
/// `size.channels` = 3 its red, green and blue planes one after another.
fn read_into(path: &Path, [rows, cols]: [usize; 2], size: ImageSize, out: &mut [u8]) -> Result<()> {
    let bytes = read_limited(path, MAX_PNG_BYTES, "a PNG image")?;
    let planes = match size.channels {
        3 => Vec::from(decode_png_planes(&bytes, path)?),
        _ => vec![decode_png_grey(&bytes, path)?.image],
    };
    for (plane, out) in planes.into_iter().zip(out.chunks_exact_mut(rows * cols)) {
        out.copy_from_slice(&sized(plane, [rows, cols], size.resize, path)?.pixels);
    }
    Ok(())
}

/// `image` at `rows` x `cols`: as it is, resized, or refused naming `path`.
fn sized(
    image: GreyImage,
    [rows, cols]: [usize; 2],
    resize: bool,
    path: &Path,
) -> Result<GreyImage> {
    Ok(if (image.height, image.width) == (rows, cols) {
        image
    } else if resize {
        fit(&image, rows, cols)
    } else {
        bail!(
            "{}: {}x{} pixels (width x height), but the network takes {cols}x{rows}; resize it, or set other_sizes = \"resize\" under [training] in the config",
            path.display(),
            image.width,
            image.height
        );
    })
}

/// `image` padded to a square with black, then area-averaged to `rows` x `cols`.
fn fit(image: &GreyImage, rows: usize, cols: usize) -> GreyImage {
    image.pad_to_square(0).resize_area(cols, rows)
}

/// Reads `DIR/<split>` (`train` or `test`); `classes`, when given, are the
/// class names it must have (the training set's).
pub fn load_split(
    dir: &Path,
    split: &str,
    size: ImageSize,
    classes: Option<&[String]>,
) -> Result<FolderSplit> {
    let split_dir = dir.join(split);
    let folders = class_folders(&split_dir)?;
    let names: Vec<String> = folders.iter().map(|(n, _)| n.clone()).collect();
    if let Some(want) = classes {
        if names != want {
            bail!(
                "{}: its class folders ({}) differ from the training set's ({})",
                split_dir.display(),
                short_list(&names),
                short_list(want)
            );
        }
    }
    let mut files = Vec::new();
    let mut labels = Vec::new();
    let mut listing = Sha256::new();
    for (label, (name, folder)) in folders.iter().enumerate() {
        let class = class_files(folder)?;
        if files.len() + class.len() > MAX_IMAGES {
            bail!(
                "{}: more than {MAX_IMAGES} images; use fewer",
                split_dir.display()
            );
        }
        for f in class {
            let file_name = f.file_name().unwrap_or_default().to_string_lossy();
            listing.update(format!("{name}/{file_name}\n"));
            files.push(f);
            labels.push(label as u8);
        }
    }
    let [rows, cols] = match size.rows_cols {
        Some(rc) => rc,
        None => first_size(&files[0])?,
    };
    let per = size.channels * rows * cols;
    if (files.len() as u64).saturating_mul(per as u64) > MAX_TOTAL_BYTES {
        bail!(
            "{}: {} images of {cols}x{rows} pixels need more than {} GiB; use fewer or smaller images",
            split_dir.display(),
            files.len(),
            MAX_TOTAL_BYTES >> 30
        );
    }
    let mut pixels = vec![0u8; files.len() * per];
    let first_error = pixels
        .par_chunks_mut(per)
        .zip(files.par_iter())
        .enumerate()
        .filter_map(|(i, (out, f))| read_into(f, [rows, cols], size, out).err().map(|e| (i, e)))
        .min_by_key(|(i, _)| *i);
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    let data = Dataset::from_named_parts(pixels, labels, [size.channels, rows, cols], names)
        .map_err(|e| anyhow!("{}: {e}", split_dir.display()))?;
    let files_sha256 = listing
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(FolderSplit { data, files_sha256 })
}

/// `[rows, cols]` of the PNG at `path`.
fn first_size(path: &Path) -> Result<[usize; 2]> {
    let bytes = read_limited(path, MAX_PNG_BYTES, "a PNG image")?;
    let image = decode_png_grey(&bytes, path)?.image;
    Ok([image.height, image.width])
}

/// The first few names of `names`, for an error message.
fn short_list(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    match more {
        0 => shown.join(", "),
        _ => format!("{}, and {more} more", shown.join(", ")),
    }
}
