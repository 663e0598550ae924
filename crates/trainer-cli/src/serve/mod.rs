//! `cnn serve`: draw a digit in the browser and watch the network think;
//! or watch the seed network learn, in the browser.
//!
//! The drawing page (`serve.html`, `serve.css`, `serve.js`, embedded in the
//! binary; nothing is fetched from elsewhere) and a small JSON API.
//! Everything that page shows is computed here, by the network the way
//! `cnn predict` and `cnn eval` run it; the page only draws.
//!
//! The training page (`/train`: `train.html`, `train.css`, `train.js`,
//! `train-worker.js`, embedded too) is the other way round: the network
//! trains in the browser, in a Web Worker running the crate `trainer-web`
//! compiled to WebAssembly (read from `--web DIR`, where `cargo xtask web`
//! puts it); the server only hands out the files, the module and the
//! `--data` MNIST files as stored.
//!
//! # Requests and responses
//!
//! | request | response |
//! |---|---|
//! | `GET /`, `GET /serve.css`, `GET /serve.js` | the page |
//! | `GET /api/model` | JSON about the model (below) |
//! | `POST /api/predict`, body `{"width": W, "height": H, "pixels": [...]}` | a look inside the network at a drawing: `W*H` integers 0..=255, row by row, any size up to `MAX_DRAWING_SIDE` (512) a side, prepared as `cnn predict` prepares a PNG ([`trainer::prepare::prepare`]) |
//! | `GET /api/test/N` (with `--data`) | a look inside at test image `N`, given to the network as it is, as `cnn eval` does |
//! | `GET /train`, `/train.css`, `/train.js`, `/train-worker.js` | the training page: the seed network trained in the browser |
//! | `GET /train/trainer_web.wasm` | its WebAssembly module, from `--web DIR` (404 saying to run `cargo xtask web` when missing) |
//! | `GET /api/mnist/NAME` (with `--data`) | MNIST's file `NAME` (`train-images-idx3-ubyte`, ...), as stored in `--data` (gzipped or not) |
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
//! drawing), 404, 405, 408 (a body too slow), 411 (a body without
//! Content-Length, or chunked), 413 (body over `MAX_BODY`, 2 MiB). A header
//! hyper cannot accept is refused by hyper itself, with the status alone and
//! an empty body: 400 (malformed, or a Content-Length that is not a number or
//! disagrees with another) or 431 (header over `MAX_HEADER`, 16 KiB, or over
//! `MAX_HEADERS`, 32 fields).
//!
//! # How it serves
//!
//! hyper's HTTP/1.1 (no TLS, no HTTP/2) on a tokio runtime, one task per
//! connection: an idle or slow client costs a socket and a few KiB, and
//! delays nobody. hyper reads each header within `TIMEOUT` (10 s; a
//! connection idle that long, new or kept alive between requests, is
//! closed) and within its size limits; the body is then read within
//! `TIMEOUT` more and `MAX_BODY`, its announced length checked before
//! anything is read. A connection lives at most `CONNECTION_LIFE` (60 s),
//! then is closed once its request under way is answered. `WORKERS` (4)
//! networks answer requests on threads that may block, taken in turn: each
//! is its own copy, built from the checkpoint loaded once, since the layers
//! keep their outputs in buffers and one network cannot look at two images
//! at once. The checkpoint, the test set and the page are shared read-only.
//! Ctrl-C stops accepting connections, closes the idle ones and gives the
//! requests under way `STOP_WITHIN` (0.5 s): the server is gone within a
//! second, whatever its clients do.
//!
//! # Files
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`run`]: load, then serve |
//! | `state.rs` | what the workers share: the checkpoint, the test set, the model document |
//! | `server.rs` | hyper on tokio: connections, their limits and timeouts, the networks in turn, Ctrl-C |
//! | `routes.rs` | each path's reply, and the JSON of a look inside the network |
//! | `reply.rs` | an HTTP reply: status, content type, body |
//! | `assets.rs` | the pages: `serve.html`, `serve.css`, `serve.js`; `train.html`, `train.css`, `train.js`, `train-worker.js` |
//! | `train_routes.rs` | the training page's routes: its files, the module, the data files |

use std::path::PathBuf;

use anyhow::Result;

mod assets;
mod reply;
mod routes;
mod server;
mod state;
mod train_routes;

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
    /// Folder of the training page's WebAssembly module (`cargo xtask web` writes `target/web`).
    pub web: PathBuf,
}

/// Loads the model, listens, prints the address and serves until Ctrl-C.
pub fn run(opts: &ServeOptions) -> Result<()> {
    let shared = state::Shared::load(
        &opts.model,
        opts.config.as_deref(),
        opts.data.as_deref(),
        &opts.web,
    )?;
    if !opts.web.join(train_routes::WASM_FILE).is_file() {
        // On stderr: the first line on stdout is the address.
        eprintln!("/train: {}", train_routes::missing_wasm(&opts.web));
    }
    server::serve(&opts.addr, &opts.model, shared)
}
