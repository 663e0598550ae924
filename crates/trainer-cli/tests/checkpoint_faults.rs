//! Hostile checkpoints and failing writes: clear errors, no panic, nothing lost.

use std::path::Path;

use proptest::prelude::*;
use trainer::checkpoint::{Checkpoint, PartialEpoch};
use trainer::config::TrainConfig;
use trainer::files::write_atomic;

mod common;

fn real_checkpoint() -> Vec<u8> {
    let config = TrainConfig::load("seed").unwrap();
    let net = config.build_network().unwrap();
    let opt = optim::Optimizer::new(config.optimizer.clone());
    Checkpoint::capture(
        &config,
        Some("mnist".into()),
        &net,
        opt.state(),
        0,
        PartialEpoch::default(),
        Vec::new(),
    )
    .to_bytes()
}

fn bytes() -> &'static [u8] {
    static B: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    B.get_or_init(real_checkpoint)
}

static CASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Overwrite(usize, Vec<u8>),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let n = bytes().len();
    prop_oneof![
        (0..n, 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (0..n).prop_map(Mutation::Truncate),
        // Header fields (magic, version, length) get most of the overwrites.
        (
            prop_oneof![0usize..24, 0..n],
            prop::collection::vec(any::<u8>(), 1..9)
        )
            .prop_map(|(i, v)| Mutation::Overwrite(i, v)),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
    ]
}

fn apply(m: &Mutation, mut b: Vec<u8>) -> Vec<u8> {
    match m {
        Mutation::Flip(i, bit) => b[*i] ^= 1 << bit,
        Mutation::Truncate(n) => b.truncate(*n),
        Mutation::Overwrite(i, v) => {
            for (k, x) in v.iter().enumerate() {
                if let Some(slot) = b.get_mut(i + k) {
                    *slot = *x;
                }
            }
        }
        Mutation::Append(v) => b.extend_from_slice(v),
    }
    b
}

/// Re-seals a mutated body with a valid checksum, so the decoder itself meets hostile bytes.
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    use sha2::Digest;
    if b.len() < 20 + 32 {
        return b;
    }
    let body_len = b.len() - 20 - 32;
    b[12..20].copy_from_slice(&(body_len as u64).to_le_bytes());
    let sum = sha2::Sha256::digest(&b[20..20 + body_len]);
    let n = b.len();
    b[n - 32..].copy_from_slice(&sum);
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn mutated_checkpoints_are_refused_without_panic(m in mutation()) {
        CASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mutated = apply(&m, bytes().to_vec());
        let result = Checkpoint::from_bytes(&mutated, Path::new("mutated.ckpt"));
        if mutated != bytes() {
            let err = result.err().map(|e| format!("{e:#}"));
            prop_assert!(err.as_ref().is_some_and(|e| e.contains("mutated.ckpt")), "accepted or unnamed: {:?}", err);
        }
    }

    #[test]
    fn hostile_bodies_with_valid_checksums_do_not_panic(m in mutation()) {
        CASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Skip mutations of the header: the body is the target here.
        let mutated = reseal(apply(&m, bytes().to_vec()));
        // Ok is possible (a flip inside a float); a panic or an abort is not.
        let _ = Checkpoint::from_bytes(&mutated, Path::new("resealed.ckpt"));
    }
}

#[test]
fn z_report_case_count() {
    // Runs after the properties in the usual alphabetical order; the count is informative only.
    println!(
        "mutated checkpoints tried so far in this binary: {}",
        CASES.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[test]
fn round_trip_is_exact_and_version_checked() {
    let b = bytes();
    let ck = Checkpoint::from_bytes(b, Path::new("a.ckpt")).unwrap();
    assert_eq!(ck.to_bytes(), b);
    let mut other = b.to_vec();
    other[8] = 9; // format version 9
    let err = format!(
        "{:#}",
        Checkpoint::from_bytes(&other, Path::new("v9.ckpt")).unwrap_err()
    );
    assert!(
        err.contains("version 9") && err.contains("v9.ckpt"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        Checkpoint::from_bytes(b"PK\x03\x04 a zip file", Path::new("x.zip")).unwrap_err()
    );
    assert!(err.contains("not a checkpoint"), "{err}");
}

#[test]
fn failed_write_leaves_the_previous_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.ckpt");
    write_atomic(&path, b"the good checkpoint").unwrap();
    // Make the temporary name unusable: a failing writer, as a full or read-only disk would be.
    std::fs::create_dir(dir.path().join(".last.ckpt.tmp")).unwrap();
    let err = format!(
        "{:#}",
        write_atomic(&path, b"half of a new one").unwrap_err()
    );
    assert!(
        err.contains("last.ckpt") && err.contains("cannot write"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"the good checkpoint");
}

#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing() {
    // A 64 KiB tmpfs is a disk that fills up. Mounting needs root; skip elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("skipping: cannot mount a small tmpfs here (not root?)");
        return;
    }
    let path = dir.path().join("last.ckpt");
    let attempt = || {
        write_atomic(&path, b"the good checkpoint").unwrap();
        let err = format!(
            "{:#}",
            write_atomic(&path, &vec![7u8; 1 << 20]).unwrap_err()
        );
        let kept = std::fs::read(&path).unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        (err, kept, leftovers)
    };
    let result = attempt();
    let _ = std::process::Command::new("umount")
        .arg(dir.path())
        .status();
    let (err, kept, leftovers) = result;
    assert!(
        err.contains("last.ckpt") && err.contains("No space left"),
        "{err}"
    );
    assert_eq!(kept, b"the good checkpoint");
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("last.ckpt")],
        "the temporary file must be removed"
    );
}

#[test]
fn run_directory_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    // Good data: it is loaded before the run directory is made.
    let data = dir.path().join("data");
    common::made_up_mnist(&data, 10, 10);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnn"))
        .arg("train")
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not-a-dir") && stderr.contains("run directory"),
        "{stderr}"
    );
}

#[test]
fn a_read_only_run_directory_is_a_clear_error_and_loses_nothing() {
    // chmod does not stop root, so make the file system itself read-only: a
    // tmpfs, written once, then remounted read-only. Needs root; skip elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let mount = |opts: &str| {
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !mount("size=1m") {
        println!("skipping: cannot mount a tmpfs here (not root?)");
        return;
    }
    let path = dir.path().join("last.ckpt");
    write_atomic(&path, b"the good checkpoint").unwrap();
    let remounted = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    let outcome = remounted.then(|| {
        let err = format!(
            "{:#}",
            write_atomic(&path, b"a newer checkpoint").unwrap_err()
        );
        (err, std::fs::read(&path).unwrap())
    });
    let _ = std::process::Command::new("umount")
        .arg(dir.path())
        .status();
    let Some((err, kept)) = outcome else {
        println!("skipping: cannot remount read-only here");
        return;
    };
    assert!(
        err.contains("last.ckpt") && err.contains("Read-only file system"),
        "{err}"
    );
    assert_eq!(kept, b"the good checkpoint");
}

/// `--model runs/seed` (the run directory) instead of a checkpoint file: the
/// error says a file is expected and names the checkpoints the directory holds.
#[test]
fn a_directory_given_as_checkpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = format!("{:#}", Checkpoint::load(dir.path()).unwrap_err());
    assert!(
        err.contains(&format!("{}: a directory; expected a checkpoint file (a run directory's best.ckpt or last.ckpt)", dir.path().display())),
        "{err}"
    );
    std::fs::write(dir.path().join("best.ckpt"), bytes()).unwrap();
    let err = format!("{:#}", Checkpoint::load(dir.path()).unwrap_err());
    let best = dir.path().join("best.ckpt");
    assert!(
        err.ends_with(&format!(
            "expected a checkpoint file, e.g. {}",
            best.display()
        )),
        "{err}"
    );
}
