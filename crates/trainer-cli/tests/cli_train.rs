//! `cnn train` as a user runs it, on a tiny made-up data set (fast, no real
//! MNIST needed): what it says when it resumes, and when there is nothing to do.

use std::path::Path;

use trainer::train::{train, Progress, TrainOptions};

mod common;
use common::cnn;

/// `cnn train --data DATA --out OUT` followed by `more`.
fn cnn_train(data: &Path, out: &Path, more: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(more);
    cnn(&args)
}

/// Stops the run before its third batch.
struct StopBeforeBatch3(u64);

impl Progress for StopBeforeBatch3 {
    fn batch_done(&mut self, _done: u64, _loss: f64, _accuracy: f64) {
        self.0 += 1;
    }
    fn stop_requested(&self) -> bool {
        self.0 >= 2
    }
}

#[test]
fn resuming_says_from_which_epoch_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("run"));
    common::made_up_mnist(&data, 200, 50);
    let mut config = trainer::config::TrainConfig::load("seed").unwrap();
    config.training.batch = 50;
    let opts = TrainOptions {
        config: Some(config),
        epochs: Some(2),
        data: data.clone(),
        out: out.clone(),
        resume: false,
        force: false,
        eval_train: false,
        conv: None,
        checkpoint_every: None,
        train_subset: None,
    };
    let stopped = train(&opts, &mut StopBeforeBatch3(0)).unwrap();
    assert!(stopped.stopped_at.is_some());

    let (ok, _, stderr) = cnn_train(&data, &out, &["--resume"]);
    assert!(ok, "{stderr}");
    let expected = format!("resuming {} at epoch 1, 2 of 4 batches done", out.display());
    assert!(stderr.contains(&expected), "no `{expected}` in:\n{stderr}");
}

#[test]
fn resuming_a_run_with_nothing_left_to_do_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("run"));
    common::made_up_mnist(&data, 100, 50);
    let (ok, _, stderr) = cnn_train(&data, &out, &["--epochs", "2", "--batch", "50"]);
    assert!(ok, "{stderr}");
    let before = std::fs::read(out.join("last.ckpt")).unwrap();
    let metrics = std::fs::read(out.join("metrics.csv")).unwrap();

    for epochs in [&[][..], &["--epochs", "2"], &["--epochs", "1"]] {
        let mut args = vec!["--resume"];
        args.extend(epochs);
        let (ok, stdout, stderr) = cnn_train(&data, &out, &args);
        assert!(!ok, "{args:?} succeeded:\n{stdout}");
        assert!(
            stderr.contains("nothing to do") && stderr.contains("finished 2 epochs"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("--epochs with more than 2"),
            "{args:?}: {stderr}"
        );
    }
    assert!(std::fs::read(out.join("last.ckpt")).unwrap() == before);
    assert_eq!(std::fs::read(out.join("metrics.csv")).unwrap(), metrics);

    // More epochs asked for: it trains them.
    let (ok, _, stderr) = cnn_train(&data, &out, &["--resume", "--epochs", "3"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("epoch 3/3"), "{stderr}");
}

#[test]
fn a_failed_data_folder_leaves_no_run_folder_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs/new");
    let (ok, _, stderr) = cnn_train(&dir.path().join("no-such-data"), &out, &[]);
    assert!(!ok);
    assert!(stderr.contains("no-such-data"), "{stderr}");
    assert!(!out.exists(), "{} was created", out.display());
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn training_prints_the_network_and_quiet_and_verbose_say_less_and_more() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::made_up_mnist(&data, 100, 50);
    let one_epoch = ["--epochs", "1", "--batch", "50"];

    let (ok, stdout, stderr) = cnn_train(&data, &dir.path().join("a"), &one_epoch);
    assert!(ok, "{stderr}");
    // The network's summary (layers, shapes, parameters), at info level.
    assert!(
        stderr.contains("conv1") && stderr.contains("total parameters"),
        "{stderr}"
    );
    assert!(stderr.contains("epoch 1/1"), "{stderr}");
    assert!(!stderr.contains("DEBUG"), "{stderr}");
    assert!(stdout.starts_with("done: 1 epoch"), "{stdout}");

    let mut args = vec!["-q", "train", "--data", data.to_str().unwrap(), "--out"];
    let b = dir.path().join("b");
    args.push(b.to_str().unwrap());
    args.extend(one_epoch);
    let (ok, quiet_stdout, quiet_stderr) = cnn(&args);
    assert!(ok, "{quiet_stderr}");
    assert_eq!(quiet_stderr, "", "-q prints errors only");
    assert_eq!(quiet_stdout.lines().count(), 1, "{quiet_stdout}");
    assert!(quiet_stdout.starts_with("done: 1 epoch"), "{quiet_stdout}");

    let c = dir.path().join("c");
    args[0] = "-v";
    args[5] = c.to_str().unwrap();
    let (ok, _, verbose) = cnn(&args);
    assert!(ok, "{verbose}");
    assert!(
        verbose.contains("DEBUG") && verbose.contains("last.ckpt"),
        "-v logs each checkpoint written:\n{verbose}"
    );

    // An error still shows with -q.
    let (ok, _, stderr) = cnn(&["-q", "eval", "--model", "missing.ckpt", "--data", "x"]);
    assert!(!ok);
    assert!(
        stderr.contains("error:") && stderr.contains("missing.ckpt"),
        "{stderr}"
    );
}

/// With dropout, batch norm and augmentation (config `modern`): two epochs
/// on 2 threads give the checkpoint bytes of one epoch resumed for a second
/// on 1 thread, and another seed gives other bits. Masks and motions are
/// keyed by (seed, epoch, batch), so neither the threads nor the restart
/// change them.
#[test]
fn modern_runs_resume_to_the_same_bits_on_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::made_up_mnist(&data, 300, 50);
    let run = |name: &str, more: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["--config", "modern", "--batch", "50"];
        args.extend(more);
        let (ok, _, err) = cnn_train(&data, &out, &args);
        assert!(ok, "{err}");
        std::fs::read(out.join("last.ckpt")).unwrap()
    };
    let straight = {
        let (ok, _, err) = cnn(&[
            "--threads",
            "2",
            "train",
            "--config",
            "modern",
            "--batch",
            "50",
            "--epochs",
            "2",
            "--data",
            data.to_str().unwrap(),
            "--out",
            dir.path().join("straight").to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        std::fs::read(dir.path().join("straight/last.ckpt")).unwrap()
    };
    run("resumed", &["--epochs", "1"]);
    let out = dir.path().join("resumed");
    let (ok, _, err) = cnn(&[
        "--threads",
        "1",
        "train",
        "--resume",
        "--epochs",
        "2",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(std::fs::read(out.join("last.ckpt")).unwrap() == straight);
    assert!(run("other-seed", &["--epochs", "2", "--seed", "2"]) != straight);
}
