//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

/// Real MNIST: `$MNIST_DIR`, else the project's `data/mnist`, else the
/// shared read-only copy that CI has (`../shared/data/mnist` beside the checkout).
pub fn mnist() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("MNIST_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            manifest.join("../../data/mnist"),
            manifest.join("../../../shared/data/mnist"),
        ])
        .find(|d| {
            d.join("t10k-labels-idx1-ubyte.gz").exists()
                || d.join("t10k-labels-idx1-ubyte").exists()
        })
}

/// [`mnist`], printing why the calling test is skipped when there is none.
pub fn mnist_or_skip() -> Option<PathBuf> {
    let found = mnist();
    if found.is_none() {
        println!("skipping: no MNIST in $MNIST_DIR, data/mnist or ../shared/data/mnist");
    }
    found
}

/// Writes a made-up data set in MNIST's format into `dir` (created): `train`
/// and `test` images in which class `c` is a noisy bright bar at a
/// class-dependent place, so that a network learns a little. Fast tests that
/// need no real MNIST train on it.
pub fn made_up_mnist(dir: &Path, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    write_idx(dir, "train", train, 1);
    write_idx(dir, "t10k", test, 2);
}

/// Writes IDX files of `n` 28x28 images: class `c` is a noisy bright bar at a
/// class-dependent place.
fn write_idx(dir: &Path, prefix: &str, n: usize, seed: u32) {
    let mut images = vec![0, 0, 8, 3];
    images.extend((n as u32).to_be_bytes());
    images.extend(28u32.to_be_bytes());
    images.extend(28u32.to_be_bytes());
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((n as u32).to_be_bytes());
    let mut state = seed.wrapping_mul(2654435761).max(1);
    for i in 0..n {
        let c = i % 10;
        labels.push(c as u8);
        for y in 0..28 {
            for x in 0..28 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let bar = (2 + 2 * c..4 + 2 * c).contains(&x) && (4..24).contains(&y);
                let noise = (state % 64) as u8;
                images.push(if bar { 191 + noise } else { noise });
            }
        }
    }
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
}

/// Runs the `cnn` binary with `args`; returns success, stdout and stderr.
pub fn cnn(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(args)
        .output()
        .expect("cnn runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
