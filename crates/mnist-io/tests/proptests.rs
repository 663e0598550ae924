//! Hostile input never panics the reader: random byte strings, and random
//! mutations of a valid small IDX pair, raw and gzipped. Each property runs
//! 2000 cases and prints how many ran.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{gzip, small_pair};
use mnist_io::{Dataset, IdxError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const CASES: u32 = 2000;

/// Parses a pair of in-memory files; checks the invariants of any `Ok`.
fn parse(images: Vec<u8>, labels: Vec<u8>) -> Result<Dataset, IdxError> {
    let r = Dataset::from_idx_bytes(Path::new("imgs"), images, Path::new("lbls"), labels);
    match &r {
        Ok(d) => {
            assert_eq!(d.pixels().len(), d.len() * d.rows() * d.cols());
            assert_eq!(d.labels().len(), d.len());
            assert!(d.labels().iter().all(|&l| l < 10));
            assert!(d.rows() > 0 && d.cols() > 0);
            assert_eq!(d.label_histogram().iter().sum::<usize>(), d.len());
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("imgs") || msg.contains("lbls"), "{msg}");
        }
    }
    r
}

/// Runs `test` on `CASES` inputs from `strategy`; prints the count and the share of Ok.
fn run<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> bool) {
    let ran = AtomicUsize::new(0);
    let ok = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |v| {
        ran.fetch_add(1, Ordering::Relaxed);
        if test(v) {
            ok.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    println!(
        "{name}: {} cases ran ({} parsed Ok, the rest gave an IdxError)",
        ran.load(Ordering::Relaxed),
        ok.load(Ordering::Relaxed)
    );
    result.unwrap();
    assert!(ran.load(Ordering::Relaxed) >= CASES as usize);
}

/// Random bytes, sometimes after a prefix that gets the parser past its first checks.
fn hostile_file() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![
        Just(vec![]),
        Just(vec![0, 0, 8, 3]),
        Just(vec![0, 0, 8, 1]),
        Just(vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2]),
        Just(vec![0, 0, 8, 1, 0, 0, 0, 2]),
        Just(vec![0x1f, 0x8b, 8, 0]),
        // Complete headers of empty files: random bytes after them are trailing bytes,
        // no bytes at all is a valid empty data set.
        Just(vec![0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]),
        Just(vec![0, 0, 8, 1, 0, 0, 0, 0]),
    ];
    (
        prefix,
        prop_oneof![Just(vec![]), proptest::collection::vec(any::<u8>(), 0..64)],
    )
        .prop_map(|(mut p, rest)| {
            p.extend(rest);
            p
        })
}

#[test]
fn random_byte_strings_never_panic() {
    run(
        "random byte strings",
        (hostile_file(), hostile_file(), any::<bool>()),
        |(a, b, gz)| {
            let (a, b) = if gz { (gzip(&a), gzip(&b)) } else { (a, b) };
            parse(a, b).is_ok()
        },
    );
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Truncate { to: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    SetByte { at: usize, value: u8 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Positions are taken modulo the length when applied; small ones hit the header more.
    let pos = prop_oneof![0usize..24, any::<usize>()];
    prop_oneof![
        (pos.clone(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        pos.clone().prop_map(|to| Mutation::Truncate { to }),
        (pos.clone(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (pos.clone(), 1usize..8).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (
            pos,
            prop_oneof![Just(0u8), Just(0xff), Just(8), Just(10), any::<u8>()]
        )
            .prop_map(|(at, value)| Mutation::SetByte { at, value }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match *m {
        _ if n == 0 => {}
        Mutation::FlipBit { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::Truncate { to } => bytes.truncate(to % n),
        Mutation::Insert { at, bytes: ref ins } => {
            let at = at % (n + 1);
            bytes.splice(at..at, ins.iter().copied());
        }
        Mutation::Delete { at, len } => {
            let at = at % n;
            bytes.drain(at..(at + len).min(n));
        }
        Mutation::SetByte { at, value } => bytes[at % n] = value,
    }
}

#[test]
fn mutated_valid_pairs_never_panic() {
    // (number of images, which file, gzip the files, mutate before or after gzip, mutations)
    let strategy = (
        0usize..12,
        prop_oneof![Just("images"), Just("labels"), Just("both")],
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(mutation(), 1..4),
    );
    run(
        "mutations of a valid pair",
        strategy,
        |(n, which, gz, mutate_content, muts)| {
            let (mut img, mut lbl) = small_pair(n);
            let targets: Vec<&mut Vec<u8>> = match which {
                "images" => vec![&mut img],
                "labels" => vec![&mut lbl],
                _ => vec![&mut img, &mut lbl],
            };
            for t in targets {
                if gz && !mutate_content {
                    *t = gzip(t);
                }
                for m in &muts {
                    apply(t, m);
                }
                if gz && mutate_content {
                    *t = gzip(t);
                }
            }
            if gz {
                // Gzip whichever file was left plain, so both are gzipped.
                for t in [&mut img, &mut lbl] {
                    if !mnist_io::is_gzip(t) {
                        *t = gzip(t);
                    }
                }
            }
            parse(img, lbl).is_ok()
        },
    );
}

#[test]
fn mutated_files_on_disk_never_panic() {
    // The same through the file system: `load` with plain and `.gz` names.
    let dir = tempfile::tempdir().unwrap();
    let strategy = (
        1usize..6,
        any::<bool>(),
        proptest::collection::vec(mutation(), 1..3),
    );
    run(
        "mutated files loaded from disk",
        strategy,
        |(n, gz, muts)| {
            let (img, lbl) = small_pair(n);
            let (mut img, lbl) = if gz {
                (gzip(&img), gzip(&lbl))
            } else {
                (img, lbl)
            };
            for m in &muts {
                apply(&mut img, m);
            }
            let suffix = if gz { ".gz" } else { "" };
            for f in std::fs::read_dir(dir.path()).unwrap() {
                std::fs::remove_file(f.unwrap().path()).unwrap();
            }
            std::fs::write(
                dir.path().join(format!("train-images-idx3-ubyte{suffix}")),
                &img,
            )
            .unwrap();
            std::fs::write(
                dir.path().join(format!("train-labels-idx1-ubyte{suffix}")),
                &lbl,
            )
            .unwrap();
            match Dataset::load(dir.path(), mnist_io::Split::Train) {
                Ok(d) => {
                    assert_eq!(d.pixels().len(), d.len() * d.rows() * d.cols());
                    true
                }
                Err(e) => {
                    assert!(e.to_string().contains("train-"), "{e}");
                    false
                }
            }
        },
    );
}
