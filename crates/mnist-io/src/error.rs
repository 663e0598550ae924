//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can be wrong with an IDX file, a pair of them, or their checksums.
///
/// Every variant names the file it is about, says what was found and, where
/// there is one, what was expected. Files given as bytes (see
/// [`Dataset::from_parts`](crate::Dataset::from_parts)) are named
/// `<in-memory images>` and `<in-memory labels>`.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// Neither the plain nor the gzipped name of a data set file exists in a folder.
    #[error("{}: no such file (nor {}.gz)", path.display(), path.display())]
    NotFound {
        /// The plain name that was looked for; `<path>.gz` was looked for too.
        path: PathBuf,
    },

    /// The file starts with the gzip magic bytes but its stream is corrupt or cut short.
    #[error("{}: corrupt or truncated gzip stream: {detail}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decompressor said.
        detail: String,
    },

    /// The file (after decompression, if gzipped) is larger than the reader accepts.
    ///
    /// This guards against decompression bombs; see [`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES).
    #[error("{}: more than {limit} bytes{}; refusing to read it", path.display(), if *.gzipped { " once decompressed" } else { "" })]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes that was exceeded.
        limit: u64,
        /// Whether the limit applied to the decompressed stream.
        gzipped: bool,
    },

    /// The file is shorter than the IDX header it must start with.
    #[error("{}: {found} bytes, too short for an IDX header (expected at least {expected} bytes)", path.display())]
    HeaderTooShort {
        /// The file.
        path: PathBuf,
        /// The length of the header that was expected.
        expected: usize,
        /// The length of the file.
        found: usize,
    },

    /// The first two bytes of the IDX header are not zero.
    #[error("{}: bad IDX magic: first bytes are {found:02x?}, expected [00, 00] (is this an IDX file?)", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first two bytes of the (decompressed) file.
        found: [u8; 2],
    },

    /// The IDX data type (third header byte) is not unsigned byte.
    #[error("{}: IDX data type 0x{found:02x}, expected 0x08 (unsigned byte)", path.display())]
    BadDataType {
        /// The file.
        path: PathBuf,
        /// The data type byte that was found.
        found: u8,
    },

    /// The number of dimensions (fourth header byte) is not the expected one.
    #[error("{}: {found} dimensions, expected {expected} ({})", path.display(), if *.expected == 1 { "a label file" } else { "an image file" })]
    BadDimensions {
        /// The file.
        path: PathBuf,
        /// The number of dimensions that was expected: 3 for images, 1 for labels.
        expected: u8,
        /// The number of dimensions that was found.
        found: u8,
    },

    /// The image shape in the header is unusable (a side of zero, or absurdly large).
    #[error("{}: images of {rows} x {cols} pixels; expected each side at least 1 and at most {} pixels in all", path.display(), crate::idx::MAX_IMAGE_PIXELS)]
    BadShape {
        /// The file.
        path: PathBuf,
        /// Declared rows per image.
        rows: u64,
        /// Declared columns per image.
        cols: u64,
    },

    /// The header declares more data than the file holds.
    #[error("{}: header declares {items} items ({expected} bytes of data) but the file holds only {found} bytes after the header (truncated?)", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The number of items (images or labels) the header declares.
        items: u64,
        /// The number of data bytes the header implies.
        expected: u128,
        /// The number of data bytes present.
        found: usize,
    },

    /// The file holds more bytes than its header declares.
    #[error("{}: {found} bytes of data after the header, expected exactly {expected} ({trailing} trailing bytes)", path.display(), trailing = *.found as u128 - *.expected)]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// The number of data bytes the header implies.
        expected: u128,
        /// The number of data bytes present.
        found: usize,
    },

    /// The image and label files hold different numbers of items.
    #[error("{} holds {images} images but {} holds {labels} labels; expected the same count", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },

    /// A label is not a class index: 0..10, or below the number of named classes.
    #[error("{}: label {label} at index {index}, expected a class index below {classes}", path.display())]
    BadLabel {
        /// The label file.
        path: PathBuf,
        /// Index of the offending label.
        index: usize,
        /// The value found.
        label: u8,
        /// How many classes there are: labels run from 0 to one less.
        classes: usize,
    },

    /// The decompressed content of a file does not have the expected SHA-256.
    #[error("{}: SHA-256 of the decompressed content is {actual}, expected {expected}", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The expected hash, lowercase hex.
        expected: String,
        /// The hash found, lowercase hex.
        actual: String,
    },
}

impl IdxError {
    /// The file this error is about (the image file for [`IdxError::CountMismatch`]).
    pub fn path(&self) -> &std::path::Path {
        match self {
            IdxError::Io { path, .. }
            | IdxError::NotFound { path }
            | IdxError::Gzip { path, .. }
            | IdxError::TooLarge { path, .. }
            | IdxError::HeaderTooShort { path, .. }
            | IdxError::BadMagic { path, .. }
            | IdxError::BadDataType { path, .. }
            | IdxError::BadDimensions { path, .. }
            | IdxError::BadShape { path, .. }
            | IdxError::Truncated { path, .. }
            | IdxError::TrailingBytes { path, .. }
            | IdxError::BadLabel { path, .. }
            | IdxError::Checksum { path, .. } => path,
            IdxError::CountMismatch { images_path, .. } => images_path,
        }
    }
}
