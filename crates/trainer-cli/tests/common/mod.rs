//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

/// Real MNIST: the shared read-only copy that CI has (`../shared/data/mnist`
/// beside the checkout), else the project's `data/mnist`.
pub fn mnist() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        manifest.join("../../../shared/data/mnist"),
        manifest.join("../../data/mnist"),
    ]
    .into_iter()
    .find(|d| {
        d.join("t10k-labels-idx1-ubyte.gz").exists() || d.join("t10k-labels-idx1-ubyte").exists()
    })
}

/// [`mnist`], printing why the calling test is skipped when there is none.
pub fn mnist_or_skip() -> Option<PathBuf> {
    let found = mnist();
    if found.is_none() {
        println!("skipping: no MNIST in ../shared/data/mnist or data/mnist");
    }
    found
}
