//! Reading files that come from outside, and guarding what a user made.
//!
//! Every file the trainer reads goes through [`read_limited`]: regular files
//! only (opening a FIFO blocks until someone writes to it, a device such as
//! `/dev/zero` never ends), and never more bytes than a limit fixed per kind
//! of file, so that a wrong path cannot hang a command or fill the memory.
//! Every output command checks its destination with [`check_output`]:
//! it never replaces a checkpoint, a `metrics.csv`, a config or a data file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

/// The first bytes of every checkpoint file: what [`check_output`] knows a
/// checkpoint by, whatever its name.
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"CNNCKPT\0";

/// Largest config (TOML) file read: 1 MiB (the built-in ones are under 2 kB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest `metrics.csv` read: 16 MiB (a 100-epoch run's is under 10 kB).
pub const MAX_METRICS_BYTES: u64 = 16 << 20;
/// Largest PNG file read by `cnn predict`: 64 MiB.
pub const MAX_PNG_BYTES: u64 = 64 << 20;
/// Largest safetensors file read: 1 GiB, as for checkpoints.
pub(crate) const MAX_SAFETENSORS_BYTES: u64 = 1 << 30;
/// Largest Markdown page `cnn results` reads back to keep its tail: 16 MiB.
pub const MAX_PAGE_BYTES: u64 = 16 << 20;

/// Reads `path` whole. Refuses a directory, anything that is not a regular
/// file, and a file of more than `limit` bytes (checked before reading, and
/// again while reading, in case it grows). `what` names the kind of file
/// in errors (`a checkpoint`, `a config`), which all name the path.
pub fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let p = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("{p}: cannot read {what}"))?;
    check_regular(path, &meta, what)?;
    if meta.len() > limit {
        bail!(
            "{p}: {} bytes is more than the {} accepted for {what}",
            meta.len(),
            human_bytes(limit)
        );
    }
    let file = std::fs::File::open(path).with_context(|| format!("{p}: cannot read {what}"))?;
    // The path may have been replaced between the two looks.
    check_regular(path, &file.metadata()?, what)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{p}: cannot read {what}"))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{p}: more than the {} accepted for {what}",
            human_bytes(limit)
        );
    }
    Ok(bytes)
}

/// [`read_limited`], as UTF-8 text.
pub fn read_text_limited(path: &Path, limit: u64, what: &str) -> Result<String> {
    let bytes = read_limited(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow!(
            "{}: {what} must be UTF-8 text; byte {} is not",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

fn check_regular(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    if meta.is_dir() {
        bail!("{}: a directory; expected {what}", path.display());
    }
    if !meta.is_file() {
        bail!(
            "{}: not a regular file (a pipe, socket or device); expected {what}",
            path.display()
        );
    }
    Ok(())
}

/// `1 GiB`, `16 MiB`, `512 bytes`.
pub(crate) fn human_bytes(n: u64) -> String {
    match n {
        _ if n >= 1 << 30 && n.is_multiple_of(1 << 30) => format!("{} GiB", n >> 30),
        _ if n >= 1 << 20 && n.is_multiple_of(1 << 20) => format!("{} MiB", n >> 20),
        _ => format!("{n} bytes"),
    }
}

/// Checks that an output command may write `out`: a path that does not
/// exist yet, or a regular file that is none of a run's own files (a
/// checkpoint, `metrics.csv`, a config, an IDX data file) and none of
/// `inputs`, the files the command reads. With `force` (the commands'
/// `--force`), any regular file may be replaced.
pub fn check_output(out: &Path, inputs: &[&Path], force: bool) -> Result<()> {
    let o = out.display();
    let Ok(meta) = std::fs::metadata(out) else {
        return Ok(());
    };
    if !meta.is_file() {
        bail!("{o}: exists and is not a regular file; choose another output path");
    }
    if force {
        return Ok(());
    }
    let same = |input: &Path| match (out.canonicalize(), input.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if inputs.iter().any(|i| same(i)) {
        bail!("{o}: is one of this command's inputs; choose another output path (or --force)");
    }
    if let Some(kind) = precious_kind(out) {
        bail!(
            "{o}: holds {kind}, which this command will not overwrite; choose another output path (or --force)"
        );
    }
    Ok(())
}

/// What a run's own file is (`a checkpoint`, `a run's metrics`, `a config`,
/// `a data file`), by name or content.
fn precious_kind(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let mut head = [0u8; 8];
    let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut head));
    let head = &head[..read.unwrap_or(0)];
    let starts_like_checkpoint = head == CHECKPOINT_MAGIC;
    // IDX: two zero bytes, 0x08 (unsigned bytes), then 1 or 3 dimensions; or gzip.
    let idx = matches!(head, [0, 0, 8, 1 | 3, ..]) || name.contains("-ubyte");
    if idx || (head.starts_with(&[0x1f, 0x8b]) && name.contains("idx")) {
        Some("a data file")
    } else if starts_like_checkpoint || ext.as_deref() == Some("ckpt") {
        Some("a checkpoint")
    } else if name == "metrics.csv" {
        Some("a run's metrics")
    } else if ext.as_deref() == Some("toml") {
        Some("a config")
    } else {
        None
    }
}

/// Writes `bytes` to `path` so that a crash at any moment leaves either the
/// old file or the complete new one: write a temporary sibling, fsync it,
/// rename it over `path`, fsync the directory. On error the temporary file is
/// removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file path", path.display()))?;
    let tmp: PathBuf = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let result = (|| -> std::io::Result<()> {
        {
            // Closed at the end of this block, before the rename.
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow!("{}: cannot write: {e}", path.display()));
    }
    Ok(())
}

/// Copies `from` to `to` through a temporary file renamed into place; on
/// any error (a full disk, say) the temporary file is removed and `to` is
/// left as it was.
pub(crate) fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = to.with_file_name(format!(".{name}.tmp"));
    let result = std::fs::copy(from, &tmp).and_then(|_| std::fs::rename(&tmp, to));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        bail!("{}: cannot write: {e}", to.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_file_kinds_are_checked_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.toml");
        std::fs::write(&small, "a = 1\n").unwrap();
        assert_eq!(read_limited(&small, 6, "a config").unwrap(), b"a = 1\n");
        let err = format!("{:#}", read_limited(&small, 5, "a config").unwrap_err());
        assert!(
            err.contains("small.toml") && err.contains("6 bytes is more than the 5 bytes"),
            "{err}"
        );
        let err = format!("{:#}", read_limited(dir.path(), 5, "a config").unwrap_err());
        assert!(err.contains("a directory; expected a config"), "{err}");
        let err = format!(
            "{:#}",
            read_limited(Path::new("/dev/zero"), 5, "a config").unwrap_err()
        );
        assert!(err.contains("/dev/zero: not a regular file"), "{err}");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Opening it would block until a writer came: it is never opened.
            let err = format!("{:#}", read_limited(&fifo, 5, "a config").unwrap_err());
            assert!(err.contains("not a regular file"), "{err}");
        }
        std::fs::write(&small, [b'a', 0xff]).unwrap();
        let err = format!(
            "{:#}",
            read_text_limited(&small, 9, "a config").unwrap_err()
        );
        assert!(err.contains("must be UTF-8 text; byte 1"), "{err}");
    }

    #[test]
    fn outputs_never_replace_a_runs_files_or_an_input() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        check_output(&at("new.png"), &[], false).unwrap();
        std::fs::write(at("old.png"), "png").unwrap();
        check_output(&at("old.png"), &[], false).unwrap();
        let err = check_output(&at("old.png"), &[&at("old.png")], false).unwrap_err();
        assert!(err.to_string().contains("one of this command's inputs"));
        for (name, bytes, kind) in [
            ("metrics.csv", &b"epoch\n"[..], "a run's metrics"),
            ("run.toml", b"name = 'x'", "a config"),
            ("best.ckpt", b"x", "a checkpoint"),
            ("model.png", b"CNNCKPT\0rest", "a checkpoint"),
            ("out.md", b"\0\0\x08\x03\0\0\0\x01", "a data file"),
            ("t10k-labels-idx1-ubyte", b"x", "a data file"),
        ] {
            std::fs::write(at(name), bytes).unwrap();
            let err = check_output(&at(name), &[], false).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(kind), "{err}");
            assert!(err.contains("--force"), "{err}");
            // Told to, the command may replace it.
            check_output(&at(name), &[], true).unwrap();
        }
        check_output(&at("old.png"), &[&at("old.png")], true).unwrap();
        for force in [false, true] {
            let err = check_output(dir.path(), &[], force)
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a regular file"), "{err}");
        }
    }
}
