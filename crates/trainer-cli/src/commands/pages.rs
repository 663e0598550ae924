//! `cnn report`, `cnn results` and `cnn seed-table`: pages about runs, in
//! HTML and Markdown.

use std::path::PathBuf;

use anyhow::Result;
use trainer_cli::report::{self, ReportOptions};

/// `cnn report`'s flags.
#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    /// The run directory (metrics.csv, best.ckpt or last.ckpt).
    #[arg(long)]
    run: PathBuf,
    /// The HTML file to write.
    #[arg(long)]
    out: PathBuf,
    /// Folder with the IDX files whose test set the best checkpoint is evaluated on.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Replace --out even if it is a checkpoint, metrics.csv, a config, a data file or this command's input.
    #[arg(long)]
    force: bool,
}

/// `cnn results`'s flags.
#[derive(clap::Args)]
pub(crate) struct ResultsArgs {
    /// The run directory (its metrics.csv and config.toml).
    #[arg(long)]
    run: PathBuf,
    /// The Markdown file to write; from a `## Other data sets` heading on, an existing one is kept.
    #[arg(long)]
    out: PathBuf,
    /// The command that made the run, quoted in the page.
    #[arg(long)]
    command: Option<String>,
    /// A paragraph to add under the timings (e.g. that the machine was busy).
    #[arg(long)]
    note: Option<String>,
    /// Replace --out even if it is a checkpoint, metrics.csv, a config, a data file or this command's input.
    #[arg(long)]
    force: bool,
}

/// `cnn seed-table`'s flags.
#[derive(clap::Args)]
pub(crate) struct SeedTableArgs {
    /// Sweep folders, each holding one run folder per seed.
    #[arg(long, required = true, num_args = 1..)]
    runs: Vec<PathBuf>,
    /// Folder with the IDX files the runs trained on (its test set finds dead units).
    #[arg(long)]
    data: PathBuf,
    /// Write the Markdown to this file instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace --out even if it is a checkpoint, metrics.csv, a config, a data file or this command's input.
    #[arg(long)]
    force: bool,
}

/// Writes the run's HTML report and says what it holds.
pub(crate) fn report(args: ReportArgs) -> Result<()> {
    let ReportArgs {
        run,
        out,
        data,
        force,
    } = args;
    let summary = report::run(&ReportOptions {
        run,
        out: out.clone(),
        data,
        force,
    })?;
    println!("{}", report::describe(&summary, &out));
    Ok(())
}

/// Writes the run's metrics as Markdown beside the post's table.
pub(crate) fn results(args: ResultsArgs) -> Result<()> {
    let ResultsArgs {
        run,
        out,
        command,
        note,
        force,
    } = args;
    trainer_cli::results_md::run(&run, &out, command.as_deref(), note.as_deref(), force)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Prints (or writes) the seed sweeps' table.
pub(crate) fn seed_table(args: SeedTableArgs) -> Result<()> {
    let SeedTableArgs {
        runs,
        data,
        out,
        force,
    } = args;
    if let Some(path) = &out {
        trainer::files::check_output(path, &[], force)?;
    }
    let text = trainer_cli::seed_table::run(&runs, &data)?;
    match out {
        Some(path) => {
            trainer::files::write_atomic(&path, text.as_bytes())?;
            println!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
