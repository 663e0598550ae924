//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

pub mod find_data;

/// Real MNIST, found as every test of the workspace finds it
/// ([`find_data::mnist`]), or why it is not there.
pub fn mnist_dir() -> Result<PathBuf, String> {
    find_data::mnist(&find_data::workspace_root(Path::new(env!(
        "CARGO_MANIFEST_DIR"
    ))))
}

/// Fashion-MNIST, or why it is not there.
pub fn fashion_dir() -> Result<PathBuf, String> {
    find_data::fashion()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
    out
}

/// A small valid data set: `n` images of 3 x 2 with recognisable pixels, labels `i % 10`.
pub fn small_pair(n: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..n * 6).map(|i| (i * 37 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    (
        mnist_io::encode_images(&pixels, 3, 2).unwrap(),
        mnist_io::encode_labels(&labels).unwrap(),
    )
}

/// Builds an IDX header by hand: magic `[0, 0, ty, ndims]` and the dims.
pub fn header(ty: u8, dims: &[u32]) -> Vec<u8> {
    let mut h = vec![0, 0, ty, dims.len() as u8];
    for d in dims {
        h.extend_from_slice(&d.to_be_bytes());
    }
    h
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}
