//! `cargo xtask <task>`: project tasks that are not part of the library.
//!
//! This file only parses the command line and dispatches; each task lives in
//! its own module.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

mod bench;
mod code_map;
mod fetch;
mod idx_to_folder;
// Where the tests find the real data sets, shared with every crate's tests.
#[cfg(test)]
#[path = "../../crates/mnist-io/tests/common/find_data.rs"]
mod find_data;
mod layout;
mod train;
mod web;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Project tasks",
    version
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Download (or copy with --from) a data set into data/DATASET/, each file
    /// verified by the SHA-256 of its decompressed content before it is moved into place.
    FetchData(fetch::FetchArgs),
    /// Run the seed experiment (fetching MNIST if needed) and write its results
    /// table and figures into the run folder (and docs/ with --update-docs).
    Train(train::TrainArgs),
    /// Time the seed network's training step and evaluation (`cnn bench`); with
    /// --vs-pytorch also one training epoch of the same network in PyTorch.
    Bench(bench::BenchArgs),
    /// Write an IDX data set as an image folder (train/CLASS/*.png,
    /// test/CLASS/*.png), the other layout `cnn train --data` reads.
    IdxToFolder(idx_to_folder::IdxToFolderArgs),
    /// Check the sizes a reader can hold: no function over 80 lines, no file
    /// over 600 (tests aside), no circle of imports between a crate's files.
    Layout,
    /// Build the training page's WebAssembly module into target/web, where
    /// `cnn serve` finds it (its /train page).
    Web(web::WebArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::FetchData(args) => fetch::run(args),
        Task::Train(args) => train::run(args),
        Task::Bench(args) => bench::run(args),
        Task::IdxToFolder(args) => idx_to_folder::run(args),
        Task::Layout => layout::run(&workspace_root()),
        Task::Web(args) => web::run(args, &workspace_root()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the cause chain on one line, and no backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds `cnn` in release mode and returns its path. Cargo shows its own
/// progress: from a fresh clone the build takes a few minutes.
pub(crate) fn build_cnn(root: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("building cnn in release mode (cargo build --release -p trainer-cli)");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "trainer-cli"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        anyhow::bail!("building cnn failed");
    }
    Ok(target_dir(root).join("release/cnn"))
}

/// Where cargo puts what it builds: `$CARGO_TARGET_DIR`, else `target`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Whether `dir` holds the four MNIST files (gzipped or not).
pub(crate) fn has_mnist(dir: &Path) -> bool {
    mnist_io::MNIST
        .files
        .iter()
        .all(|f| mnist_io::find_file(dir, f.name).is_ok())
}

/// The workspace root: the parent of this crate's folder.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
