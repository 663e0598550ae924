//! One epoch of a run: its batches, a step each, then the evaluation, the
//! checkpoint and the metrics row.

use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use layers::Network;
use mnist_io::{Dataset, Normalize};
use optim::Optimizer;

use super::options::{Position, TrainOptions};
use super::progress::{time_left, Progress};
use super::run_dir::{metrics_csv, RunDir, Timing};
use crate::batch::DatasetBatch;
use crate::checkpoint::{Checkpoint, EpochRecord, PartialEpoch};
use crate::config::TrainConfig;
use crate::eval::evaluate;
use crate::files::{copy_atomic, write_atomic};
use crate::parallel::DataParallel;
use crate::step::{first_non_finite, step_key, StepResult, AUGMENT_STREAM, DROPOUT_STREAM};

/// A run under way: what it trains, where it stands, and where it writes.
pub(crate) struct Run<'a> {
    pub(crate) opts: &'a TrainOptions,
    pub(crate) dir: RunDir,
    pub(crate) config: TrainConfig,
    pub(crate) net: Network,
    pub(crate) optimizer: Optimizer,
    /// Epochs finished.
    pub(crate) epochs_done: u64,
    /// The batches of the next epoch already trained.
    pub(crate) partial: PartialEpoch,
    /// Every finished epoch's figures, and the timings beside them.
    pub(crate) history: Vec<EpochRecord>,
    pub(crate) timings: Vec<Option<Timing>>,
    /// The data set's name, kept in checkpoints.
    pub(crate) dataset_name: Option<String>,
    pub(crate) train_set: &'a Dataset,
    pub(crate) test_set: &'a Dataset,
    pub(crate) normalize: Option<Normalize>,
    /// Seconds spent training (not evaluating) in this process.
    pub(crate) train_seconds: f64,
    /// Each epoch's seconds in this process, evaluation and checkpoints included.
    pub(crate) epoch_seconds: Vec<f64>,
}

impl Run<'_> {
    /// Batches in an epoch.
    pub(crate) fn batches_per_epoch(&self) -> u64 {
        self.train_set.len().div_ceil(self.config.training.batch) as u64
    }

    /// Where the run stands.
    pub(crate) fn position(&self) -> Position {
        Position {
            epochs_done: self.epochs_done,
            batches: self.partial.batches,
            batches_per_epoch: self.batches_per_epoch(),
        }
    }

    /// Writes `last.ckpt`: the weights, the optimizer, and where the run stands.
    fn save(&self) -> Result<()> {
        let last = self.dir.last();
        Checkpoint::capture(
            &self.config,
            self.dataset_name.clone(),
            &self.net,
            self.optimizer.state(),
            self.epochs_done,
            self.partial.clone(),
            self.history.clone(),
        )
        .save(&last)?;
        if self.partial.batches > 0 {
            // Mid-epoch (an end of epoch is logged with its metrics).
            tracing::debug!(
                "wrote {} at batch {} of epoch {}",
                last.display(),
                self.partial.batches,
                self.epochs_done + 1
            );
        }
        Ok(())
    }

    /// Trains the batches of the current epoch not yet trained, at the
    /// schedule's learning rate for the epoch. Returns `false` when
    /// `progress` asked to stop, after saving `last.ckpt` where the run stands.
    pub(crate) fn train_batches(
        &mut self,
        parallel: &mut DataParallel,
        progress: &mut dyn Progress,
    ) -> Result<bool> {
        let t = self.config.training.clone();
        let epoch = self.epochs_done;
        let base = self.config.optimizer.lr();
        let lr = self.config.schedule.lr(base, epoch as usize, t.epochs);
        self.optimizer.set_lr(lr);
        let order = mnist_io::epoch_order(self.train_set.len(), t.seed, epoch);
        let batches = self.batches_per_epoch();
        progress.epoch_started(epoch as usize + 1, t.epochs, batches, self.partial.batches);
        let done = self.partial.batches as usize;
        for (_, indices) in mnist_io::batches(&order, t.batch).skip(done) {
            if progress.stop_requested() {
                self.save()?;
                return Ok(false);
            }
            // The step's random streams (dropout masks, augmentation).
            let at = self.partial.batches;
            let key = |stream: u64| step_key(t.seed, epoch, at, stream);
            let batch = DatasetBatch {
                data: self.train_set,
                indices,
                normalize: self.normalize,
                augment: t.augment.as_ref().map(|a| (a, key(AUGMENT_STREAM))),
            };
            let loss = self.config.loss_fn();
            let (net, optimizer) = (&mut self.net, &mut self.optimizer);
            let result = parallel
                .step(net, &loss, &batch, key(DROPOUT_STREAM), optimizer)
                .map_err(|e| anyhow!("{e}"))?;
            self.record_batch(result, indices.len())?;
            let p = &self.partial;
            let seen = p.seen as f64;
            progress.batch_done(p.batches, p.loss_sum / seen, p.correct as f64 / seen);
            let checkpoint_due = self
                .opts
                .checkpoint_every
                .is_some_and(|k| k > 0 && p.batches.is_multiple_of(k));
            if checkpoint_due && p.batches < batches {
                self.save()?;
            }
        }
        Ok(true)
    }

    /// Adds a trained batch of `n` examples to the epoch's running figures,
    /// or stops the run if its loss or a parameter is no longer finite.
    fn record_batch(&mut self, r: StepResult, n: usize) -> Result<()> {
        let b = self.partial.batches + 1;
        let why = if !r.loss.is_finite() {
            Some(format!("the loss became {}", r.loss))
        } else {
            first_non_finite(&self.net)
                .map(|name| format!("parameter `{name}` became NaN or infinite"))
        };
        if let Some(why) = why {
            let kept = if self.dir.last().exists() {
                format!(
                    "The last good checkpoint, {}, is intact",
                    self.dir.last().display()
                )
            } else {
                "No checkpoint was written yet (a lower lr may help)".to_string()
            };
            bail!(
                "epoch {} batch {b}: {why}; stopping. {kept}",
                self.epochs_done + 1
            );
        }
        let p = &mut self.partial;
        p.batches = b;
        p.loss_sum += r.loss * n as f64;
        p.correct += r.correct as u64;
        p.seen += n as u64;
        Ok(())
    }

    /// After an epoch's batches, `trained` images of which took
    /// `train_seconds` from `started` (fewer than the epoch's when it was
    /// resumed part way): evaluates, records the epoch, writes `last.ckpt`
    /// (and `best.ckpt`) and then `metrics.csv`, and logs the epoch's line.
    pub(crate) fn finish_epoch(
        &mut self,
        started: Instant,
        train_seconds: f64,
        trained: u64,
    ) -> Result<()> {
        let eval_started = Instant::now();
        let record = self.evaluate_epoch()?;
        let eval_seconds = eval_started.elapsed().as_secs_f64();
        let best = self.history.iter().all(|r| record.test_acc > r.test_acc);
        self.history.push(record.clone());
        self.timings.resize(self.history.len() - 1, None);
        self.timings.push(Some(Timing {
            train: train_seconds,
            eval: eval_seconds,
        }));
        self.epochs_done += 1;
        self.partial = PartialEpoch::default();

        // Checkpoint first, then the metrics that describe it: after a crash
        // between the two, resuming rewrites the metrics from the checkpoint.
        self.save()?;
        if best {
            copy_atomic(&self.dir.last(), &self.dir.best())?;
        }
        let metrics = metrics_csv(&self.history, &self.timings);
        write_atomic(&self.dir.metrics(), metrics.as_bytes())?;
        tracing::debug!(
            "wrote {} and {}",
            self.dir.last().display(),
            self.dir.metrics().display()
        );
        self.epoch_seconds.push(started.elapsed().as_secs_f64());
        self.log_epoch(&record, (train_seconds, trained), best);
        Ok(())
    }

    /// The figures of the epoch just trained: the test set's, and the
    /// training set's (evaluated with `eval_train`, else the running means
    /// over the epoch's batches).
    fn evaluate_epoch(&self) -> Result<EpochRecord> {
        let t = &self.config.training;
        let test = evaluate(&self.net, self.test_set, t.batch, self.normalize)?;
        let p = &self.partial;
        let (train_loss, train_acc) = if t.eval_train {
            let e = evaluate(&self.net, self.train_set, t.batch, self.normalize)?;
            (e.loss, e.accuracy)
        } else {
            let seen = p.seen.max(1) as f64;
            (p.loss_sum / seen, p.correct as f64 / seen)
        };
        let classes = self.net.outputs();
        let never: Vec<usize> = (0..classes)
            .filter(|&c| test.confusion.iter().all(|row| row[c] == 0))
            .collect();
        if !never.is_empty() {
            tracing::warn!("{}", never_predicted(&never));
        }
        Ok(EpochRecord {
            epoch: self.epochs_done + 1,
            train_loss,
            train_acc,
            test_loss: test.loss,
            test_acc: test.accuracy,
        })
    }

    /// The epoch's line in the log; `(seconds, images)` trained in this process.
    fn log_epoch(&self, record: &EpochRecord, (train_seconds, trained): (f64, u64), best: bool) {
        let epochs = self.config.training.epochs;
        let left = time_left(&self.epoch_seconds, epochs - self.epochs_done as usize);
        tracing::info!(
            "epoch {}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | lr {:.4} | {:.1} s, {}{}{}",
            record.epoch,
            epochs,
            record.train_loss,
            100.0 * record.train_acc,
            record.test_loss,
            100.0 * record.test_acc,
            self.optimizer.lr(),
            train_seconds,
            throughput(trained, self.train_set.len(), train_seconds),
            if best { " (best)" } else { "" },
            left.map(|s| format!(" | {s}")).unwrap_or_default()
        );
    }
}

/// Images per second over the `trained` images of an epoch of `epoch_len`
/// that took `seconds`; after a resume part way, it says over how many.
pub(crate) fn throughput(trained: u64, epoch_len: usize, seconds: f64) -> String {
    let rate = trained as f64 / seconds;
    if trained < epoch_len as u64 {
        format!("{rate:.0} img/s over the {trained} images trained since the resume")
    } else {
        format!("{rate:.0} img/s")
    }
}

/// The warning for output classes the test set never saw predicted; it points
/// to where a user reads about it (`cnn configs seed` prints the seed config
/// with its notes).
pub(crate) fn never_predicted(classes: &[usize]) -> String {
    format!(
        "classes {classes:?} were never predicted on the test set: their output units are probably dead \
         (a ReLU after the last layer can kill them; see the notes in `cnn configs seed`)"
    )
}

#[cfg(test)]
mod warning_tests {
    #[test]
    fn a_resumed_epoch_counts_only_the_images_trained_since() {
        // 27,000 of 60,000 images in 1 s: 27,000 img/s, not 60,000.
        let line = super::throughput(27_000, 60_000, 1.0);
        assert!(
            line.starts_with("27000 img/s over the 27000 images"),
            "{line}"
        );
        assert_eq!(super::throughput(60_000, 60_000, 2.0), "30000 img/s");
    }

    #[test]
    fn the_dead_class_warning_points_to_a_command_that_shows_the_notes() {
        let w = super::never_predicted(&[3, 7]);
        assert!(w.contains("[3, 7]"), "{w}");
        assert!(w.contains("`cnn configs seed`"), "{w}");
        // The notes it points to are in the seed config that command prints.
        let (_, seed) = crate::config::BUILTIN[0];
        assert!(seed.contains("ReLU after the last layer"), "{seed}");
    }
}
