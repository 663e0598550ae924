//! The round trip of a prediction of `cnn serve`, as the page makes it:
//! a 280x280 drawing (a ring) posted to `/api/predict`, one request after the
//! other, each on a connection of its own (`Connection: close`), timed from
//! connecting to the last byte of the answer (the probabilities and every
//! feature map, as PNGs in JSON).
//!
//! ```text
//! cnn serve --model runs/seed/best.ckpt &        # prints its address
//! cargo run --release -p trainer-cli --example serve_latency -- 127.0.0.1:8080 1000
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), count) = (args.get(1), args.get(2)) else {
        eprintln!("usage: serve_latency HOST:PORT [REQUESTS, default 1000]");
        std::process::exit(2);
    };
    let count: usize = count.map_or(Ok(1000), |c| c.parse()).unwrap_or_else(|e| {
        eprintln!("REQUESTS: {e}");
        std::process::exit(2);
    });

    // A ring, drawn white on black as the page's pad is.
    let side = 280usize;
    let pixels: Vec<String> = (0..side * side)
        .map(|i| {
            let (x, y) = ((i % side) as f64 - 140.0, (i / side) as f64 - 140.0);
            let r = (x * x / 0.5 + y * y).sqrt();
            if (80.0..100.0).contains(&r) {
                "255"
            } else {
                "0"
            }
            .to_string()
        })
        .collect();
    let body = format!(
        "{{\"width\":{side},\"height\":{side},\"pixels\":[{}]}}",
        pixels.join(",")
    );
    let request = format!(
        "POST /api/predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );

    let mut times = Vec::with_capacity(count);
    let mut answer = Vec::new();
    for _ in 0..count {
        let start = Instant::now();
        let mut stream = TcpStream::connect(addr.as_str()).expect("connecting to the server");
        stream.write_all(request.as_bytes()).expect("sending");
        answer.clear();
        stream.read_to_end(&mut answer).expect("reading the answer");
        times.push(start.elapsed().as_secs_f64() * 1e3);
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        );
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{count} predictions ({} KB sent, {} KB back each): median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        request.len() / 1000,
        answer.len() / 1000,
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
