//! `cnn train` as a user runs it, on a tiny made-up data set (fast, no real
//! MNIST needed): what it prints and writes.

use std::path::Path;
use std::process::Command;

mod common;

/// Runs `cnn` with `args`; returns success, stdout and stderr.
fn cnn(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(args)
        .output()
        .expect("cnn runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

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
