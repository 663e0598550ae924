//! `cnn serve` under load and abuse: 200 requests at once, then malformed
//! ones (a body over the limit, or announced over it; a wrong number of
//! pixels; non-numbers; NaN; a huge header; ...). Each malformed request is
//! refused with the right 4xx, the server goes on answering, its memory stays
//! bounded, and Ctrl-C stops it cleanly. A made-up data set and an untrained
//! seed network: what is checked here does not depend on the weights.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{get, http, post};

/// The resident memory of a process, in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// `cnn serve` of an untrained seed network, with a made-up test set of 30
/// images, in `dir`.
fn serve_untrained(dir: &std::path::Path) -> common::Served {
    let data = dir.join("data");
    common::made_up_mnist(&data, 20, 30);
    let config = trainer::config::TrainConfig::load("seed").unwrap();
    let net = config.build_network().unwrap();
    let model = dir.join("untrained.ckpt");
    trainer::safetensors_io::fresh_checkpoint(&config, None, &net)
        .save(&model)
        .unwrap();
    common::serve(
        dir,
        &[
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
    )
}

/// A `side` x `side` drawing: a bright square in the middle.
fn drawing(side: usize) -> String {
    let pixels: Vec<&str> = (0..side * side)
        .map(|i| {
            let (x, y) = (i % side, i / side);
            let inside =
                (side / 4..3 * side / 4).contains(&x) && (side / 4..3 * side / 4).contains(&y);
            if inside {
                "255"
            } else {
                "0"
            }
        })
        .collect();
    format!(
        "{{\"width\":{side},\"height\":{side},\"pixels\":[{}]}}",
        pixels.join(",")
    )
}

#[test]
#[cfg(target_os = "linux")]
fn concurrent_and_malformed_requests_leave_the_server_answering_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve_untrained(dir.path());
    let addr = served.addr.clone();
    let pid = served.child.id();

    // The page, its parts and the model.
    for path in ["/", "/serve.css", "/serve.js"] {
        assert_eq!(get(&addr, path).0, 200, "{path}");
    }
    let (status, model_json) = get(&addr, "/api/model");
    assert_eq!(status, 200);
    let model_json: serde_json::Value = serde_json::from_str(&model_json).unwrap();
    assert_eq!(model_json["test_images"], 30);
    assert_eq!(model_json["classes"].as_array().unwrap().len(), 10);

    // A look inside: ten probabilities, the input, 8 + 8 + 16 + 16 maps.
    let body = drawing(280);
    let (status, answer) = post(&addr, "/api/predict", &body);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let p: Vec<f64> = serde_json::from_value(answer["probabilities"].clone()).unwrap();
    assert_eq!(p.len(), 10);
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{p:?}");
    let maps: Vec<usize> = answer["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["maps"].as_array().unwrap().len())
        .collect();
    assert_eq!(maps, [8, 8, 16, 16]);
    assert!(answer["input"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
    let (status, test) = get(&addr, "/api/test/7");
    assert_eq!(status, 200, "{test}");
    let test: serde_json::Value = serde_json::from_str(&test).unwrap();
    assert_eq!(
        (test["index"].as_u64(), test["truth"].as_u64()),
        (Some(7), Some(7))
    );

    // 200 requests at once, twice; memory is read after the first round, by
    // when every buffer the server keeps has been made.
    let round = |addr: &str| {
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..200)
                .map(|i| {
                    let body = &body;
                    s.spawn(move || {
                        if i % 2 == 0 {
                            post(addr, "/api/predict", body).0
                        } else {
                            get(addr, &format!("/api/test/{}", i % 30)).0
                        }
                    })
                })
                .collect();
            for t in threads {
                assert_eq!(t.join().unwrap(), 200);
            }
        })
    };
    round(&addr);
    let before = rss_kib(pid);

    let pixels = |list: &str| format!("{{\"width\":2,\"height\":2,\"pixels\":[{list}]}}");
    let big = format!(
        "{{\"width\":1,\"height\":1,\"pixels\":[{}0]}}",
        " ".repeat(3 << 20)
    );
    let malformed: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a body over the limit",
            req("POST", "/api/predict", &big),
            413,
            "at most",
        ),
        (
            "a body announced over the limit",
            b"POST /api/predict HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n{".to_vec(),
            413,
            "at most",
        ),
        (
            "a Content-Length that is not a number",
            b"POST /api/predict HTTP/1.1\r\nContent-Length: NaN\r\n\r\n{}".to_vec(),
            400,
            HYPER,
        ),
        (
            "conflicting Content-Lengths",
            b"POST /api/predict HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}}".to_vec(),
            400,
            HYPER,
        ),
        (
            "a Content-Length list that disagrees",
            b"POST /api/predict HTTP/1.1\r\nContent-Length: 2, 3\r\n\r\n{}}".to_vec(),
            400,
            HYPER,
        ),
        (
            "a negative Content-Length",
            b"POST /api/predict HTTP/1.1\r\nContent-Length: -2\r\n\r\n{}".to_vec(),
            400,
            HYPER,
        ),
        (
            "Content-Length and chunked together",
            b"POST /api/predict HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n".to_vec(),
            411,
            "Content-Length",
        ),
        (
            "a body shorter than announced",
            b"POST /api/predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{}".to_vec(),
            400,
            "ended after 2 of the 100 bytes",
        ),
        (
            "no Content-Length",
            b"POST /api/predict HTTP/1.1\r\n\r\n".to_vec(),
            411,
            "Content-Length",
        ),
        (
            "too few pixels",
            req("POST", "/api/predict", &pixels("1,2,3")),
            400,
            "pixels has 3 values",
        ),
        (
            "too many pixels",
            req("POST", "/api/predict", &pixels("1,2,3,4,5")),
            400,
            "pixels has 5 values",
        ),
        (
            "non-numeric pixels",
            req("POST", "/api/predict", &pixels("1,2,\"x\",4")),
            400,
            "not a drawing",
        ),
        (
            "a NaN pixel",
            req("POST", "/api/predict", &pixels("1,NaN,3,4")),
            400,
            "not a drawing",
        ),
        (
            "a pixel over 255",
            req("POST", "/api/predict", &pixels("1,2,3,256")),
            400,
            "not a drawing",
        ),
        (
            "a drawing too large",
            req(
                "POST",
                "/api/predict",
                "{\"width\":100000,\"height\":1,\"pixels\":[]}",
            ),
            400,
            "width is 100000",
        ),
        (
            "not JSON",
            req("POST", "/api/predict", "width=2"),
            400,
            "not a drawing",
        ),
        (
            "a header over the limit",
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(40_000)).into_bytes(),
            431,
            HYPER,
        ),
        (
            "too many header fields",
            format!("GET / HTTP/1.1\r\n{}\r\n", "X: 1\r\n".repeat(40)).into_bytes(),
            431,
            HYPER,
        ),
        (
            "not HTTP",
            b"\x00\x01\x02 garbage\r\n\r\n".to_vec(),
            400,
            HYPER,
        ),
        (
            "a test image out of range",
            req("GET", "/api/test/30", ""),
            404,
            "0 to 29",
        ),
        (
            "a test image that is no number",
            req("GET", "/api/test/-1", ""),
            404,
            "no test image",
        ),
        (
            "a wrong method",
            req("DELETE", "/api/predict", ""),
            405,
            "not allowed",
        ),
        (
            "an unknown path",
            req("GET", "/etc/passwd", ""),
            404,
            "nothing at",
        ),
    ];
    for (what, request, status, says) in &malformed {
        let (got, body) = http(&addr, request);
        assert_eq!(got, *status, "{what}: {body}");
        assert!(body.contains(says), "{what}: no `{says}` in {body:?}");
    }
    round(&addr);
    let after = rss_kib(pid);
    println!("server memory: {before} KiB after the first 200 requests, {after} KiB after the malformed ones and 200 more");
    assert!(
        after < before + 64 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
    assert_eq!(get(&addr, "/api/model").0, 200);

    // Ctrl-C stops it, with a success status.
    let status = common::interrupt(&mut served);
    assert!(
        status.success(),
        "cnn serve ended with {status} after Ctrl-C"
    );
}

/// What a reply that hyper makes itself says: it refuses a malformed header
/// before any route, the status saying what was wrong, with an empty body.
const HYPER: &str = "";

/// A request with `body` and its Content-Length.
fn req(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Clients that hold connections open: `idle` ones that send nothing, and
/// `trickling` ones that send a request header one byte every 200 ms (and a
/// few that stop halfway through a body), until dropped.
struct Held {
    idle: Vec<TcpStream>,
    stop: Arc<AtomicBool>,
    tricklers: Vec<std::thread::JoinHandle<()>>,
}

impl Held {
    fn open(addr: &str, idle: usize, trickling: usize) -> Held {
        let mut streams: Vec<TcpStream> = (0..idle)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        for _ in 0..4 {
            let mut stalled = TcpStream::connect(addr).unwrap();
            let head =
                "POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"width\"";
            stalled.write_all(head.as_bytes()).unwrap();
            streams.push(stalled);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let tricklers = (0..trickling)
            .map(|_| {
                let (addr, stop) = (addr.to_string(), stop.clone());
                std::thread::spawn(move || {
                    let mut stream = TcpStream::connect(addr).unwrap();
                    let header = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter();
                    for byte in header.chain(std::iter::repeat(&b'a')) {
                        if stop.load(Ordering::SeqCst) || stream.write_all(&[*byte]).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                })
            })
            .collect();
        Held {
            idle: streams,
            stop,
            tricklers,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tricklers.drain(..) {
            let _ = t.join();
        }
    }
}

/// How long `GET path` takes to be answered (200).
fn timed_get(addr: &str, path: &str) -> Duration {
    let start = Instant::now();
    let (status, body) = get(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    start.elapsed()
}

#[test]
#[cfg(target_os = "linux")]
fn idle_and_trickling_clients_delay_nobody_and_ctrl_c_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve_untrained(dir.path());
    let addr = served.addr.clone();
    let unloaded = timed_get(&addr, "/");

    // 50 idle connections, 8 trickling ones and 4 stalled bodies, held open
    // while probes are answered; generous bounds, no tight timing.
    let mut held = Held::open(&addr, 50, 8);
    std::thread::sleep(Duration::from_secs(1));
    let probes: Vec<Duration> = (0..10)
        .map(|i| timed_get(&addr, if i % 2 == 0 { "/" } else { "/api/test/3" }))
        .collect();
    let slowest = probes.iter().max().unwrap();
    println!(
        "probe latency: {unloaded:?} with nothing held; with 50 idle, 8 trickling and 4 stalled connections held: slowest of 10 {slowest:?}, all {probes:?}"
    );
    assert!(*slowest < Duration::from_secs(10), "{probes:?}");

    // An idle connection is closed by the server once its header is late.
    let idle = held.idle.first_mut().unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let read = idle.read(&mut buf);
    println!(
        "an idle connection was closed by the server after {:?} more ({read:?})",
        start.elapsed()
    );
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    drop(held);

    // Ctrl-C while clients hold connections open: the server stops at once.
    let _held = Held::open(&addr, 50, 8);
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    let status = common::interrupt(&mut served);
    println!(
        "Ctrl-C with connections held: stopped in {:?}",
        start.elapsed()
    );
    assert!(
        status.success(),
        "cnn serve ended with {status} after Ctrl-C"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
