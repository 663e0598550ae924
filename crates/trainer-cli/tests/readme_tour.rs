//! The README's quick tour as a newcomer walks it in a fresh clone: every
//! command of the block under "## Quick tour", run in order in an empty
//! folder (with `data/mnist` in it) against the `cnn` program, so that the
//! README's commands cannot go stale. Only the training is shortened: one
//! epoch on 2,000 images instead of the tour's epochs; `cnn serve` listens on
//! any free port, answers a few requests, and is stopped by Ctrl-C.
//!
//! Ignored by `cargo test` (it needs the release build the tour makes);
//! `.ci/run` runs it as
//! `cargo test --release -p trainer-cli --test readme_tour -- --ignored`.

use std::path::Path;
use std::process::Command;

mod common;

/// The tour's first line, which fetches MNIST; the test gives the folder
/// `data/mnist` instead.
const FETCH: &str = "cargo xtask fetch-data";

/// The tour's second line, which builds the program and puts it on the
/// `PATH`; the test runs the program this build makes (`CARGO_BIN_EXE_cnn`)
/// instead of building it again.
const BUILD: &str =
    "cargo build --release -p trainer-cli && export PATH=\"$PWD/target/release:$PATH\"";

/// The tour's set-up lines, then its `cnn` commands.
fn set_up_and_commands(readme: &str) -> Vec<String> {
    let tour = quick_tour(readme);
    assert_eq!(
        tour.get(..2),
        Some(&[FETCH.to_string(), BUILD.to_string()][..]),
        "the tour's set-up lines changed; this test stands in for them, so update it"
    );
    tour[2..].to_vec()
}

/// The files a command writes: the value of its `--out`.
fn outputs(command: &str) -> Vec<&str> {
    let words: Vec<&str> = command.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "--out")
        .map(|w| w[1])
        .collect()
}

/// The commands of the README's quick tour: the indented block after the
/// heading, without the comments.
fn quick_tour(readme: &str) -> Vec<String> {
    readme
        .lines()
        .skip_while(|l| l.trim() != "## Quick tour")
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .map(|l| l.split(" #").next().unwrap_or_default().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The training made short: `--epochs N` becomes `--epochs 1 --train-subset 2000`.
fn shortened(mut words: Vec<String>) -> Vec<String> {
    if words.get(1).map(String::as_str) == Some("train") {
        if let Some(i) = words.iter().position(|w| w == "--epochs") {
            words.drain(i..(i + 2).min(words.len()));
        }
        words.extend(["--epochs", "1", "--train-subset", "2000"].map(String::from));
    }
    words
}

/// Writes the first MNIST test image (a 7) as `path`, a 28x28 grey PNG.
fn write_digit(data: &Path, path: &Path) {
    let test = mnist_io::Dataset::load(data, mnist_io::Split::Test).unwrap();
    let grey = trainer_cli::image_io::GreyImage {
        width: 28,
        height: 28,
        pixels: test.image(0).to_vec(),
    };
    std::fs::write(path, grey.to_png().unwrap()).unwrap();
}

#[test]
fn the_quick_tour_is_read_from_the_readme() {
    let tour = set_up_and_commands(include_str!("../../../README.md"));
    assert!(tour.len() > 5, "{tour:#?}");
    assert!(tour.iter().all(|c| c.starts_with("cnn ")), "{tour:#?}");
    // Everything the tour writes goes under runs/ (ignored by git), so a
    // checkout stays clean after it.
    let written: Vec<&str> = tour.iter().flat_map(|c| outputs(c)).collect();
    assert!(written.len() >= 5, "{written:?}");
    assert!(
        written.iter().all(|o| o.starts_with("runs/")),
        "a tour command writes outside runs/: {written:?}"
    );
    assert_eq!(
        shortened(
            ["cnn", "train", "--epochs", "20", "--out", "r"]
                .map(String::from)
                .to_vec()
        ),
        [
            "cnn",
            "train",
            "--out",
            "r",
            "--epochs",
            "1",
            "--train-subset",
            "2000"
        ]
    );
}

#[test]
#[cfg(unix)]
#[ignore = "release mode: cargo test --release -p trainer-cli --test readme_tour -- --ignored"]
fn every_command_of_the_readme_quick_tour_succeeds() {
    let Some(mnist) = common::mnist_or_skip() else {
        return;
    };
    let tour = set_up_and_commands(include_str!("../../../README.md"));

    // A fresh clone's folder, as the tour expects it: data/mnist (fetched) and a digit to classify.
    let dir = tempfile::tempdir().unwrap();
    let mnist = std::fs::canonicalize(mnist).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::os::unix::fs::symlink(&mnist, dir.path().join("data/mnist")).unwrap();
    write_digit(&mnist, &dir.path().join("my-digit.png"));

    for line in &tour {
        let words = shortened(line.split_whitespace().map(String::from).collect());
        assert_eq!(words[0], "cnn", "{line}: not a `cnn` command");
        if words[1] == "serve" {
            // It serves until Ctrl-C: it must answer, then stop cleanly.
            let args: Vec<&str> = words[2..].iter().map(String::as_str).collect();
            let mut served = common::serve(dir.path(), &args);
            for path in ["/", "/api/model", "/api/test/0"] {
                let (status, body) = common::get(&served.addr, path);
                assert_eq!(status, 200, "the README's `{line}`: GET {path}: {body}");
            }
            let status = common::interrupt(&mut served);
            assert!(
                status.success(),
                "the README's `{line}` ended with {status} after Ctrl-C"
            );
            println!("ok: {line} (served, then stopped by Ctrl-C)");
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_cnn"))
            .args(&words[1..])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "the README's `{line}` (run as `{}`) failed:\n{stderr}",
            words.join(" ")
        );
        println!("ok: {}", words.join(" "));
    }
    // The checkout holds what it held before, and runs/.
    let mut top: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(
        top,
        ["data", "my-digit.png", "runs"],
        "the tour wrote outside runs/"
    );
}

/// Chapter 1's list of the built-in configs names every one.
#[test]
fn chapter_one_lists_every_built_in_config() {
    let chapter = include_str!("../../../docs/01-quick-start.md");
    let list = chapter
        .split("`cnn configs` lists the built-in ones (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("chapter 1 no longer says which configs `cnn configs` lists");
    for (name, _) in trainer::config::BUILTIN {
        assert!(
            list.contains(&format!("`{name}`")),
            "`{name}` missing from: {list}"
        );
    }
}
