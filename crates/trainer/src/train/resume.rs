//! Where a run starts: a fresh network, or the last checkpoint of the run
//! being resumed, with the rules that keep a resumed run the same run.

use anyhow::{anyhow, bail, Context, Result};
use layers::Network;
use optim::Optimizer;

use super::options::TrainOptions;
use super::run_dir::{first_difference, RunDir};
use crate::checkpoint::{Checkpoint, EpochRecord, PartialEpoch};
use crate::config::TrainConfig;

/// The state a run starts from.
pub(crate) struct Start {
    pub(crate) config: TrainConfig,
    pub(crate) net: Network,
    pub(crate) optimizer: Optimizer,
    /// Epochs finished.
    pub(crate) epochs_done: u64,
    /// The batches of the next epoch already trained.
    pub(crate) partial: PartialEpoch,
    /// Every finished epoch's figures.
    pub(crate) history: Vec<EpochRecord>,
}

impl Start {
    /// A new run: the network of `opts`'s config, with its initial weights.
    pub(crate) fn fresh(opts: &TrainOptions) -> Result<Start> {
        let mut config = opts
            .config
            .clone()
            .ok_or_else(|| anyhow!("a new run needs a config"))?;
        if let Some(conv) = opts.conv {
            config.network.set_conv_algorithm(conv);
        }
        // How the train figures are made is part of the run, recorded in its config.
        config.training.eval_train |= opts.eval_train;
        let net = config.build_network()?;
        let optimizer = Optimizer::new(config.optimizer.clone());
        Ok(Start {
            config,
            net,
            optimizer,
            epochs_done: 0,
            partial: PartialEpoch::default(),
            history: Vec::new(),
        })
    }

    /// The run of `run`'s `last.ckpt`, after checking that `opts` changes
    /// nothing but its number of epochs.
    pub(crate) fn resume(opts: &TrainOptions, run: &RunDir) -> Result<Start> {
        let ckpt = Checkpoint::load(&run.last()).context("--resume needs the run's last.ckpt")?;
        check_resumable(opts, run, &ckpt.config)?;
        let net = ckpt
            .network()
            .with_context(|| format!("{}", run.last().display()))?;
        let mut optimizer = Optimizer::new(ckpt.config.optimizer.clone());
        optimizer
            .load_state(ckpt.body.optimizer.clone(), net.params())
            .map_err(|e| anyhow!("{}: {e}", run.last().display()))?;
        Ok(Start {
            config: ckpt.config,
            net,
            optimizer,
            epochs_done: ckpt.body.epochs_done,
            partial: ckpt.body.partial,
            history: ckpt.body.history,
        })
    }
}

/// Refuses options that would make a resumed run another run: a conv
/// algorithm, `--eval-train` or a config other than the checkpoint's `was`.
fn check_resumable(opts: &TrainOptions, run: &RunDir, was: &TrainConfig) -> Result<()> {
    if let Some(conv) = opts.conv {
        crate::config::check_resumed_conv(&was.network, conv, &run.last())?;
    }
    if opts.eval_train && !was.training.eval_train {
        bail!(
            "--eval-train cannot change a run being resumed: {} was trained without it",
            run.last().display()
        );
    }
    if let Some(given) = &opts.config {
        // Only the epoch count may change; the rest is what makes the run.
        let mut given = given.clone();
        if let Some(conv) = opts.conv {
            given.network.set_conv_algorithm(conv);
        }
        given.training.epochs = was.training.epochs;
        given.training.eval_train = was.training.eval_train;
        given.training.input_mean_std = was.training.input_mean_std;
        given.training.class_names = was.training.class_names.clone();
        if let Some(key) = config_difference(was, &given) {
            bail!(
                "{}: the config given with --config differs from the run's in {key}; a resumed run may change only its number of epochs",
                run.last().display(),
            );
        }
    }
    Ok(())
}

/// The first key (`optimizer.lr`, `network.layers.2.out_channels`) whose
/// value differs between two configs, with both values; `None` when equal.
/// The name and description are not compared: they do not change a run.
pub(crate) fn config_difference(was: &TrainConfig, now: &TrainConfig) -> Option<String> {
    let now = TrainConfig {
        name: was.name.clone(),
        description: was.description.clone(),
        ..now.clone()
    };
    let table = |c: &TrainConfig| toml::Value::try_from(c).ok();
    first_difference("", &table(was)?, &table(&now)?)
}
