//! What a run tells its user while it trains.

/// What a run reports while an epoch trains (a progress bar, say). Every
/// method does nothing by default; [`Quiet`] is a reporter of nothing.
pub trait Progress {
    /// Epoch `epoch` (1-based) of `epochs` starts, with `batches` batches,
    /// `done` of them already trained (a resumed epoch).
    fn epoch_started(&mut self, _epoch: usize, _epochs: usize, _batches: u64, _done: u64) {}
    /// `done` batches of the epoch are trained; `loss` and `accuracy` are
    /// the running means over them.
    fn batch_done(&mut self, _done: u64, _loss: f64, _accuracy: f64) {}
    /// The epoch's training is over; evaluation comes next.
    fn epoch_trained(&mut self) {}
    /// Whether the run should stop (the user pressed Ctrl-C, say). Asked
    /// before each batch; on `true`, [`super::train`] saves `last.ckpt` where the
    /// run stands, mid-epoch, and returns with [`super::RunSummary::stopped_at`] set.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {}

/// The time the remaining `epochs_left` epochs will take, from the mean of
/// the epochs timed so far (training, evaluation and checkpoints), in words:
/// `about 6 min left`. `None` when nothing is left or nothing was timed.
pub(crate) fn time_left(epoch_seconds: &[f64], epochs_left: usize) -> Option<String> {
    if epochs_left == 0 || epoch_seconds.is_empty() {
        return None;
    }
    let mean = epoch_seconds.iter().sum::<f64>() / epoch_seconds.len() as f64;
    let left = (mean * epochs_left as f64).round() as u64;
    Some(match left {
        0..90 => format!("about {left} s left"),
        90..5400 => format!("about {} min left", (left + 30) / 60),
        _ => format!("about {:.1} h left", left as f64 / 3600.0),
    })
}

#[cfg(test)]
mod tests {
    use super::time_left;

    #[test]
    fn time_left_is_the_mean_epoch_times_the_epochs_left() {
        assert_eq!(time_left(&[], 10), None);
        assert_eq!(time_left(&[4.0], 0), None);
        assert_eq!(time_left(&[3.0, 5.0], 10).unwrap(), "about 40 s left");
        assert_eq!(time_left(&[4.2], 99).unwrap(), "about 7 min left");
        assert_eq!(time_left(&[60.0], 120).unwrap(), "about 2.0 h left");
    }
}
