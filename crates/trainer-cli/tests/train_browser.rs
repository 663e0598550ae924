//! `cnn serve`'s training page in headless Chromium, driven over the
//! DevTools protocol (tests/cdp): it opens `/train`, trains the seed network
//! in the page's Web Worker on a 5,000-image subset for one epoch (batches
//! of 10: with the seed's 100, 50 steps leave it near 40%), and checks that
//! * the test accuracy the page shows is at least 80%;
//! * the loss and accuracy curves, the filters and the feature maps are
//!   drawn (no canvas is one flat colour);
//! * the console stays silent (no message, exception or error entry);
//! * the weights downloaded with the page's button evaluate with
//!   `cnn eval --config seed` to the accuracy the page showed;
//! * a slanted stroke drawn on the pad mid-epoch gets ten probabilities;
//! * files chosen on the page that are not MNIST's four, or that carry
//!   MNIST's names over the wrong contents, get a message naming the file.
//!
//! A screenshot taken mid-training is saved in the target directory (path
//! printed). `CNN_TRAIN_QUERY` replaces the page's query (default
//! `limit=5000&batch=10&epochs=1`), e.g. `limit=60000&batch=100` for the
//! full epoch of docs/performance.md.
//!
//! Needs the WebAssembly module: `cargo xtask web` first (`.ci/run` does).
//! Ignored by `cargo test`; `.ci/run` runs it with
//! `cargo test --release -p trainer-cli --test train_browser -- --ignored`.
//! Without Chromium or MNIST it prints "skipping: ..." and passes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod cdp;
mod common;

/// Where `cargo xtask web` puts the module.
fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/web")
}

/// Whether every canvas named is drawn: not one flat colour.
const CANVASES_DRAWN: &str = r#"["loss-curve", "acc-curve", "filters", "maps"].filter((id) => {
  const c = document.getElementById(id);
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  for (let i = 4; i < d.length; i += 4) {
    if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) return false;
  }
  return true;
})"#;

#[test]
#[ignore = "trains in headless Chromium; needs `cargo xtask web` first (.ci/run runs it)"]
fn train_page_learns_in_headless_chromium() {
    let Some(bin) = common::chromium_or_skip() else {
        return;
    };
    let Some(mnist) = common::mnist_or_skip() else {
        return;
    };
    let web = web_dir();
    assert!(
        web.join("trainer_web.wasm").is_file(),
        "{}: no trainer_web.wasm; run `cargo xtask web` first",
        web.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let d = mnist.to_str().unwrap();
    // `cnn serve` needs a model for its drawing page: a tiny one will do.
    let run = dir.path().join("run");
    let r = run.to_str().unwrap();
    common::cnn_ok(&[
        "-q",
        "train",
        "--config",
        "seed",
        "--data",
        d,
        "--out",
        r,
        "--epochs",
        "1",
        "--train-subset",
        "500",
    ]);
    let model = run.join("last.ckpt");
    let served = common::serve(
        dir.path(),
        &[
            "--model",
            model.to_str().unwrap(),
            "--data",
            d,
            "--web",
            web.to_str().unwrap(),
        ],
    );
    let query =
        std::env::var("CNN_TRAIN_QUERY").unwrap_or_else(|_| "limit=5000&batch=10&epochs=1".into());
    let url = format!("http://{}/train?{query}&start=1", served.addr);

    let downloads = dir.path().join("downloads");
    let profile = dir.path().join("profile");
    let mut browser = cdp::Browser::launch(&bin, &profile);
    browser.browser(
        "Browser.setDownloadBehavior",
        serde_json::json!({"behavior": "allow", "downloadPath": downloads.to_str().unwrap()}),
    );
    browser.open(&url);
    let (state, shot) = train_until_done(&mut browser);
    let error = browser.eval("document.getElementById('error').textContent");
    assert_eq!(
        state,
        "done",
        "the page stopped: {error}; console: {:#?}",
        browser.console()
    );
    let shot_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train-in-browser.png");
    std::fs::write(&shot_path, shot.expect("a screenshot mid-training")).unwrap();
    println!("screenshot mid-training: {}", shot_path.display());

    let shown = browser.eval("document.body.dataset.testAccuracy");
    let shown: f64 = shown.as_str().expect("a test accuracy").parse().unwrap();
    let numbers = browser.eval("document.getElementById('numbers').innerText");
    println!("the page:\n{}", numbers.as_str().unwrap_or_default());
    assert!(shown >= 0.80, "test accuracy shown {shown}");
    let blank = browser.eval(CANVASES_DRAWN);
    assert_eq!(blank, serde_json::json!([]), "canvases left blank");
    // The pad was read by the network as it was then: ten probabilities.
    let bars = browser.eval("document.getElementById('bars').children.length");
    let guess = browser.eval("document.getElementById('guess').textContent");
    println!("the drawn 1 is read as {guess}");
    assert_eq!(
        bars,
        serde_json::json!(30),
        "the pad's probabilities (guess {guess})"
    );

    browser.eval("document.getElementById('download').click()");
    let file = downloads.join("seed-browser.safetensors");
    let start = Instant::now();
    while !file.is_file() && start.elapsed() < Duration::from_secs(30) {
        browser.wait(Duration::from_millis(200));
    }
    browser.wait(Duration::from_millis(500));
    assert!(file.is_file(), "no download in {}", downloads.display());
    let console = browser.console();
    assert!(console.is_empty(), "console: {console:#?}");

    let eval = common::cnn_ok(&[
        "-q",
        "eval",
        "--config",
        "seed",
        "--model",
        file.to_str().unwrap(),
        "--data",
        d,
    ]);
    let percent = format!("accuracy {:.2}%", 100.0 * shown);
    assert!(
        eval.contains(&percent),
        "the page showed {percent}; cnn eval:\n{eval}"
    );

    bad_files_are_named_on_the_page(&mut browser, &mnist, dir.path(), &file);
}

/// Files chosen instead of the server's: a file that is not one of MNIST's
/// four, and MNIST's names over the wrong contents, each get a message
/// naming the file.
fn bad_files_are_named_on_the_page(
    browser: &mut cdp::Browser,
    mnist: &Path,
    tmp: &Path,
    other: &Path,
) {
    let error = |b: &mut cdp::Browser| b.eval("document.getElementById('error').textContent");
    browser.choose_files("files", &[other]);
    browser.wait(Duration::from_millis(500));
    let e = error(browser);
    assert!(
        e.as_str()
            .unwrap()
            .contains("seed-browser.safetensors: not one of MNIST's files"),
        "{e}"
    );

    // The test labels under the training images' name.
    let bad = tmp.join("bad");
    std::fs::create_dir(&bad).unwrap();
    let names = mnist_io::MNIST.files.map(|f| f.name);
    let mut chosen = Vec::new();
    for name in names {
        let from =
            mnist_io::find_file(mnist, if name == names[0] { names[3] } else { name }).unwrap();
        let gz = if from.extension().is_some_and(|e| e == "gz") {
            ".gz"
        } else {
            ""
        };
        let to = bad.join(format!("{name}{gz}"));
        std::fs::copy(&from, &to).unwrap();
        chosen.push(to);
    }
    browser.choose_files(
        "files",
        &chosen.iter().map(|p| p.as_path()).collect::<Vec<_>>(),
    );
    // The page reads the files (11 MB) before it says it has them.
    let start = Instant::now();
    let mut picked = serde_json::json!("");
    while !picked.as_str().unwrap_or_default().contains("Your files")
        && start.elapsed() < Duration::from_secs(30)
    {
        browser.wait(Duration::from_millis(300));
        picked = browser.eval("document.getElementById('dropped').textContent");
    }
    assert!(
        picked.as_str().unwrap().contains("Your files"),
        "{picked}: {}",
        error(browser)
    );
    browser.eval("document.getElementById('start').click()");
    let start = Instant::now();
    while browser.eval("document.body.dataset.state") != "error"
        && start.elapsed() < Duration::from_secs(60)
    {
        browser.wait(Duration::from_millis(300));
    }
    let e = error(browser);
    assert!(
        e.as_str().unwrap().contains("train-images-idx3-ubyte"),
        "{e}"
    );
    println!("the page on MNIST's names over the wrong contents: {e}");
}

/// Draws a slanted stroke, a 1, on the page's pad with the mouse.
fn draw_a_one(browser: &mut cdp::Browser) {
    let rect = browser.eval(
        "(() => { const r = document.getElementById('pad').getBoundingClientRect(); return [r.x, r.y, r.width]; })()",
    );
    let [x, y, w] = [0, 1, 2].map(|i| rect[i].as_f64().expect("the pad's place"));
    let points: Vec<(f64, f64)> = (0..=20)
        .map(|i| {
            let t = i as f64 / 20.0;
            (x + w * (0.55 - 0.1 * t), y + w * (0.15 + 0.7 * t))
        })
        .collect();
    browser.stroke(&points);
}

/// Polls the page until it is done (or failed, or 10 minutes have
/// passed); returns its last state and a screenshot taken mid-epoch.
fn train_until_done(browser: &mut cdp::Browser) -> (String, Option<Vec<u8>>) {
    let start = Instant::now();
    let (mut shot, mut drawn) = (None, false);
    loop {
        browser.wait(Duration::from_millis(500));
        let state = browser.eval("document.body.dataset.state");
        let state = state.as_str().unwrap_or_default().to_string();
        if state == "done" || state == "error" || start.elapsed() > Duration::from_secs(600) {
            return (state, shot);
        }
        let at = browser.eval("document.getElementById('batch-at').textContent");
        let (done, of) = at
            .as_str()
            .and_then(|t| t.split_once(" / "))
            .map_or((0, 1), |(a, b)| {
                (a.parse().unwrap_or(0), b.parse().unwrap_or(1))
            });
        if !drawn && 3 * done >= of {
            draw_a_one(browser);
            drawn = true;
        }
        if shot.is_none() && 2 * done >= of {
            shot = Some(browser.screenshot());
        }
    }
}
