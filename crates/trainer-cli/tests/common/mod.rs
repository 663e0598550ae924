//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

/// Real MNIST: `$MNIST_DIR`, else the project's `data/mnist`, else the shared
/// read-only copy CI has (`../shared/data/mnist` beside the checkout).
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
