//! Reading files that may be gzipped, and parsing the IDX format.
//!
//! An IDX file is a header followed by raw data:
//!
//! ```text
//! 0x00 0x00 <type> <ndims>   magic; type 0x08 = unsigned byte
//! <dim 0: u32 big-endian>    number of items
//! <dim 1..ndims>             for images: rows, cols
//! <data>                     exactly dim0 * dim1 * ... bytes
//! ```
//!
//! The parser checks every header field against the bytes actually present
//! before it uses them, so a hostile header never makes it allocate or index
//! out of bounds.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::IdxError;

/// The most bytes [`read_maybe_gz`] accepts from one file, after decompression: 512 MiB.
///
/// The largest real file (Fashion-MNIST or MNIST training images) is 47 MB,
/// so this only stops decompression bombs and mistaken paths.
pub const MAX_FILE_BYTES: u64 = 512 << 20;

/// The largest image (rows x cols) an IDX image header may declare: 2^24 pixels.
pub(crate) const MAX_IMAGE_PIXELS: u64 = 1 << 24;

/// The IDX data type code for unsigned bytes, the only one MNIST uses.
pub(crate) const IDX_TYPE_U8: u8 = 0x08;

/// True when `bytes` starts with the gzip magic bytes `1f 8b`.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Reads a file whole, decompressing it if it starts with the gzip magic bytes
/// (whatever its name), with at most [`MAX_FILE_BYTES`] of output.
pub fn read_maybe_gz(path: impl AsRef<Path>) -> Result<Vec<u8>, IdxError> {
    read_maybe_gz_limited(path.as_ref(), MAX_FILE_BYTES)
}

/// [`read_maybe_gz`] with a chosen limit, in bytes, on the file and on its decompressed content.
pub fn read_maybe_gz_limited(path: &Path, limit: u64) -> Result<Vec<u8>, IdxError> {
    let io = |source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > limit {
        // Whether gzipped or not, the file itself is already too large.
        let mut magic = [0u8; 2];
        let gzipped = file.read_exact(&mut magic).is_ok() && is_gzip(&magic);
        return Err(IdxError::TooLarge {
            path: path.to_path_buf(),
            limit,
            gzipped,
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut raw = Vec::new();
    // `take` guards against a file that grows while we read it.
    file.take(limit + 1).read_to_end(&mut raw).map_err(io)?;
    if raw.len() as u64 > limit {
        return Err(IdxError::TooLarge {
            path: path.to_path_buf(),
            limit,
            gzipped: is_gzip(&raw),
        });
    }
    decompress_maybe_gz(path, raw, limit)
}

/// Decompresses `bytes` if they start with the gzip magic bytes, else returns them unchanged.
///
/// `path` only names the data in errors. At most `limit` bytes are produced;
/// more is [`IdxError::TooLarge`]. A corrupt or truncated stream (including a
/// bad CRC or a missing trailer) is [`IdxError::Gzip`]. Concatenated gzip
/// members are decompressed one after the other, as `gunzip` does.
pub(crate) fn decompress_maybe_gz(
    path: &Path,
    bytes: Vec<u8>,
    limit: u64,
) -> Result<Vec<u8>, IdxError> {
    if !is_gzip(&bytes) {
        return Ok(bytes);
    }
    let decoder = flate2::read::MultiGzDecoder::new(&bytes[..]);
    let mut out = Vec::new();
    match decoder.take(limit.saturating_add(1)).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > limit => Err(IdxError::TooLarge {
            path: path.to_path_buf(),
            limit,
            gzipped: true,
        }),
        Ok(_) => Ok(out),
        Err(e) => Err(IdxError::Gzip {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

/// The images of one IDX image file: `count` images of `rows` x `cols` bytes, row-major.
#[derive(Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` pixel bytes.
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for IdxImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IdxImages {{ count: {}, rows: {}, cols: {} }}",
            self.count, self.rows, self.cols
        )
    }
}

/// Checks the header of an IDX file of unsigned bytes with `ndims` dimensions.
/// Returns the dimensions, the header length and the number of data bytes they imply.
fn parse_header(path: &Path, bytes: &[u8], ndims: u8) -> Result<(Vec<u64>, usize), IdxError> {
    let p = || path.to_path_buf();
    let header_len = 4 + 4 * ndims as usize;
    if bytes.len() < 4 {
        return Err(IdxError::HeaderTooShort {
            path: p(),
            expected: header_len,
            found: bytes.len(),
        });
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(IdxError::BadMagic {
            path: p(),
            found: [bytes[0], bytes[1]],
        });
    }
    if bytes[2] != IDX_TYPE_U8 {
        return Err(IdxError::BadDataType {
            path: p(),
            found: bytes[2],
        });
    }
    if bytes[3] != ndims {
        return Err(IdxError::BadDimensions {
            path: p(),
            expected: ndims,
            found: bytes[3],
        });
    }
    if bytes.len() < header_len {
        return Err(IdxError::HeaderTooShort {
            path: p(),
            expected: header_len,
            found: bytes.len(),
        });
    }
    let dims = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    Ok((dims, header_len))
}

/// Checks that the data after the header is exactly `items * item_bytes` long.
/// Computed in `u128`, so no header can overflow it.
fn check_data_len(path: &Path, items: u64, item_bytes: u64, found: usize) -> Result<(), IdxError> {
    let expected = u128::from(items) * u128::from(item_bytes);
    if (found as u128) < expected {
        Err(IdxError::Truncated {
            path: path.to_path_buf(),
            items,
            expected,
            found,
        })
    } else if (found as u128) > expected {
        Err(IdxError::TrailingBytes {
            path: path.to_path_buf(),
            expected,
            found,
        })
    } else {
        Ok(())
    }
}

/// Parses the (decompressed) bytes of an IDX image file: 3 dimensions, unsigned bytes.
///
/// `path` only names the file in errors. The pixel data is moved out of
/// `bytes`, not copied.
pub(crate) fn parse_images(path: &Path, mut bytes: Vec<u8>) -> Result<IdxImages, IdxError> {
    let (dims, header_len) = parse_header(path, &bytes, 3)?;
    let (items, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 || rows * cols > MAX_IMAGE_PIXELS {
        return Err(IdxError::BadShape {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    check_data_len(path, items, rows * cols, bytes.len() - header_len)?;
    bytes.drain(..header_len);
    Ok(IdxImages {
        // All three fit in usize: their product is the length of `bytes`.
        count: items as usize,
        rows: rows as usize,
        cols: cols as usize,
        pixels: bytes,
    })
}

/// Parses the (decompressed) bytes of an IDX label file: 1 dimension, unsigned
/// bytes, every label in `0..10`.
///
/// `path` only names the file in errors.
pub(crate) fn parse_labels(path: &Path, mut bytes: Vec<u8>) -> Result<Vec<u8>, IdxError> {
    let (dims, header_len) = parse_header(path, &bytes, 1)?;
    check_data_len(path, dims[0], 1, bytes.len() - header_len)?;
    bytes.drain(..header_len);
    check_labels(path, &bytes, 10)?;
    Ok(bytes)
}

/// Checks that every label is a class index in `0..classes`.
pub(crate) fn check_labels(path: &Path, labels: &[u8], classes: usize) -> Result<(), IdxError> {
    match labels.iter().position(|&l| usize::from(l) >= classes) {
        Some(index) => Err(IdxError::BadLabel {
            path: path.to_path_buf(),
            index,
            label: labels[index],
            classes,
        }),
        None => Ok(()),
    }
}

/// The two names a data set file may have in a folder: `<name>` and `<name>.gz`.
/// Returns the first that exists, or [`IdxError::NotFound`].
pub fn find_file(dir: impl AsRef<Path>, name: &str) -> Result<PathBuf, IdxError> {
    let dir = dir.as_ref();
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(IdxError::NotFound { path: plain })
}

/// Writes a valid IDX image file's bytes (uncompressed) for `count` images of `rows` x `cols`.
///
/// The inverse of the IDX image parser; for tests and synthetic data.
/// Returns `None` if a dimension does not fit in 32 bits or `pixels` has the wrong length.
pub fn encode_images(pixels: &[u8], rows: usize, cols: usize) -> Option<Vec<u8>> {
    let per = rows.checked_mul(cols)?;
    if per == 0 || !pixels.len().is_multiple_of(per) {
        return None;
    }
    let dims = [
        u32::try_from(pixels.len() / per).ok()?,
        u32::try_from(rows).ok()?,
        u32::try_from(cols).ok()?,
    ];
    let mut out = vec![0, 0, IDX_TYPE_U8, 3];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    Some(out)
}

/// Writes a valid IDX label file's bytes (uncompressed). The inverse of the IDX label parser.
///
/// Returns `None` if there are 2^32 labels or more.
pub fn encode_labels(labels: &[u8]) -> Option<Vec<u8>> {
    let n = u32::try_from(labels.len()).ok()?;
    let mut out = vec![0, 0, IDX_TYPE_U8, 1];
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(labels);
    Some(out)
}
