//! Bad runs stop cleanly: NaN losses, mismatched resumes, occupied run directories.

use std::path::PathBuf;

use trainer::checkpoint::Checkpoint;
use trainer::config::TrainConfig;
use trainer::train::{train, Quiet, TrainOptions};

mod common;

fn options(config: TrainConfig, data: PathBuf, out: PathBuf) -> TrainOptions {
    TrainOptions {
        config: Some(config),
        epochs: Some(1),
        data,
        out,
        resume: false,
        force: false,
        eval_train: false,
        conv: None,
        checkpoint_every: Some(1),
        train_subset: Some(300),
    }
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn a_diverging_run_stops_with_epoch_and_batch_and_keeps_its_last_good_checkpoint() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = TrainConfig::load("improved").unwrap();
    config.optimizer = optim::OptimizerConfig::sgd(1e9, 0.9, 0.0);
    let err = format!(
        "{:#}",
        train(&options(config, data, dir.path().to_path_buf()), &mut Quiet).unwrap_err()
    );
    // The message claims a checkpoint only when there is one.
    let kept = dir.path().join("last.ckpt").exists();
    assert!(
        err.contains("epoch 1 batch")
            && err.contains(if kept {
                "intact"
            } else {
                "No checkpoint was written yet"
            }),
        "{err}"
    );
    // Whatever checkpoint was written before the blow-up is complete and finite.
    if dir.path().join("last.ckpt").exists() {
        let ck = Checkpoint::load(&dir.path().join("last.ckpt")).unwrap();
        assert!(ck
            .body
            .params
            .iter()
            .all(|t| t.data.iter().all(|v| v.is_finite())));
    }
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn resuming_with_another_network_is_refused_and_a_finished_run_is_not_overwritten() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_path_buf();
    train(
        &options(
            TrainConfig::load("seed").unwrap(),
            data.clone(),
            out.clone(),
        ),
        &mut Quiet,
    )
    .unwrap();
    let before = std::fs::read(out.join("last.ckpt")).unwrap();

    let mut resume = options(TrainConfig::load("mlp").unwrap(), data.clone(), out.clone());
    resume.resume = true;
    let err = format!("{:#}", train(&resume, &mut Quiet).unwrap_err());
    assert!(
        err.contains("last.ckpt")
            && err.contains("differs from the run's in network.layers: 11 entries then, 4 now"),
        "{err}"
    );

    let err = format!(
        "{:#}",
        train(
            &options(TrainConfig::load("seed").unwrap(), data, out.clone()),
            &mut Quiet
        )
        .unwrap_err()
    );
    assert!(err.contains("--resume"), "{err}");
    assert_eq!(
        std::fs::read(out.join("last.ckpt")).unwrap(),
        before,
        "nothing may be overwritten"
    );
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn a_corrupt_last_checkpoint_is_refused_on_resume() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_path_buf();
    train(
        &options(
            TrainConfig::load("seed").unwrap(),
            data.clone(),
            out.clone(),
        ),
        &mut Quiet,
    )
    .unwrap();
    let path = out.join("last.ckpt");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let mut resume = options(TrainConfig::load("seed").unwrap(), data, out);
    resume.config = None;
    resume.resume = true;
    let err = format!("{:#}", train(&resume, &mut Quiet).unwrap_err());
    assert!(
        err.contains("checksum mismatch") && err.contains("last.ckpt"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the corrupt file is left for inspection, not overwritten"
    );
}
