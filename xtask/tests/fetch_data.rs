//! End to end: `cargo xtask fetch-data` run as the built binary.
//!
//! Real MNIST is found as every test finds it (`$MNIST_DIR`, else
//! `data/mnist`, plain or gzipped); tests that need it show as ignored without it. Mirrors
//! are either the real ones (this machine may have no network) or a small
//! HTTP server on 127.0.0.1 run by the test itself.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

#[path = "../../crates/mnist-io/tests/common/find_data.rs"]
mod find_data;

/// Real MNIST, found as every test finds it (`$MNIST_DIR`, else
/// `data/mnist`), as a folder of the four `.gz` files a mirror serves: the
/// folder itself when it holds them gzipped, else a gzipped copy of its plain
/// files made once in the tests' scratch folder.
fn mnist_gz() -> Result<PathBuf, String> {
    static GZ: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    GZ.get_or_init(|| {
        let dir = find_data::mnist(&find_data::workspace_root(Path::new(env!(
            "CARGO_MANIFEST_DIR"
        ))))?;
        if FILES.iter().all(|f| dir.join(format!("{f}.gz")).is_file()) {
            return Ok(dir);
        }
        let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mnist-gz");
        std::fs::create_dir_all(&copy).unwrap();
        for f in FILES {
            let dest = copy.join(format!("{f}.gz"));
            let plain = find_data::file(&dir, f).unwrap();
            let bytes = mnist_io::read_maybe_gz(&plain).unwrap();
            let tmp = copy.join(format!(".{f}.gz.partial"));
            std::fs::write(&tmp, gzip(&bytes)).unwrap();
            std::fs::rename(&tmp, &dest).unwrap();
        }
        Ok(copy)
    })
    .clone()
}

macro_rules! mnist_or_skip {
    () => {
        match mnist_gz() {
            Ok(d) => d,
            Err(reason) => {
                println!("skipping: {reason}");
                return;
            }
        }
    };
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `xtask fetch-data <args>`, killing it after `limit`.
fn fetch_data(args: &[&str], limit: Duration) -> Run {
    let logs = tempfile::tempdir().unwrap();
    let out_path = logs.path().join("stdout");
    let err_path = logs.path().join("stderr");
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("fetch-data")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "fetch-data {args:?} still running after {limit:?}; stderr so far:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run {
        ok: status.success(),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
        elapsed: start.elapsed(),
    };
    println!(
        "--- fetch-data {args:?}: {status} in {:?}\n{}{}",
        run.elapsed, run.stdout, run.stderr
    );
    run
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// File names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A copy of the MNIST folder in which `train-labels-idx1-ubyte.gz` has one
/// label changed (still a valid gzip and IDX file, but not MNIST's content).
/// Returns the folder and the SHA-256 of the altered content.
fn corrupted_copy(mnist: &Path) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    for f in FILES {
        std::fs::copy(
            mnist.join(format!("{f}.gz")),
            dir.path().join(format!("{f}.gz")),
        )
        .unwrap();
    }
    let path = dir.path().join("train-labels-idx1-ubyte.gz");
    let mut labels = mnist_io::read_maybe_gz(&path).unwrap();
    labels[100] = (labels[100] + 1) % 10;
    std::fs::write(&path, gzip(&labels)).unwrap();
    (dir, mnist_io::sha256_hex(&labels))
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn from_local_folder_then_nothing_to_do() {
    let mnist = mnist_or_skip!();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("mnist");

    let r = fetch_data(
        &["--from", s(&mnist), "--out", s(&dest)],
        Duration::from_secs(60),
    );
    assert!(r.ok, "{}", r.stderr);
    let want: Vec<String> = {
        let mut v: Vec<String> = FILES.iter().map(|f| format!("{f}.gz")).collect();
        v.sort();
        v
    };
    assert_eq!(
        listing(&dest),
        want,
        "the four files, gzipped, nothing else"
    );
    for spec in &mnist_io::MNIST.files {
        mnist_io::verify_file(dest.join(format!("{}.gz", spec.name)), spec).unwrap();
    }
    // Stored as fetched: byte-identical to the source .gz files.
    for f in FILES {
        let name = format!("{f}.gz");
        assert_eq!(
            std::fs::read(dest.join(&name)).unwrap(),
            std::fs::read(mnist.join(&name)).unwrap()
        );
    }
    let train = mnist_io::Dataset::load(&dest, mnist_io::Split::Train).unwrap();
    assert_eq!(train.len(), 60_000);

    let modified = std::fs::metadata(dest.join("train-images-idx3-ubyte.gz"))
        .unwrap()
        .modified()
        .unwrap();
    let again = fetch_data(
        &["--from", s(&mnist), "--out", s(&dest)],
        Duration::from_secs(60),
    );
    assert!(again.ok, "{}", again.stderr);
    assert!(
        again.stdout.contains("nothing to do"),
        "second run should say so: {}",
        again.stdout
    );
    assert_eq!(listing(&dest), want);
    let modified_again = std::fs::metadata(dest.join("train-images-idx3-ubyte.gz"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(modified, modified_again, "a second run rewrote a file");

    // Without --from and with no mirror reachable, a complete folder still needs nothing.
    let offline = fetch_data(
        &["--out", s(&dest), "--mirror", "http://127.0.0.1:9/"],
        Duration::from_secs(20),
    );
    assert!(offline.ok && offline.stdout.contains("nothing to do"));
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn corrupted_copy_is_refused_and_leaves_nothing() {
    let mnist = mnist_or_skip!();
    let (bad, actual) = corrupted_copy(&mnist);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("mnist");

    let r = fetch_data(
        &["--from", s(bad.path()), "--out", s(&dest)],
        Duration::from_secs(60),
    );
    assert!(!r.ok, "a corrupted file was accepted");
    let expected = mnist_io::MNIST.files[1].sha256;
    assert!(
        r.stderr.contains("train-labels-idx1-ubyte"),
        "error must name the file: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(expected),
        "expected hash missing: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&actual),
        "actual hash missing: {}",
        r.stderr
    );
    // Nothing under the final name, no partial file; the good files are in place.
    let files = listing(&dest);
    assert!(
        !files.iter().any(|f| f.starts_with("train-labels")),
        "{files:?}"
    );
    assert!(!files.iter().any(|f| f.contains("partial")), "{files:?}");
    assert_eq!(files.len(), 3, "{files:?}");
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn corrupt_gzip_stream_is_refused_and_leaves_nothing() {
    let mnist = mnist_or_skip!();
    let bad = tempfile::tempdir().unwrap();
    for f in FILES {
        let name = format!("{f}.gz");
        let mut bytes = std::fs::read(mnist.join(&name)).unwrap();
        if f == "t10k-images-idx3-ubyte" {
            // Flip bytes in the middle of the deflate stream.
            let mid = bytes.len() / 2;
            for b in &mut bytes[mid..mid + 16] {
                *b ^= 0x5a;
            }
        }
        std::fs::write(bad.path().join(name), bytes).unwrap();
    }
    let dest = tempfile::tempdir().unwrap();
    let r = fetch_data(
        &["--from", s(bad.path()), "--out", s(dest.path())],
        Duration::from_secs(60),
    );
    assert!(!r.ok);
    assert!(r.stderr.contains("t10k-images-idx3-ubyte"), "{}", r.stderr);
    let files = listing(dest.path());
    assert!(
        !files.iter().any(|f| f.starts_with("t10k-images")),
        "{files:?}"
    );
    assert!(!files.iter().any(|f| f.contains("partial")), "{files:?}");
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn invalid_file_already_in_place_is_replaced() {
    let mnist = mnist_or_skip!();
    let dest = tempfile::tempdir().unwrap();
    // A stale plain file that would shadow the .gz for readers preferring plain names,
    // and a leftover partial file of an interrupted run.
    std::fs::write(dest.path().join("t10k-labels-idx1-ubyte"), b"stale").unwrap();
    std::fs::write(dest.path().join(".t10k-images-idx3-ubyte.partial"), b"half").unwrap();
    let r = fetch_data(
        &["--from", s(&mnist), "--out", s(dest.path())],
        Duration::from_secs(60),
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(listing(dest.path()).len(), 4, "{:?}", listing(dest.path()));
    let test = mnist_io::Dataset::load(dest.path(), mnist_io::Split::Test).unwrap();
    assert_eq!(test.spec(), Some(&mnist_io::MNIST));
}

#[test]
fn without_from_fails_fast_and_points_to_from() {
    let dest = tempfile::tempdir().unwrap();
    let r = fetch_data(&["--out", s(dest.path())], Duration::from_secs(60));
    if r.ok {
        // This machine has network after all: then the files must be right.
        println!("network available: files were downloaded");
        for spec in &mnist_io::MNIST.files {
            mnist_io::verify_file(dest.path().join(format!("{}.gz", spec.name)), spec).unwrap();
        }
        return;
    }
    assert!(
        r.elapsed < Duration::from_secs(20),
        "took {:?} to give up",
        r.elapsed
    );
    assert!(r.stderr.contains("--from"), "{}", r.stderr);
    assert!(
        listing(dest.path()).is_empty(),
        "{:?}",
        listing(dest.path())
    );
}

#[test]
fn unreachable_mirror_fails_fast_and_points_to_from() {
    // Nothing listens on the discard port of the loopback address.
    let dest = tempfile::tempdir().unwrap();
    let r = fetch_data(
        &[
            "--dataset",
            "fashion-mnist",
            "--out",
            s(dest.path()),
            "--mirror",
            "http://127.0.0.1:9/",
        ],
        Duration::from_secs(30),
    );
    assert!(!r.ok);
    assert!(r.elapsed < Duration::from_secs(20), "{:?}", r.elapsed);
    assert!(
        r.stderr
            .contains("--dataset fashion-mnist --from /usr/share/datasets/fashion-mnist"),
        "{}",
        r.stderr
    );
    assert!(listing(dest.path()).is_empty());
}

#[test]
fn unknown_dataset_is_an_error() {
    let r = fetch_data(&["--dataset", "cifar10"], Duration::from_secs(20));
    assert!(!r.ok);
    assert!(r.stderr.contains("unknown data set"), "{}", r.stderr);
}

/// What the test server answers for one path.
#[derive(Clone)]
enum Reply {
    Ok(Vec<u8>),
    /// Declares the full length, sends only the first `n` bytes, closes.
    Truncated(Vec<u8>, usize),
}

/// An HTTP/1.1 server on 127.0.0.1 answering at most `max_requests` requests
/// (404 for unknown paths), then stopping. Returns its base URL.
fn serve(replies: HashMap<String, Reply>, max_requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let _ = match replies.get(&path) {
                Some(Reply::Ok(body)) => stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|_| stream.write_all(body)),
                Some(Reply::Truncated(body, n)) => stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|_| stream.write_all(&body[..*n])),
                None => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    base
}

/// The four MNIST files as a mirror serves them, under `/<prefix>/<name>.gz`.
fn mirror_files(dir: &Path, prefix: &str) -> HashMap<String, Reply> {
    FILES
        .iter()
        .map(|f| {
            let name = format!("{f}.gz");
            (
                format!("/{prefix}/{name}"),
                Reply::Ok(std::fs::read(dir.join(&name)).unwrap()),
            )
        })
        .collect()
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn downloads_from_mirrors_skipping_bad_ones() {
    let mnist = mnist_or_skip!();
    let (bad, actual) = corrupted_copy(&mnist);
    // Mirror "a" lacks everything (404), "b" serves a corrupted label file and
    // truncates the test images, "c" is good.
    let mut replies = mirror_files(&mnist, "c");
    for (k, v) in mirror_files(bad.path(), "b") {
        replies.insert(k, v);
    }
    let t10k = std::fs::read(mnist.join("t10k-images-idx3-ubyte.gz")).unwrap();
    replies.insert(
        "/b/t10k-images-idx3-ubyte.gz".into(),
        Reply::Truncated(t10k.clone(), t10k.len() / 3),
    );
    let base = serve(replies, 64);
    let dest = tempfile::tempdir().unwrap();
    let (a, b, c) = (format!("{base}a/"), format!("{base}b/"), format!("{base}c"));
    let r = fetch_data(
        &[
            "--out",
            s(dest.path()),
            "--mirror",
            &a,
            "--mirror",
            &b,
            "--mirror",
            &c,
            "--attempts",
            "2",
        ],
        Duration::from_secs(120),
    );
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stderr.contains("HTTP status 404"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&actual) && r.stderr.contains(mnist_io::MNIST.files[1].sha256),
        "the refused label file should be reported with both hashes: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("attempt 2 of 2"),
        "truncation retried: {}",
        r.stderr
    );
    let files = listing(dest.path());
    assert_eq!(files.len(), 4, "{files:?}");
    for spec in &mnist_io::MNIST.files {
        mnist_io::verify_file(dest.path().join(format!("{}.gz", spec.name)), spec).unwrap();
    }
}

#[test]
#[cfg_attr(not(has_mnist), ignore = "no MNIST in $MNIST_DIR or data/mnist")]
fn interrupted_download_leaves_nothing() {
    let mnist = mnist_or_skip!();
    let train = std::fs::read(mnist.join("train-images-idx3-ubyte.gz")).unwrap();
    let mut replies = HashMap::new();
    replies.insert(
        "/m/train-images-idx3-ubyte.gz".to_string(),
        Reply::Truncated(train, 1000),
    );
    let base = serve(replies, 8);
    let dest = tempfile::tempdir().unwrap();
    let mirror = format!("{base}m/");
    let r = fetch_data(
        &["--out", s(dest.path()), "--mirror", &mirror],
        Duration::from_secs(60),
    );
    assert!(!r.ok);
    assert!(r.stderr.contains("train-images-idx3-ubyte"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("Without network access"),
        "the mirror answered: no --from hint expected: {}",
        r.stderr
    );
    assert!(
        listing(dest.path()).is_empty(),
        "{:?}",
        listing(dest.path())
    );
}
