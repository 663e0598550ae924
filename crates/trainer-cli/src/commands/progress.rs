//! `cnn train`'s progress bar and its Ctrl-C: the first Ctrl-C asks the
//! training loop (through [`ProgressBar`]) to stop after its batch, a second
//! quits at once.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use trainer::train::Progress;

/// Set by the first Ctrl-C during `cnn train`; the training loop stops at the end of its batch.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler: the first Ctrl-C asks the loop to stop
/// after its batch; a second quits at once.
pub(crate) fn stop_after_batch_on_ctrl_c() -> Result<()> {
    ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping after this batch (press it again to quit at once)");
    })
    .context("installing the Ctrl-C handler")
}

/// `cnn train`'s progress bar, on stderr when it is a terminal (and not
/// `hidden`, by -q). It has no colours; the Ctrl-C flag is read through it.
pub(crate) struct ProgressBar {
    bar: Option<indicatif::ProgressBar>,
    hidden: bool,
}

impl ProgressBar {
    /// No bar yet; none at all when `hidden`.
    pub(crate) fn new(hidden: bool) -> Self {
        ProgressBar { bar: None, hidden }
    }

    /// Takes the bar off the terminal.
    pub(crate) fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for ProgressBar {
    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: u64, done: u64) {
        use std::io::IsTerminal;
        if self.hidden || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = indicatif::ProgressBar::new(batches);
        // No time left is known before a batch is timed.
        bar.set_style(style(false));
        bar.set_prefix(format!("{epoch}/{epochs}"));
        bar.set_position(done);
        self.bar = Some(bar);
    }

    fn batch_done(&mut self, done: u64, loss: f64, accuracy: f64) {
        if let Some(bar) = &self.bar {
            if bar.message().is_empty() {
                // The first batch of this bar: now the time left is known.
                bar.set_style(style(true));
            }
            bar.set_position(done);
            bar.set_message(format!("loss {loss:.4}, acc {:.2}%", 100.0 * accuracy));
        }
    }

    fn epoch_trained(&mut self) {
        self.clear();
    }

    fn stop_requested(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

/// The bar's template; `timed`: with the time left in the epoch, once a
/// batch has been timed (before that indicatif would say "0s left").
fn template(timed: bool) -> &'static str {
    if timed {
        "epoch {prefix} [{bar:30}] {pos}/{len} batches, {msg} ({eta} left in this epoch)"
    } else {
        "epoch {prefix} [{bar:30}] {pos}/{len} batches, starting"
    }
}

fn style(timed: bool) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template(timed))
        .expect("a valid template")
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn before_the_first_batch_the_bar_claims_no_time_left() {
        assert!(!super::template(false).contains("eta"));
        assert!(super::template(true).contains("{eta} left"));
        // Both parse.
        let _ = (super::style(false), super::style(true));
    }
}
