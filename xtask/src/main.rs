//! `cargo xtask <task>`: project tasks that are not part of the library.
//!
//! This file only parses the command line and dispatches; each task lives in
//! its own module.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod fetch;
mod sharing;
mod train;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project tasks", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Download (or copy with --from) a data set into data/DATASET/, each file
    /// verified by the SHA-256 of its decompressed content before it is moved into place.
    FetchData(fetch::FetchArgs),
    /// Run the seed experiment (fetching MNIST if needed) and write docs/results.md.
    Train(train::TrainArgs),
    /// Time the seed network's training step and evaluation (`cnn bench`); with
    /// --vs-pytorch also one training epoch of the same network in PyTorch.
    Bench(bench::BenchArgs),
    /// Time one-epoch trainings on 1 thread, on all threads, and on all threads
    /// beside busy processes, interleaved, and print the medians of their ratios.
    Sharing(sharing::SharingArgs),
    /// Spin until killed (the busy neighbour of `sharing`).
    #[command(hide = true)]
    BusyLoop,
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::FetchData(args) => fetch::run(args),
        Task::Train(args) => train::run(args),
        Task::Bench(args) => bench::run(args),
        Task::Sharing(args) => sharing::run(args),
        Task::BusyLoop => sharing::busy_loop(),
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

/// The workspace root: the parent of this crate's folder.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
