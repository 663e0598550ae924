//! The product as a user meets it, in release mode: train the seed network
//! for one epoch on real MNIST, then eval, predict, visualize and plot; and
//! one epoch on the im2col path.
//!
//! Ignored by `cargo test` (a debug-mode epoch is slow); `.ci/run` runs it as
//! `cargo test --release -p trainer-cli --test end_to_end -- --ignored`.

use std::path::Path;
use std::process::Command;

mod common;
use common::cnn;

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{}: not a PNG: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{}: does not decode: {e}", path.display()));
    (info.width, info.height)
}

#[test]
#[ignore = "release mode: cargo test --release -p trainer-cli --test end_to_end -- --ignored"]
fn one_epoch_of_the_seed_network_then_every_command() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());

    let (ok, stdout, stderr) = cnn(&["train", "--data", d, "--out", r, "--epochs", "1"]);
    assert!(ok, "train failed:\n{stderr}");
    println!("{stdout}");
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = metrics.lines();
    assert_eq!(
        lines.next(),
        Some("epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds")
    );
    let row: Vec<&str> = lines.next().expect("one epoch row").split(',').collect();
    let test_acc: f64 = row[4].parse().unwrap();
    assert!(
        test_acc >= 95.0,
        "test accuracy after one epoch {test_acc}% < 95%"
    );
    for f in ["last.ckpt", "best.ckpt", "config.toml"] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let model = run.join("best.ckpt");
    let m = model.to_str().unwrap();

    let (ok, stdout, stderr) = cnn(&["eval", "--model", m, "--data", d]);
    assert!(ok, "eval failed:\n{stderr}");
    assert!(
        stdout.contains(&format!("accuracy {test_acc:.2}%")),
        "eval disagrees with training's {test_acc}:\n{stdout}"
    );
    assert!(stdout.contains("confusion matrix"), "{stdout}");

    // Test image 0 of MNIST is a 7.
    let test = mnist_io::Dataset::load(&data, mnist_io::Split::Test).unwrap();
    assert_eq!(test.label(0), 7);
    let img = dir.path().join("seven.png");
    let grey = trainer_cli::image_io::GreyImage {
        width: 28,
        height: 28,
        pixels: test.image(0).to_vec(),
    };
    std::fs::write(&img, grey.to_png().unwrap()).unwrap();
    let (ok, stdout, stderr) = cnn(&["predict", "--model", m, "--json", img.to_str().unwrap()]);
    assert!(ok, "predict failed:\n{stderr}");
    assert!(
        stdout.contains("\"class\": 7") || stdout.contains("\"class\":7"),
        "{stdout}"
    );

    let maps = dir.path().join("maps.png");
    let (ok, _, stderr) = cnn(&[
        "visualize",
        "--model",
        m,
        "--data",
        d,
        "--index",
        "0",
        "--out",
        maps.to_str().unwrap(),
    ]);
    assert!(ok, "visualize failed:\n{stderr}");
    // The input and 8 feature maps in one row, 28 px x 4, 2 px gaps, labelled.
    let size = trainer_cli::visualize::maps_figure_size(9, 9, (28, 28), 4, 2);
    assert_eq!(png_size(&maps), (size.0 as u32, size.1 as u32));
    let filters = dir.path().join("filters.png");
    let (ok, _, stderr) = cnn(&[
        "visualize",
        "--model",
        m,
        "--filters",
        "--out",
        filters.to_str().unwrap(),
    ]);
    assert!(ok, "visualize --filters failed:\n{stderr}");
    assert!(png_size(&filters).0 > 0);

    let curves = dir.path().join("curves.png");
    let (ok, _, stderr) = cnn(&["plot", "--run", r, "--out", curves.to_str().unwrap()]);
    assert!(ok, "plot failed:\n{stderr}");
    assert_eq!(png_size(&curves), (1200, 500));
}

/// The path the book teaches, end to end: one epoch of the seed network on
/// im2col and col2im reaches the same accuracy, the run records its
/// algorithm, and resuming it with another is refused.
#[test]
#[ignore = "release mode: cargo test --release -p trainer-cli --test end_to_end -- --ignored"]
fn one_epoch_on_the_im2col_path() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());

    let (ok, _, stderr) = cnn(&[
        "train", "--conv", "im2col", "--data", d, "--out", r, "--epochs", "1",
    ]);
    assert!(ok, "train --conv im2col failed:\n{stderr}");
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let row: Vec<&str> = metrics
        .lines()
        .nth(1)
        .expect("one epoch row")
        .split(',')
        .collect();
    let test_acc: f64 = row[4].parse().unwrap();
    assert!(
        test_acc >= 95.0,
        "test accuracy after one epoch on the im2col path {test_acc}% < 95%"
    );
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert_eq!(
        config.matches("algorithm = \"im2col\"").count(),
        2,
        "{config}"
    );

    let (ok, _, stderr) = cnn(&[
        "train", "--resume", "--conv", "direct", "--data", d, "--out", r, "--epochs", "2",
    ]);
    assert!(!ok, "a resumed im2col run accepted --conv direct");
    assert!(
        stderr.contains("--conv direct cannot change a run being resumed")
            && stderr.contains("`im2col`"),
        "{stderr}"
    );
    let after = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(after, metrics, "the refused resume changed the run");
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The loss and accuracy columns of metrics.csv (timings differ between identical runs).
fn figures(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
#[ignore = "release mode: cargo test --release -p trainer-cli --test end_to_end -- --ignored"]
fn three_hundred_batches_are_bit_identical_on_one_and_two_threads() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut sums = Vec::new();
    for threads in ["1", "2", "3"] {
        let run = dir.path().join(format!("t{threads}"));
        let (ok, _, stderr) = cnn(&[
            "--threads",
            threads,
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--epochs",
            "1",
            "--train-subset",
            "30000",
        ]);
        assert!(ok, "{stderr}");
        sums.push((threads, sha256(&run.join("last.ckpt")), figures(&run)));
    }
    println!(
        "checkpoint SHA-256 by thread count: {:?}",
        sums.iter().map(|(t, s, _)| (t, s)).collect::<Vec<_>>()
    );
    for (t, sum, fig) in &sums[1..] {
        assert_eq!(
            sum, &sums[0].1,
            "{t} threads give another checkpoint than 1"
        );
        assert_eq!(fig, &sums[0].2, "{t} threads give other metrics than 1");
    }
}

#[test]
#[ignore = "release mode: cargo test --release -p trainer-cli --test end_to_end -- --ignored"]
fn killed_runs_resume_to_the_same_bits() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let args = |run: &Path| -> Vec<String> {
        [
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--epochs",
            "3",
            "--train-subset",
            "6000",
            "--checkpoint-every",
            "7",
        ]
        .map(String::from)
        .to_vec()
    };
    let whole = dir.path().join("whole");
    let (ok, _, stderr) = cnn(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{stderr}");

    // Kill at moments spread over the run (different on every test run), resume each time.
    let run = dir.path().join("killed");
    let seed = std::collections::hash_map::RandomState::new();
    let mut kills = Vec::new();
    for attempt in 0..4u64 {
        use std::hash::BuildHasher;
        let delay_ms = 150 + seed.hash_one(attempt) % 900;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cnn"));
        cmd.args(args(&run));
        if run.join("last.ckpt").exists() {
            cmd.arg("--resume");
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SIGKILL: no handler runs, as in a power cut.
        let _ = child.kill();
        let _ = child.wait();
        kills.push(delay_ms);
        // Whatever is on disk must be a complete checkpoint whose history matches metrics.csv.
        if run.join("last.ckpt").exists() {
            let ck = trainer::checkpoint::Checkpoint::load(&run.join("last.ckpt"))
                .expect("a complete checkpoint after SIGKILL");
            let rows = std::fs::read_to_string(run.join("metrics.csv"))
                .map(|t| t.lines().count() - 1)
                .unwrap_or(0);
            assert!(
                rows == ck.body.history.len() || rows + 1 == ck.body.history.len(),
                "metrics rows {rows}, checkpoint epochs {}",
                ck.body.history.len()
            );
        }
    }
    // A kill may land after the last epoch was saved: then there is nothing left to resume.
    let finished = run.join("last.ckpt").exists()
        && trainer::checkpoint::Checkpoint::load(&run.join("last.ckpt"))
            .expect("a complete checkpoint")
            .body
            .history
            .len()
            == 3;
    if !finished {
        let mut finish: Vec<String> = args(&run);
        if run.join("last.ckpt").exists() {
            finish.push("--resume".into());
        }
        let (ok, _, stderr) = cnn(&finish.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "{stderr}");
    }
    println!(
        "killed after {kills:?} ms; final checkpoint {}",
        sha256(&run.join("last.ckpt"))
    );
    assert_eq!(
        sha256(&run.join("last.ckpt")),
        sha256(&whole.join("last.ckpt")),
        "resumed run differs from the uninterrupted one"
    );
    assert_eq!(figures(&run), figures(&whole));
}

#[test]
#[ignore = "release mode: cargo test --release -p trainer-cli --test end_to_end -- --ignored"]
fn a_second_trainer_on_the_same_run_directory_is_refused() {
    let Some(data) = common::mnist_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut first = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args([
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--epochs",
            "50",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first holds the lock (it writes config.toml right after taking it).
    for _ in 0..200 {
        if run.join("config.toml").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let (ok, _, stderr) = cnn(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--resume",
    ]);
    let _ = first.kill();
    let _ = first.wait();
    assert!(!ok);
    assert!(
        stderr.contains("another `cnn train` is using this run directory"),
        "{stderr}"
    );
}
