//! `cnn serve`: draw a digit in the browser and watch the network think.
//!
//! One page (`serve.html`, `serve.css`, `serve.js`, embedded in the binary;
//! nothing is fetched from elsewhere) and a small JSON API. Everything the
//! page shows is computed here, by the network the way `cnn predict` and
//! `cnn eval` run it; the page only draws.
//!
//! # Requests and responses
//!
//! | request | response |
//! |---|---|
//! | `GET /`, `GET /serve.css`, `GET /serve.js` | the page |
//! | `GET /api/model` | JSON about the model (below) |
//! | `POST /api/predict`, body `{"width": W, "height": H, "pixels": [...]}` | a look inside the network at a drawing: `W*H` integers 0..=255, row by row, any size up to [`MAX_SIDE`] a side, prepared as `cnn predict` prepares a PNG ([`crate::predict::prepare`]) |
//! | `GET /api/test/N` (with `--data`) | a look inside at test image `N`, given to the network as it is, as `cnn eval` does |
//!
//! The model: `{"model", "config", "classes": [names], "input": [width, height],
//! "kernels": PNG | null, "kernels_caption", "test_images": count,
//! "test_accuracy": fraction | null, "mistakes": [test indices, most confident first]}`.
//!
//! A look inside: `{"class", "class_name", "probabilities": [one per class],
//! "notes": [preprocessing steps], "input": PNG (what the network sees),
//! "layers": [{"name", "width", "height", "maps": [PNG, one per channel]}],
//! "index", "truth"}` (the last two for test images only). `layers` holds the
//! output of each convolution (after its ReLU when one follows it) and of each
//! pooling layer; each map is scaled to its own range, as `cnn visualize`
//! draws them. Every PNG is a `data:image/png;base64,` URI.
//!
//! Errors are plain text saying what was wrong: 400 (malformed request or
//! drawing), 404, 405, 408 (too slow), 411 (a body without Content-Length),
//! 413 (body over [`MAX_BODY`]), 431 (header over [`MAX_HEADER`]).
//!
//! # How it serves
//!
//! Plain `std::net`, with `httparse` reading the request header: a server
//! crate would have to be trusted with every bound (tiny_http 0.12, for one,
//! allocates the announced length of a body it was not asked to read, so a
//! single request announcing a terabyte aborts it). [`WORKERS`]
//! threads each take a connection, read one request (every size checked
//! before anything is allocated for it, and the whole request within
//! [`TIMEOUT`]), answer it and close the connection; more connections wait in
//! the system's queue. Each worker has its own copy of the network, built
//! from the checkpoint loaded once: the layers keep their outputs in buffers,
//! so one network cannot look at two images at once. The checkpoint, the test
//! set and the page are shared read-only. Ctrl-C lets the requests under way
//! finish, then stops.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use mnist_io::{Dataset, Split};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::image_io::GreyImage;
use crate::predict::{prepare, Predictor};
use crate::report::base64;
use crate::visualize::{filters_figure, maps_of_conv, to_own_range};
use trainer::checkpoint::Checkpoint;

/// Threads answering requests.
pub const WORKERS: usize = 4;
/// Largest request header, in bytes.
pub const MAX_HEADER: usize = 16 << 10;
/// Largest request body, in bytes: a [`MAX_SIDE`]-square drawing as JSON fits.
pub const MAX_BODY: usize = 2 << 20;
/// Largest side of a drawing, in pixels.
pub const MAX_SIDE: usize = 512;
/// The longest a request may take to arrive, and a reply to be taken.
pub const TIMEOUT: Duration = Duration::from_secs(10);

const PAGE: &str = include_str!("serve.html");
const CSS: &str = include_str!("serve.css");
const JS: &str = include_str!("serve.js");

/// What `cnn serve` was asked to do.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// A checkpoint or a `.safetensors` file.
    pub model: PathBuf,
    /// The config of a `.safetensors` file's network (default: the one stored in it).
    pub config: Option<String>,
    /// Folder of IDX files: the test images, and the training set when inputs are standardised.
    pub data: Option<PathBuf>,
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0: any free port).
    pub addr: String,
}

/// What the workers share, read-only.
struct Shared {
    ckpt: Checkpoint,
    norm: Option<mnist_io::Normalize>,
    test: Option<Dataset>,
    /// The `GET /api/model` document.
    model: String,
}

/// Set by Ctrl-C: the workers stop taking connections.
static STOP: AtomicBool = AtomicBool::new(false);

/// Loads the model, listens, prints the address and serves until Ctrl-C.
pub fn run(opts: &ServeOptions) -> Result<()> {
    let ckpt = trainer::safetensors_io::load_checkpoint(&opts.model, opts.config.as_deref())?;
    let norm = crate::predict::input_norm(&ckpt.config, opts.data.as_deref())?;
    let mut predictor = Predictor::new(ckpt.network()?, &ckpt, norm)?;
    let (width, height) = predictor.input_size();
    let test = match &opts.data {
        Some(dir) => {
            let ds = Dataset::load(dir, Split::Test)
                .with_context(|| format!("loading the test set from {}", dir.display()))?;
            if (ds.cols(), ds.rows()) != (width, height) {
                bail!(
                    "{}: the test images are {}x{}, the network takes {width}x{height}",
                    dir.display(),
                    ds.cols(),
                    ds.rows()
                );
            }
            Some(ds)
        }
        None => None,
    };
    let (accuracy, mistakes) = match &test {
        Some(ds) => {
            let (e, m) = crate::report::evaluate_with_mistakes(predictor.network(), ds, 100, norm)?;
            tracing::info!(
                "test set: {} images, accuracy {:.2}%, {} mistakes",
                ds.len(),
                100.0 * e.accuracy,
                m.len()
            );
            (Some(e.accuracy), m.iter().map(|m| m.index).collect())
        }
        None => (None, Vec::new()),
    };
    let kernels = filters_figure(predictor.network(), 16, 2, None).ok();
    let model = json!({
        "model": opts.model.file_name().map(|n| n.to_string_lossy()),
        "config": ckpt.config.name,
        "classes": predictor.class_names(),
        "input": [width, height],
        "kernels": kernels.as_ref().map(|f| png_uri(&f.png)),
        "kernels_caption": kernels.as_ref().map(|f| &f.description),
        "test_images": test.as_ref().map_or(0, |t| t.len()),
        "test_accuracy": accuracy,
        "mistakes": mistakes,
    })
    .to_string();
    let shared = Shared {
        ckpt,
        norm,
        test,
        model,
    };

    let listener =
        TcpListener::bind(&opts.addr).with_context(|| format!("cannot listen on {}", opts.addr))?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    let mut wake = addr;
    if wake.ip().is_unspecified() {
        wake.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    ctrlc::set_handler(move || {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping once the requests under way are answered");
        // A connection to ourselves wakes each worker waiting in accept().
        for _ in 0..WORKERS {
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        }
    })
    .context("installing the Ctrl-C handler")?;

    let who = if addr.ip().is_loopback() {
        "only this machine can connect; --addr 0.0.0.0:PORT opens it to the network".to_string()
    } else {
        format!(
            "listening on {}: anyone who can reach it can use it",
            addr.ip()
        )
    };
    println!("serving {} on http://{wake}/ ({who})", opts.model.display());
    println!("press Ctrl-C to stop");

    std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| s.spawn(|| worker(&listener, &shared)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow!("a worker thread panicked"))?)
            .collect::<Result<Vec<()>>>()
    })?;
    println!("stopped");
    Ok(())
}

/// Takes connections one at a time until Ctrl-C.
fn worker(listener: &TcpListener, shared: &Shared) -> Result<()> {
    let mut predictor = Predictor::new(shared.ckpt.network()?, &shared.ckpt, shared.norm)?;
    let shown = shown_layers(predictor.network());
    while !STOP.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok(_) if STOP.load(Ordering::SeqCst) => break,
            Ok((stream, _)) => {
                if let Err(e) = serve_connection(stream, &mut predictor, &shown, shared) {
                    tracing::debug!("connection: {e}");
                }
            }
            Err(e) => {
                // E.g. out of file descriptors: wait a little rather than spin.
                tracing::warn!("accepting a connection: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(())
}

/// An HTTP reply: status, content type and body.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status: 200,
            content_type,
            body: body.into(),
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Self {
        let mut body = message.into().into_bytes();
        body.push(b'\n');
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

/// A request as read: method, path (without the query) and body.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn serve_connection(
    mut stream: TcpStream,
    predictor: &mut Predictor,
    shown: &[(usize, String)],
    shared: &Shared,
) -> io::Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    let reply = match read_request(&mut stream, deadline) {
        Ok(req) => route(&req, predictor, shown, shared),
        Err(reply) => reply,
    };
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    )?;
    stream.write_all(&reply.body)?;
    // Closing a socket that still holds unread bytes resets the connection,
    // and the client may lose the reply: read what is left first, a little
    // and briefly (a request refused before its body was read).
    stream.shutdown(Shutdown::Write)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    io::copy(&mut (&stream).take(64 << 10), &mut io::sink())?;
    Ok(())
}

/// Reads bytes into `buf` (at most `chunk` more), failing with 408 after `deadline`.
fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    chunk: usize,
    deadline: Instant,
) -> Result<usize, Reply> {
    let too_slow = || Reply::error(408, "the request took too long to arrive");
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(too_slow)?;
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| Reply::error(400, format!("socket: {e}")))?;
    let start = buf.len();
    buf.resize(start + chunk, 0);
    let read = stream.read(&mut buf[start..]);
    buf.truncate(start + *read.as_ref().unwrap_or(&0));
    match read {
        Ok(n) => Ok(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(too_slow())
        }
        Err(e) => Err(Reply::error(400, format!("reading the request: {e}"))),
    }
}

/// Reads one request: the header (at most [`MAX_HEADER`] bytes), then the
/// body its Content-Length announces (at most [`MAX_BODY`]).
fn read_request(stream: &mut TcpStream, deadline: Instant) -> Result<Request, Reply> {
    let mut buf = Vec::new();
    let (method, path, header_len, body_len) = loop {
        if read_more(stream, &mut buf, 4096, deadline)? == 0 {
            return Err(Reply::error(400, "the request header ended early"));
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(header_len)) => {
                let mut body_len = None;
                for h in req.headers.iter() {
                    if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(Reply::error(411, "send the body with a Content-Length"));
                    }
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let n = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .ok_or_else(|| Reply::error(400, "Content-Length is not a number"))?;
                        body_len = Some(n);
                    }
                }
                let method = req.method.unwrap_or_default().to_string();
                let path = req.path.unwrap_or_default();
                let path = path.split('?').next().unwrap_or_default().to_string();
                break (method, path, header_len, body_len);
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEADER => {
                return Err(Reply::error(
                    431,
                    format!("the request header is over {MAX_HEADER} bytes"),
                ))
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Reply::error(431, "more than 32 header fields"))
            }
            Err(e) => return Err(Reply::error(400, format!("malformed request: {e}"))),
        }
    };
    let body_len = match body_len {
        Some(n) => n,
        None if method == "POST" => {
            return Err(Reply::error(411, "send the body with a Content-Length"))
        }
        None => 0,
    };
    if body_len > MAX_BODY {
        return Err(Reply::error(
            413,
            format!("the body is {body_len} bytes; at most {MAX_BODY} are accepted"),
        ));
    }
    let mut body = buf.split_off(header_len.min(buf.len()));
    while body.len() < body_len {
        let missing = body_len - body.len();
        if read_more(stream, &mut body, missing, deadline)? == 0 {
            return Err(Reply::error(
                400,
                format!(
                    "the body ended after {} of the {body_len} bytes its Content-Length announced",
                    body.len()
                ),
            ));
        }
    }
    body.truncate(body_len);
    Ok(Request { method, path, body })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

fn route(
    req: &Request,
    predictor: &mut Predictor,
    shown: &[(usize, String)],
    shared: &Shared,
) -> Reply {
    let json = "application/json";
    let result = match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") => return Reply::ok("text/html; charset=utf-8", PAGE),
        ("GET", "/serve.css") => return Reply::ok("text/css; charset=utf-8", CSS),
        ("GET", "/serve.js") => return Reply::ok("text/javascript; charset=utf-8", JS),
        ("GET", "/api/model") => return Reply::ok(json, shared.model.as_bytes()),
        ("POST", "/api/predict") => match parse_drawing(&req.body) {
            Ok(drawing) => {
                let (w, h) = predictor.input_size();
                let prepared = prepare(drawing, w, h, true);
                look_inside(predictor, shown, &prepared.image, prepared.notes)
            }
            Err(e) => return Reply::error(400, e),
        },
        ("GET", path) if path.starts_with("/api/test/") => {
            let Some(test) = &shared.test else {
                return Reply::error(404, "no test set: start `cnn serve` with --data DIR");
            };
            let index = &path["/api/test/".len()..];
            let Some(i) = index.parse::<usize>().ok().filter(|&i| i < test.len()) else {
                return Reply::error(
                    404,
                    format!(
                        "no test image `{index}`: they are numbered 0 to {}",
                        test.len() - 1
                    ),
                );
            };
            let (w, h) = predictor.input_size();
            let image = GreyImage {
                width: w,
                height: h,
                pixels: test.image(i).to_vec(),
            };
            let note =
                format!("test image {i}, given to the network as it is (as `cnn eval` does)");
            look_inside(predictor, shown, &image, vec![note]).map(|mut v| {
                v["index"] = json!(i);
                v["truth"] = json!(test.label(i));
                v
            })
        }
        (_, "/" | "/serve.css" | "/serve.js" | "/api/model" | "/api/predict") => {
            return Reply::error(
                405,
                format!("{} is not allowed on {}", req.method, req.path),
            )
        }
        (_, path) => return Reply::error(404, format!("nothing at {path}")),
    };
    match result {
        Ok(v) => Reply::ok(json, v.to_string()),
        Err(e) => Reply::error(500, format!("{e:#}")),
    }
}

/// The body of `POST /api/predict`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Drawing {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

/// A drawing from its JSON, every field checked; the error says what is wrong.
fn parse_drawing(body: &[u8]) -> Result<GreyImage, String> {
    let d: Drawing = serde_json::from_slice(body).map_err(|e| {
        format!("the body is not a drawing {{\"width\": W, \"height\": H, \"pixels\": [W*H integers 0..=255]}}: {e}")
    })?;
    for (name, side) in [("width", d.width), ("height", d.height)] {
        if side == 0 || side > MAX_SIDE {
            return Err(format!("{name} is {side}; it must be 1 to {MAX_SIDE}"));
        }
    }
    if d.pixels.len() != d.width * d.height {
        return Err(format!(
            "pixels has {} values; a {}x{} drawing has {}",
            d.pixels.len(),
            d.width,
            d.height,
            d.width * d.height
        ));
    }
    Ok(GreyImage {
        width: d.width,
        height: d.height,
        pixels: d.pixels,
    })
}

/// The layers whose outputs the page shows, with a title: each convolution
/// (after its ReLU, as `cnn visualize` shows it: [`maps_of_conv`]) and each
/// pooling layer.
fn shown_layers(net: &layers::Network) -> Vec<(usize, String)> {
    let layers = net.layers();
    let mut shown = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        if layer.kind() == "conv2d" {
            let last = maps_of_conv(net, i);
            let names: Vec<&str> = layers[i..=last].iter().map(|l| l.name()).collect();
            shown.push((last, names.join(" + ")));
        } else if layer.kind().ends_with("pool2d") {
            shown.push((i, layer.name().to_string()));
        }
    }
    shown
}

fn png_uri(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64(png))
}

/// The probabilities (from [`Predictor::probabilities`], i.e.
/// `Network::forward`) and the feature maps of the `shown` layers for an
/// image of the network's input size.
fn look_inside(
    predictor: &mut Predictor,
    shown: &[(usize, String)],
    image: &GreyImage,
    notes: Vec<String>,
) -> Result<Value> {
    let probabilities = predictor.probabilities(image)?;
    let class = tensor::argmax(&probabilities);
    let input = predictor.input_tensor(image)?;
    let mut layers = Vec::new();
    for (index, name) in shown {
        let out = predictor
            .network()
            .forward_to(&input, *index)
            .map_err(|e| anyhow!("{e}"))?;
        let &[1, _, h, w] = out.shape() else {
            bail!(
                "layer {name} gives shape {:?}, not feature maps",
                out.shape()
            );
        };
        let values = out
            .as_slice()
            .ok_or_else(|| anyhow!("feature maps are not contiguous"))?;
        let maps = values
            .chunks_exact(w * h)
            .map(|m| {
                let pixels = to_own_range(m);
                let png = GreyImage {
                    width: w,
                    height: h,
                    pixels,
                }
                .to_png()?;
                Ok(png_uri(&png))
            })
            .collect::<Result<Vec<_>>>()?;
        layers.push(json!({"name": name, "width": w, "height": h, "maps": maps}));
    }
    Ok(json!({
        "class": class,
        "class_name": predictor.class_names().get(class),
        "probabilities": probabilities,
        "notes": notes,
        "input": png_uri(&image.to_png()?),
        "layers": layers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawings_are_checked_field_by_field() {
        let ok = parse_drawing(br#"{"width": 2, "height": 1, "pixels": [0, 255]}"#).unwrap();
        assert_eq!((ok.width, ok.height, ok.pixels), (2, 1, vec![0, 255]));
        for (body, expected) in [
            (
                &br#"{"width": 2, "height": 1, "pixels": [0]}"#[..],
                "pixels has 1 values; a 2x1 drawing has 2",
            ),
            (br#"{"width": 0, "height": 1, "pixels": []}"#, "width is 0"),
            (
                br#"{"width": 1, "height": 9999, "pixels": []}"#,
                "height is 9999",
            ),
            (
                br#"{"width": 1, "height": 1, "pixels": [NaN]}"#,
                "not a drawing",
            ),
            (
                br#"{"width": 1, "height": 1, "pixels": ["a"]}"#,
                "not a drawing",
            ),
            (
                br#"{"width": 1, "height": 1, "pixels": [256]}"#,
                "not a drawing",
            ),
            (
                br#"{"width": 1, "height": 1, "pixels": [-1]}"#,
                "not a drawing",
            ),
            (
                br#"{"width": 1, "height": 1, "pixels": [1], "x": 1}"#,
                "unknown field `x`",
            ),
            (b"", "not a drawing"),
        ] {
            let err = parse_drawing(body).unwrap_err();
            assert!(
                err.contains(expected),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_seed_network_shows_both_convolutions_and_both_poolings() {
        let net = trainer::config::TrainConfig::load("seed")
            .unwrap()
            .build_network()
            .unwrap();
        let names: Vec<String> = shown_layers(&net).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names[0].starts_with("conv1 + "), "{names:?}");
        assert!(names[2].starts_with("conv2 + "), "{names:?}");
    }
}
