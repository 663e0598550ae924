//! Stopping a run and resuming it gives the bits of a run that never stopped:
//! through the library's stop request at chosen batches (made-up data, always
//! runs), and through Ctrl-C (SIGINT) sent to a real `cnn train` (real MNIST).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use trainer::config::TrainConfig;
use trainer::train::{train, Position, Progress, Quiet, TrainOptions};

mod common;

/// Asks the run to stop once `at` batches have been trained in this process.
struct StopAfter {
    at: u64,
    trained: u64,
}

impl Progress for StopAfter {
    fn batch_done(&mut self, _done: u64, _loss: f64, _accuracy: f64) {
        self.trained += 1;
    }
    fn stop_requested(&self) -> bool {
        self.trained >= self.at
    }
}

fn options(data: &Path, out: &Path) -> TrainOptions {
    let mut config = TrainConfig::load("seed").unwrap();
    config.training.batch = 50;
    TrainOptions {
        config: Some(config),
        epochs: Some(2),
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        resume: false,
        force: false,
        eval_train: false,
        conv: None,
        checkpoint_every: None,
        train_subset: None,
    }
}

#[test]
fn a_run_stopped_at_any_batch_resumes_to_the_bits_of_one_that_never_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::made_up_mnist(&data, 400, 100); // 8 batches of 50 per epoch

    let whole = dir.path().join("whole");
    let summary = train(&options(&data, &whole), &mut Quiet).unwrap();
    assert_eq!(summary.stopped_at, None);
    let expected = std::fs::read(whole.join("last.ckpt")).unwrap();

    // Before the first batch, mid-epoch, at the epoch boundary, in the second epoch.
    for (at, epochs_done, batches) in [(0, 0, 0), (3, 0, 3), (8, 1, 0), (11, 1, 3)] {
        let out = dir.path().join(format!("stopped-{at}"));
        let summary = train(&options(&data, &out), &mut StopAfter { at, trained: 0 }).unwrap();
        assert_eq!(
            summary.stopped_at,
            Some(Position {
                epochs_done,
                batches,
                batches_per_epoch: 8
            }),
            "stopped after {at} batches"
        );
        let ckpt = trainer::checkpoint::Checkpoint::load(&out.join("last.ckpt")).unwrap();
        assert_eq!(
            (ckpt.body.epochs_done, ckpt.body.partial.batches),
            (epochs_done, batches)
        );

        let mut resume = options(&data, &out);
        resume.config = None;
        resume.epochs = None;
        resume.resume = true;
        let summary = train(&resume, &mut Quiet).unwrap();
        assert_eq!(summary.stopped_at, None);
        assert!(
            std::fs::read(out.join("last.ckpt")).unwrap() == expected,
            "stopped after {at} batches and resumed: last.ckpt differs from the uninterrupted run's"
        );
    }
}

fn cnn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cnn"))
}

/// Starts `cnn train` with `args`, waits until its stderr says that it wrote a
/// checkpoint mid-epoch (so that training is under way and the Ctrl-C handler
/// is in place), sends SIGINT `signals` times, and returns its exit code and stderr.
fn interrupt(args: &[&str], signals: usize) -> (Option<i32>, String) {
    let mut child = cnn()
        .arg("-v")
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cnn runs");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("cnn train ended before writing a checkpoint:\n{log}");
        }
        log.push_str(&line);
        if line.contains("last.ckpt at batch") {
            break;
        }
    }
    for _ in 0..signals {
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    log.push_str(&rest);
    let status = child.wait().unwrap();
    (status.code(), log)
}

/// Splits a command line as a POSIX shell would, for plain and single-quoted words.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = None::<String>;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
#[cfg(unix)]
fn ctrl_c_saves_mid_epoch_prints_the_resume_command_and_resuming_gives_the_same_bits() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = data.to_str().unwrap();
    let run = |out: &PathBuf| -> Vec<String> {
        [
            "train",
            "--data",
            d,
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "2",
            "--train-subset",
            "2000",
            "--checkpoint-every",
            "5",
        ]
        .map(String::from)
        .to_vec()
    };

    let whole = dir.path().join("whole");
    let args = run(&whole);
    let status = cnn().args(&args).output().unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let expected = std::fs::read(whole.join("last.ckpt")).unwrap();

    let stopped = dir.path().join("stopped");
    let args = run(&stopped);
    let (code, log) = interrupt(&args.iter().map(String::as_str).collect::<Vec<_>>(), 1);
    match code {
        Some(130) => {
            assert!(log.contains("interrupted at epoch"), "{log}");
            let command = log
                .lines()
                .skip_while(|l| !l.ends_with("Resume with:"))
                .nth(1)
                .unwrap_or_else(|| panic!("no resume command:\n{log}"));
            let words = shell_words(command.trim());
            assert_eq!(words[0], env!("CARGO_BIN_EXE_cnn"), "{command}");
            let resumed = Command::new(&words[0]).args(&words[1..]).output().unwrap();
            let resumed_log = String::from_utf8_lossy(&resumed.stderr);
            assert!(resumed.status.success(), "{command}:\n{resumed_log}");
            assert!(
                resumed_log.contains("resuming") && resumed_log.contains("batches done"),
                "the resume log says where it starts:\n{resumed_log}"
            );
            // Resumed part way, its first epoch's speed is over the images it
            // trained, not the epoch's 2,000.
            if !resumed_log.contains(", 0 of ") {
                assert!(
                    resumed_log.contains("images trained since the resume"),
                    "{resumed_log}"
                );
            }
        }
        // The run ended before the signal arrived: nothing to resume.
        Some(0) => println!("the run finished before SIGINT arrived"),
        other => panic!("exit code {other:?}, expected 130:\n{log}"),
    }
    assert!(
        std::fs::read(stopped.join("last.ckpt")).unwrap() == expected,
        "interrupted and resumed: last.ckpt differs from the uninterrupted run's"
    );
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
#[cfg(unix)]
fn a_second_ctrl_c_exits_at_once_with_130_and_leaves_no_broken_checkpoint() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (code, log) = interrupt(
        &[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "100",
            "--train-subset",
            "3000",
            "--checkpoint-every",
            "1",
        ],
        2,
    );
    assert_eq!(code, Some(130), "{log}");
    // Written by the first Ctrl-C's stop or by --checkpoint-every: whole either way.
    trainer::checkpoint::Checkpoint::load(&out.join("last.ckpt")).unwrap();
}
