//! `cnn report` in a real browser: train a short run, write its report, load
//! it in headless Chromium and check that
//! * the page is self-contained (every `src` a `data:` URI, no links out);
//! * it loads with no console message (errors, exceptions) at all;
//! * every image decodes with a non-zero size (the page's own load script
//!   writes the verdict into `<body data-images-ok>`, read with `--dump-dom`);
//! * class names are the data set's (Fashion-MNIST's when installed);
//!
//! and saves a screenshot (printed path, in the target directory). A page
//! with a broken image and a console error is also loaded, to show that the
//! checks catch both.
//!
//! `cnn serve` too: a short MNIST run served, and its page made to draw
//! digits stroke by stroke (`?strokes=`) and to show test images (`?test=`);
//! the digit the page shows must be the one drawn (or the test image's
//! network answer beside its true label), every feature map must decode, and
//! the console stay silent. Its screenshot is `docs/serve.png`.
//!
//! Ignored by `cargo test` (it trains for a few seconds in release mode);
//! `.ci/run` installs Chromium and runs it with
//! `cargo test --release -p trainer-cli --test report_browser -- --ignored`.
//! Without a Chromium binary (`chromium`, `chromium-browser`, `google-chrome`,
//! or `$CHROMIUM`) it prints "skipping: ..." and passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

fn data_dir() -> Option<(PathBuf, bool)> {
    if let Ok(fashion) = common::find_data::fashion() {
        return Some((fashion, true));
    }
    common::mnist().map(|d| (d, false))
}

fn file_url(page: &Path) -> String {
    format!("file://{}", page.canonicalize().unwrap().display())
}

/// Runs headless Chromium on `url` with `extra` arguments; returns (stdout, stderr).
/// Killed after two minutes.
fn run_chromium(bin: &Path, profile: &Path, url: &str, extra: &[String]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(bin)
        .args(common::HEADLESS_CHROMIUM)
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: cannot start: {e}", bin.display()));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = std::fs::read_to_string(&out_path).unwrap_or_default();
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            assert!(status.success(), "chromium failed ({status}):\n{err}");
            return (out, err);
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish in 120 s:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Console messages Chromium logged (`...:CONSOLE:...] "message", source: ...`).
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// The value of `<body data-NAME="...">` in a DOM dump.
fn body_attr<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let body = &dom[dom.find("<body")?..];
    let body = &body[..body.find('>')?];
    let key = format!("data-{name}=\"");
    let rest = &body[body.find(&key)? + key.len()..];
    Some(&rest[..rest.find('"')?])
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{}: not a PNG: {e}", path.display()));
    let info = reader.info();
    (info.width, info.height)
}

#[test]
#[ignore = "release mode: cargo test --release -p trainer-cli --test report_browser -- --ignored"]
fn report_renders_in_headless_chromium() {
    let Some(bin) = common::chromium_or_skip() else {
        return;
    };
    let Some((data, fashion)) = data_dir() else {
        println!("skipping: neither Fashion-MNIST (/usr/share/datasets/fashion-mnist) nor MNIST ($MNIST_DIR, data/mnist) is here");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let page = dir.path().join("report.html");
    let (d, r, p) = (
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        page.to_str().unwrap(),
    );
    common::cnn_ok(&[
        "train",
        "--data",
        d,
        "--out",
        r,
        "--epochs",
        "2",
        "--train-subset",
        "10000",
    ]);
    let said = common::cnn_ok(&["report", "--run", r, "--out", p, "--data", d]);
    println!("{said}");
    let images: usize = said
        .split(" images)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no image count in {said:?}"));
    // 1 curves + 2 first-layer figures + up to 25 mistakes.
    assert!(images >= 3 + 10, "{said}");

    // Self-contained: nothing to fetch.
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("<link") && !html.contains("url("),
        "external resources"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "a link out"
    );
    for (i, _) in html.match_indices(" src=\"") {
        assert!(
            html[i + 6..].starts_with("data:"),
            "a src that is not a data: URI at byte {i}"
        );
    }
    assert_eq!(html.matches("<img ").count(), images);
    if fashion {
        for name in ["T-shirt/top", "Trouser", "Ankle boot"] {
            assert!(html.contains(name), "class name {name} missing");
        }
        // The post's MNIST table does not apply to Fashion-MNIST.
        assert!(!html.contains("<td>0.1224</td>"));
        assert!(html
            .contains("its figures are for MNIST, and this run&#39;s test set is fashion-mnist"));
    } else {
        assert!(html.contains("<td>0.1224</td>"));
    }

    let profile = tempfile::tempdir().unwrap();
    let (dom, stderr) = run_chromium(
        &bin,
        profile.path(),
        &file_url(&page),
        &["--dump-dom".into()],
    );
    assert!(
        console_lines(&stderr).is_empty(),
        "console messages while loading the report:\n{}",
        console_lines(&stderr).join("\n")
    );
    assert_eq!(
        body_attr(&dom, "images-ok"),
        Some("true"),
        "not every image decoded with a non-zero size"
    );
    assert_eq!(body_attr(&dom, "images"), Some(images.to_string().as_str()));

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let _ = std::fs::remove_file(&shot);
    let (_, stderr) = run_chromium(
        &bin,
        profile.path(),
        &file_url(&page),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400".into(),
        ],
    );
    assert!(console_lines(&stderr).is_empty(), "{stderr}");
    assert_eq!(png_size(&shot), (1200, 2400));
    println!("screenshot: {}", shot.display());

    // The checks catch a broken image and a console error.
    let bad = dir.path().join("bad.html");
    let good_png = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let script = html
        .split("<script>")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .unwrap();
    std::fs::write(
        &bad,
        format!(
            "<!DOCTYPE html><html><head><script>{script}</script></head><body data-images-ok=\"pending\">\
             <img src=\"{good_png}\"><img src=\"data:image/png;base64,AAAA\">\
             <script>console.error('boom')</script></body></html>"
        ),
    )
    .unwrap();
    let (dom, stderr) = run_chromium(
        &bin,
        profile.path(),
        &file_url(&bad),
        &["--dump-dom".into()],
    );
    assert_eq!(body_attr(&dom, "images-ok"), Some("false"), "{dom}");
    assert!(
        console_lines(&stderr).iter().any(|l| l.contains("boom")),
        "{stderr}"
    );
}

/// Digits drawn on the page's 280x280 pad, stroke by stroke (`x,y,x,y,...`).
const DRAWN: [(usize, &str); 4] = [
    (7, "60,60,220,60,120,240"),
    (1, "140,40,140,240"),
    (
        0,
        "140,40,90,70,70,140,90,220,140,245,190,220,210,140,190,70,140,40",
    ),
    (
        3,
        "70,50,140,40,200,60,210,100,150,140,210,180,200,230,140,250,70,230",
    ),
];

#[test]
#[ignore = "release mode: cargo test --release -p trainer-cli --test report_browser -- --ignored"]
fn serve_page_draws_digits_in_headless_chromium() {
    let Some(bin) = common::chromium_or_skip() else {
        return;
    };
    let Some(mnist) = common::mnist_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (d, r) = (mnist.to_str().unwrap(), run.to_str().unwrap());
    common::cnn_ok(&[
        "train",
        "--config",
        "improved",
        "--data",
        d,
        "--out",
        r,
        "--epochs",
        "1",
        "--train-subset",
        "10000",
    ]);
    let model = run.join("last.ckpt");
    let served = common::serve(
        dir.path(),
        &["--model", model.to_str().unwrap(), "--data", d],
    );
    let url = format!("http://{}/", served.addr);
    let profile = tempfile::tempdir().unwrap();
    let look = |query: &str| {
        // Chromium's virtual time can run out before the page's requests are
        // answered and its images decoded on a busy machine: the page then
        // still says "loading", and is loaded again (an error or a wrong
        // answer is never retried).
        let mut attempts = 0;
        let (dom, stderr) = loop {
            let (dom, stderr) = run_chromium(
                &bin,
                profile.path(),
                &format!("{url}?{query}"),
                &["--dump-dom".into()],
            );
            attempts += 1;
            if body_attr(&dom, "state") != Some("loading") || attempts == 5 {
                break (dom, stderr);
            }
            println!(
                "?{query}: the page was still loading when Chromium stopped; loading it again"
            );
        };
        assert!(
            console_lines(&stderr).is_empty(),
            "console messages on ?{query}:\n{}",
            console_lines(&stderr).join("\n")
        );
        assert_eq!(body_attr(&dom, "state"), Some("ready"), "?{query}");
        // 8 + 8 + 16 + 16 maps: both convolutions after their ReLU, both poolings.
        assert_eq!(body_attr(&dom, "maps"), Some("48"), "?{query}");
        assert_eq!(
            body_attr(&dom, "images-ok"),
            Some("true"),
            "?{query}: not every image decoded with a non-zero size"
        );
        let attr = |name: &str| body_attr(&dom, name).unwrap_or_default().to_string();
        (attr("predicted"), attr("truth"))
    };

    for (digit, strokes) in DRAWN {
        let (predicted, truth) = look(&format!("strokes={strokes}"));
        assert_eq!(predicted, digit.to_string(), "the drawn {digit}");
        assert_eq!(truth, "", "a drawing has no true label");
    }
    // The first test image (a 7, which a 95% network gets right), and the
    // first of the mistakes, which the page shows beside their true label.
    assert_eq!(look("test=0"), ("7".to_string(), "7".to_string()));
    let (status, about) = common::get(&served.addr, "/api/model");
    assert_eq!(status, 200);
    let about: serde_json::Value = serde_json::from_str(&about).unwrap();
    let first_mistake = about["mistakes"][0].as_u64().expect("some mistakes");
    let (predicted, truth) = look(&format!("test={first_mistake}"));
    assert_ne!(
        predicted, truth,
        "test image {first_mistake} is listed as a mistake"
    );

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve.png");
    let _ = std::fs::remove_file(&shot);
    let (_, stderr) = run_chromium(
        &bin,
        profile.path(),
        &format!("{url}?strokes={}", DRAWN[3].1),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1100,1200".into(),
        ],
    );
    assert!(console_lines(&stderr).is_empty(), "{stderr}");
    assert_eq!(png_size(&shot), (1100, 1200));
    println!("screenshot: {}", shot.display());
}
