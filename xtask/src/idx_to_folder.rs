//! `cargo xtask idx-to-folder`: an IDX data set (MNIST, Fashion-MNIST) as an
//! image folder, `OUT/train/<class>/<index>.png` and `OUT/test/<class>/<index>.png`,
//! the layout `cnn train --data` reads besides IDX files. For trying the
//! image-folder path on known data and comparing it with the IDX path.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mnist_io::{Dataset, Split};

/// `cargo xtask idx-to-folder`'s flags.
#[derive(clap::Args)]
pub(crate) struct IdxToFolderArgs {
    /// Folder with the four IDX files (e.g. data/mnist).
    #[arg(long)]
    data: PathBuf,
    /// The image folder to write; must not exist yet.
    #[arg(long)]
    out: PathBuf,
    /// Write only the first N training images (the test set is written whole).
    #[arg(long)]
    limit: Option<usize>,
}

/// Writes the folder under a temporary name, then renames it into place.
pub(crate) fn run(args: IdxToFolderArgs) -> Result<()> {
    let IdxToFolderArgs { data, out, limit } = args;
    if out.exists() {
        bail!("{}: exists; give a new folder", out.display());
    }
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned());
    let Some(name) = name else {
        bail!("{}: not a folder name", out.display());
    };
    let tmp = out.with_file_name(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut counts = [0, 0];
    for (i, (split, folder)) in [(Split::Train, "train"), (Split::Test, "test")]
        .into_iter()
        .enumerate()
    {
        let ds = Dataset::load(&data, split)
            .with_context(|| format!("loading {} from {}", folder, data.display()))?;
        let n = match split {
            Split::Train => limit.unwrap_or(ds.len()).min(ds.len()),
            Split::Test => ds.len(),
        };
        write_split(&ds, n, &tmp.join(folder))?;
        counts[i] = n;
    }
    std::fs::rename(&tmp, &out)
        .with_context(|| format!("{}: cannot rename into place", out.display()))?;
    println!(
        "wrote {}: {} training and {} test images as PNG, one folder per class",
        out.display(),
        counts[0],
        counts[1]
    );
    Ok(())
}

/// The folder name of each class: the data set's class names ('/' becomes
/// '-': "T-shirt/top" is one folder), else the digits.
fn class_folders(ds: &Dataset) -> Vec<String> {
    match ds.class_names() {
        Some(names) => names.iter().map(|n| n.replace('/', "-")).collect(),
        None => (0..10).map(|c| c.to_string()).collect(),
    }
}

/// Writes the first `n` images of `ds` into `dir/<class>/<index>.png`.
fn write_split(ds: &Dataset, n: usize, dir: &Path) -> Result<()> {
    let names = class_folders(ds);
    for name in &names {
        std::fs::create_dir_all(dir.join(name))
            .with_context(|| format!("{}: cannot create", dir.join(name).display()))?;
    }
    for i in 0..n {
        let path = dir
            .join(&names[usize::from(ds.label(i))])
            .join(format!("{i:05}.png"));
        let png = grey_png(ds.image(i), ds.cols(), ds.rows())?;
        std::fs::write(&path, png).with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

/// An 8-bit grey PNG of `pixels` (row-major).
fn grey_png(pixels: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `n` 2x3 images of label `i % 10` as plain IDX files named `prefix-...`.
    fn write_idx(dir: &Path, prefix: &str, n: usize) {
        let mut images = vec![0, 0, 8, 3];
        images.extend((n as u32).to_be_bytes());
        images.extend(2u32.to_be_bytes());
        images.extend(3u32.to_be_bytes());
        let mut labels = vec![0, 0, 8, 1];
        labels.extend((n as u32).to_be_bytes());
        for i in 0..n {
            images.extend([i as u8; 6]);
            labels.push((i % 10) as u8);
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }

    #[test]
    fn writes_one_png_per_image_in_its_class_folder_and_never_over_a_folder() {
        let data = tempfile::tempdir().unwrap();
        write_idx(data.path(), "train", 25);
        write_idx(data.path(), "t10k", 12);
        let out = tempfile::tempdir().unwrap();
        let folder = out.path().join("png");
        let args = |limit| IdxToFolderArgs {
            data: data.path().to_path_buf(),
            out: folder.clone(),
            limit,
        };
        run(args(Some(20))).unwrap();
        let count = |rel: &str| std::fs::read_dir(folder.join(rel)).unwrap().count();
        assert_eq!((count("train/3"), count("test/1")), (2, 2));
        let train: usize = (0..10).map(|c| count(&format!("train/{c}"))).sum();
        assert_eq!(train, 20);
        // Image 13 (label 3) as a 3x2 grey PNG of value 13.
        let bytes = std::fs::read(folder.join("train/3/00013.png")).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buf).unwrap();
        assert_eq!((frame.width, frame.height), (3, 2));
        assert_eq!(&buf[..6], &[13; 6]);
        // No temporary folder left, and an existing folder is refused.
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
        let err = run(args(None)).unwrap_err();
        assert!(err.to_string().contains("exists"), "{err}");
    }
}
