//! `cnn report`: one self-contained HTML page about a run.
//!
//! The page holds, with no external file, script or network access (images
//! are `data:` URIs, the CSS is inline):
//! * the loss and accuracy curves (`cnn plot`'s figure, PNG);
//! * the per-epoch figures beside the post's table (the post's epoch 0 is
//!   set beside our epoch 1, its epoch `e > 0` beside our epoch `e`), when
//!   the test set is MNIST;
//! * the best checkpoint's per-class accuracy and confusion matrix on the
//!   test set;
//! * the first conv layer's kernels and feature maps (`cnn visualize`'s
//!   figures), when the network has a conv layer;
//! * the most confident mistakes on the test set, as thumbnails.
//!
//! A part that does not apply is left out, and the page says so.
//! Class names are the data set's (Fashion-MNIST's `T-shirt/top`, ...).
//! All text is HTML-escaped. A tiny inline script, run on load, writes
//! whether every image decoded into `<body data-images-ok>` (`true` or
//! `false`) and the image count into `data-images`, for automated checks
//! (headless browsers); the page reads the same without it.

//!
//! The page is built in three steps: `load.rs` reads and checks everything
//! (no HTML is begun before an error can happen), the functions of
//! `sections.rs` append the sections in the page's order (`render`), and
//! [`run`] writes the page atomically. `html.rs` escapes and encodes, `tables.rs` makes the
//! tables, `mistakes.rs` finds the most confident mistakes.

use std::path::{Path, PathBuf};

use anyhow::Result;
use trainer::eval::Evaluation;
use trainer::files::write_atomic;

use crate::post::plural;
use html::Page;

mod html;
mod load;
mod mistakes;
mod sections;
mod tables;

pub(crate) use html::png_uri;
pub(crate) use mistakes::evaluate_with_mistakes;
pub use mistakes::MISTAKES;

/// What `cnn report` was asked to do.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// The run directory (metrics.csv, config.toml, best.ckpt or last.ckpt).
    pub run: PathBuf,
    /// The HTML file to write.
    pub out: PathBuf,
    /// Folder of IDX files whose test set the checkpoint is evaluated on.
    pub data: Option<PathBuf>,
    /// Replace `out` even when it is a run's file (`--force`).
    pub force: bool,
}

/// What the written page shows, in figures.
#[derive(Clone, Debug)]
pub struct ReportSummary {
    /// Epochs in metrics.csv.
    pub epochs: usize,
    /// The checkpoint evaluated.
    pub(crate) checkpoint: PathBuf,
    /// Its test set figures.
    pub evaluation: Evaluation,
    /// `<img>` elements on the page.
    pub images: usize,
    /// Size of the page in bytes.
    pub(crate) bytes: usize,
}

/// Builds the page; returns the HTML, the evaluation of the checkpoint and the number of images.
pub(crate) fn render(opts: &ReportOptions) -> Result<(String, ReportSummary)> {
    let mut r = load::load(&opts.run, opts.data.as_deref())?;
    let mut page = Page::default();
    sections::head(&mut page, &r);
    sections::curves(&mut page, &r)?;
    sections::figures(&mut page, &r);
    sections::per_class(&mut page, &r);
    sections::first_layer(&mut page, &mut r)?;
    sections::mistakes(&mut page, &r)?;
    sections::footer(&mut page, &r);
    let summary = ReportSummary {
        epochs: r.rows.len(),
        checkpoint: r.ckpt_path,
        evaluation: r.evaluation,
        images: page.images,
        bytes: page.html.len(),
    };
    Ok((page.html, summary))
}

/// Builds the page and writes it atomically to `opts.out`.
pub fn run(opts: &ReportOptions) -> Result<ReportSummary> {
    trainer::files::check_output(&opts.out, &[&opts.run.join("metrics.csv")], opts.force)?;
    let (html, summary) = render(opts)?;
    write_atomic(&opts.out, html.as_bytes())?;
    Ok(summary)
}

/// The path a report is written to, for messages.
pub fn describe(summary: &ReportSummary, out: &Path) -> String {
    format!(
        "wrote {} ({} KB, {}): {}; {} on the test set: accuracy {:.2}%, loss {:.4}",
        out.display(),
        summary.bytes.div_ceil(1024),
        plural(summary.images, "image"),
        plural(summary.epochs, "epoch"),
        summary.checkpoint.display(),
        100.0 * summary.evaluation.accuracy,
        summary.evaluation.loss
    )
}
