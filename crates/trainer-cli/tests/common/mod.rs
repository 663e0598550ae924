//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

#[path = "../../../mnist-io/tests/common/find_data.rs"]
pub mod find_data;

/// Headless Chromium: `$CHROMIUM`, else `chromium`, `chromium-browser` or
/// `google-chrome` on the PATH.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser", "google-chrome"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

/// [`chromium`], or `None` after saying that the test skips and how to install it.
pub fn chromium_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        println!(
            "skipping: no chromium binary on PATH (apt-get install chromium, or set CHROMIUM)"
        );
    }
    found
}

/// The flags every browser test starts Chromium with: headless, and nothing
/// that reaches for the network (which a build machine does not have).
pub const HEADLESS_CHROMIUM: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
];

/// Real MNIST, found as every test of the workspace finds it
/// ([`find_data::mnist`]: `$MNIST_DIR`, else `data/mnist`, plain or gzipped).
pub fn mnist() -> Option<PathBuf> {
    find_data::mnist(&find_data::workspace_root(Path::new(env!(
        "CARGO_MANIFEST_DIR"
    ))))
    .ok()
}

/// [`mnist`], printing why the calling test is skipped when there is none.
/// (A test that needs MNIST is also marked
/// `#[cfg_attr(not(has_mnist), ignore = ...)]`, so that `cargo test` counts it
/// as ignored; this covers a run with `--ignored`.)
pub fn mnist_or_skip() -> Option<PathBuf> {
    let found = find_data::mnist(&find_data::workspace_root(Path::new(env!(
        "CARGO_MANIFEST_DIR"
    ))));
    if let Err(why) = &found {
        println!("skipping: {why}");
    }
    found.ok()
}

/// Writes a made-up data set in MNIST's format into `dir` (created): `train`
/// and `test` images in which class `c` is a noisy bright bar at a
/// class-dependent place, so that a network learns a little. Fast tests that
/// need no real MNIST train on it.
pub fn made_up_mnist(dir: &Path, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    write_idx(dir, "train", train, 1);
    write_idx(dir, "t10k", test, 2);
}

/// Writes IDX files of `n` 28x28 images: class `c` is a noisy bright bar at a
/// class-dependent place.
fn write_idx(dir: &Path, prefix: &str, n: usize, seed: u32) {
    let mut images = vec![0, 0, 8, 3];
    images.extend((n as u32).to_be_bytes());
    images.extend(28u32.to_be_bytes());
    images.extend(28u32.to_be_bytes());
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((n as u32).to_be_bytes());
    let mut state = seed.wrapping_mul(2654435761).max(1);
    for i in 0..n {
        let c = i % 10;
        labels.push(c as u8);
        for y in 0..28 {
            for x in 0..28 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let bar = (2 + 2 * c..4 + 2 * c).contains(&x) && (4..24).contains(&y);
                let noise = (state % 64) as u8;
                images.push(if bar { 191 + noise } else { noise });
            }
        }
    }
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
}

/// Runs the `cnn` binary with `args`; returns success, stdout and stderr.
pub fn cnn(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(args)
        .output()
        .expect("cnn runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`cnn`], asserting that it succeeds; returns its stdout.
pub fn cnn_ok(args: &[&str]) -> String {
    let (ok, out, err) = cnn(args);
    assert!(ok, "cnn {args:?} failed:\n{out}{err}");
    out
}

/// A running `cnn serve`, killed when dropped.
pub struct Served {
    pub child: std::process::Child,
    /// `127.0.0.1:PORT`, as the server printed it.
    pub addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cnn -q serve ARGS --addr 127.0.0.1:0` (any free port) in `dir`
/// and waits for the line that gives its address.
pub fn serve(dir: &Path, args: &[&str]) -> Served {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(["-q", "serve"])
        .args(args)
        .args(["--addr", "127.0.0.1:0"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cnn serve starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in cnn serve's first line: {first:?}"))
        .to_string();
    // Keep reading its output, so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Served { child, addr }
}

/// Sends `request` (raw HTTP) to `addr`; returns the status and the body.
/// A connection the server reset before the answer gives status 0.
pub fn http(addr: &str, request: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting to cnn serve");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let _ = stream.write_all(request);
    // Nothing more comes: a request cut short is answered at once, not after a timeout.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `GET path`.
pub fn get(addr: &str, path: &str) -> (u16, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

/// `POST path` with `body`.
pub fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    http(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// Sends SIGINT (Ctrl-C) to a running `cnn serve` and waits for it to end.
#[cfg(unix)]
pub fn interrupt(served: &mut Served) -> std::process::ExitStatus {
    let pid = served.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -INT {pid} failed");
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "cnn serve did not stop within 60 s of Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
