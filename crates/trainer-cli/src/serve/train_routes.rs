//! The training page's routes: `/train` and its files, the WebAssembly
//! module built by `cargo xtask web`, and the MNIST files of `--data` as
//! they are on disk (gzipped or not: the module reads both).

use std::path::{Path, PathBuf};

use mnist_io::MNIST;

use super::assets::{TRAIN_CSS, TRAIN_JS, TRAIN_PAGE, TRAIN_WORKER_JS};
use super::reply::Reply;

/// The module's file name in the `--web` folder.
pub(crate) const WASM_FILE: &str = "trainer_web.wasm";
/// Largest module served, in bytes.
const MAX_WASM: u64 = 32 << 20;
/// Largest data file served, in bytes (MNIST's training images, not
/// gzipped, are 47 MB): with `WORKERS` requests at once, at most 256 MiB.
const MAX_DATA: u64 = 64 << 20;

/// What the training page's routes need.
pub(crate) struct TrainFiles {
    /// Where `cargo xtask web` put the module.
    pub(crate) web: PathBuf,
    /// `--data`, when given.
    pub(crate) data: Option<PathBuf>,
}

/// The command that builds the module, and what to do then.
pub(crate) fn missing_wasm(web: &Path) -> String {
    format!(
        "the training page's WebAssembly ({}) is missing: run `cargo xtask web` in the project's folder (or start `cnn serve` with --web DIR where it is)",
        web.join(WASM_FILE).display()
    )
}

/// The reply to a GET of `path`, when it is one of the training page's.
pub(crate) fn route(path: &str, files: &TrainFiles) -> Option<Reply> {
    Some(match path {
        "/train" => Reply::ok("text/html; charset=utf-8", TRAIN_PAGE),
        "/train.css" => Reply::ok("text/css; charset=utf-8", TRAIN_CSS),
        "/train.js" => Reply::ok("text/javascript; charset=utf-8", TRAIN_JS),
        "/train-worker.js" => Reply::ok("text/javascript; charset=utf-8", TRAIN_WORKER_JS),
        "/train/trainer_web.wasm" => {
            let path = files.web.join(WASM_FILE);
            if !path.exists() {
                return Some(Reply::error(404, missing_wasm(&files.web)));
            }
            file_reply(&path, MAX_WASM, "a WebAssembly module", "application/wasm")
        }
        _ => {
            let name = path.strip_prefix("/api/mnist/")?;
            data_file(name, files.data.as_deref())
        }
    })
}

/// `GET /api/mnist/NAME`: one of MNIST's four files from `--data`, as stored.
fn data_file(name: &str, data: Option<&Path>) -> Reply {
    if MNIST.file(name).is_none() {
        let names = MNIST.files.map(|f| f.name).join(", ");
        return Reply::error(
            404,
            format!("no data file `{name}`: ask for one of {names}"),
        );
    }
    let Some(dir) = data else {
        return Reply::error(
            404,
            "no data: start `cnn serve` with --data DIR, or drop the four IDX files on the page",
        );
    };
    let Ok(path) = mnist_io::find_file(dir, name) else {
        return Reply::error(404, format!("{name}(.gz) is not in the --data folder"));
    };
    file_reply(&path, MAX_DATA, "an MNIST file", "application/octet-stream")
}

/// The file at `path` as the reply, read as every file from outside is
/// ([`trainer::files::read_limited`]: a regular file, at most `limit` bytes).
fn file_reply(path: &Path, limit: u64, what: &str, content_type: &'static str) -> Reply {
    match trainer::files::read_limited(path, limit, what) {
        Ok(bytes) => Reply::ok(content_type, bytes),
        Err(e) => Reply::error(500, format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_training_page_loads_nothing_from_another_host() {
        for text in [TRAIN_PAGE, TRAIN_CSS, TRAIN_JS, TRAIN_WORKER_JS] {
            // Absolute or protocol-relative addresses, and CSS imports.
            for other in ["http:", "https:", "\"//", "'//", "url(", "@import"] {
                let hits: Vec<&str> = text.lines().filter(|l| l.contains(other)).collect();
                assert!(hits.is_empty(), "{other} in {hits:?}");
            }
        }
    }

    #[test]
    fn data_files_are_only_mnists_four_from_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t10k-labels-idx1-ubyte.gz"), b"gz").unwrap();
        let files = TrainFiles {
            web: dir.path().join("web"),
            data: Some(dir.path().to_path_buf()),
        };
        let ok = route("/api/mnist/t10k-labels-idx1-ubyte", &files).unwrap();
        assert_eq!((ok.status, ok.body.as_slice()), (200, &b"gz"[..]));
        for (path, status) in [
            ("/api/mnist/../../etc/passwd", 404),
            ("/api/mnist/train-images-idx3-ubyte", 404),
            ("/train/trainer_web.wasm", 404),
        ] {
            assert_eq!(route(path, &files).unwrap().status, status, "{path}");
        }
        let missing = route("/train/trainer_web.wasm", &files).unwrap();
        assert!(String::from_utf8_lossy(&missing.body).contains("cargo xtask web"));
        assert!(route("/other", &files).is_none());
        let no_data = TrainFiles {
            data: None,
            ..files
        };
        let reply = route("/api/mnist/t10k-labels-idx1-ubyte", &no_data).unwrap();
        assert!(String::from_utf8_lossy(&reply.body).contains("--data"));
    }
}
