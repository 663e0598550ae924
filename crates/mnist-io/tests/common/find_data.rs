//! Where the workspace's tests find the real data sets: one rule, shared by
//! the tests of `mnist-io`, `trainer-cli` and `xtask` and by their build
//! scripts (included with `#[path]`, so it uses `std` alone).
//!
//! MNIST is the first of `$MNIST_DIR` (when set, only it), the workspace's
//! `data/mnist` (where `cargo xtask fetch-data` puts it), then the build
//! machines' read-only copy beside the checkout. A folder counts when it holds
//! the four IDX files, each plain or gzipped, as `mnist_io::find_file` reads
//! them. Fashion-MNIST is the Debian package's folder.
//!
//! The build scripts set `cfg(has_mnist)` and `cfg(has_fashion_mnist)` when
//! the data is there, so a test that needs it is marked
//! `#[cfg_attr(not(has_mnist), ignore = "...")]` and a missing data set shows
//! as `ignored` in `cargo test`'s summary instead of a silent pass.
#![allow(dead_code)] // each includer uses a different part

use std::path::{Path, PathBuf};

/// The four IDX files of MNIST and Fashion-MNIST, without `.gz`.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Where the Debian package `dataset-fashion-mnist` puts Fashion-MNIST.
pub const FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// What a skipped MNIST test says.
pub const NO_MNIST: &str =
    "no MNIST in $MNIST_DIR or data/mnist (cargo xtask fetch-data puts it there)";

/// What a skipped Fashion-MNIST test says.
pub const NO_FASHION: &str =
    "no Fashion-MNIST in /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)";

/// The file `name` in `dir`, plain or gzipped (plain first).
pub fn file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// Whether `dir` holds the four files, each plain or gzipped.
pub fn holds_all(dir: &Path) -> bool {
    FILES.iter().all(|f| file(dir, f).is_some())
}

/// The workspace root: the nearest folder above `from` holding `Cargo.lock`.
pub fn workspace_root(from: &Path) -> PathBuf {
    from.ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or(from)
        .to_path_buf()
}

/// `$MNIST_DIR`, unless unset or empty (`MNIST_DIR= cargo test` unsets it).
fn mnist_dir_var() -> Option<std::ffi::OsString> {
    std::env::var_os("MNIST_DIR").filter(|d| !d.is_empty())
}

/// The folders looked in for MNIST, in order.
pub fn mnist_candidates(root: &Path) -> Vec<PathBuf> {
    match mnist_dir_var() {
        Some(d) => vec![PathBuf::from(d)],
        None => vec![
            root.join("data/mnist"),
            // The build machines' copy; never named in user text.
            root.join("../shared/data/mnist"),
        ],
    }
}

/// Real MNIST for the workspace at `root`, or why there is none.
pub fn mnist(root: &Path) -> Result<PathBuf, String> {
    if let Some(d) = mnist_dir_var() {
        let d = PathBuf::from(d);
        return if holds_all(&d) {
            Ok(d)
        } else {
            Err(format!(
                "$MNIST_DIR is {} but does not hold the four MNIST files",
                d.display()
            ))
        };
    }
    mnist_candidates(root)
        .into_iter()
        .find(|d| holds_all(d))
        .ok_or_else(|| NO_MNIST.to_string())
}

/// Fashion-MNIST, or why there is none.
pub fn fashion() -> Result<PathBuf, String> {
    let d = PathBuf::from(FASHION_DIR);
    if holds_all(&d) {
        Ok(d)
    } else {
        Err(NO_FASHION.to_string())
    }
}

/// A build script's whole work: `cfg(has_mnist)` / `cfg(has_fashion_mnist)`
/// when the data is there, and what to watch to decide again. `this_file` is
/// this file's path from the including package's folder.
pub fn build_script(this_file: &str) {
    println!("cargo::rustc-check-cfg=cfg(has_mnist)");
    println!("cargo::rustc-check-cfg=cfg(has_fashion_mnist)");
    println!("cargo::rerun-if-env-changed=MNIST_DIR");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed={this_file}");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = workspace_root(&manifest);
    // Watch only folders that exist (a missing one would rerun every build):
    // data/ sees data/mnist appear.
    let mut watched = mnist_candidates(&root);
    watched.push(root.join("data"));
    watched.push(PathBuf::from(FASHION_DIR));
    for d in watched.iter().filter(|d| d.is_dir()) {
        println!("cargo::rerun-if-changed={}", d.display());
    }
    if mnist(&root).is_ok() {
        println!("cargo::rustc-cfg=has_mnist");
    }
    if fashion().is_ok() {
        println!("cargo::rustc-cfg=has_fashion_mnist");
    }
}
