//! `--conv`: the convolution algorithm chosen on the command line reaches
//! every conv layer, `cnn gradcheck` passes on each, and `cnn bench` says
//! which one each layer took.

mod common;
use common::cnn;

/// Whether this machine runs the direct algorithm (x86-64 with AVX2 and FMA).
fn direct_runs_here() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[test]
fn gradcheck_passes_with_each_algorithm() {
    for conv in ["im2col", "direct", "auto"] {
        let (ok, stdout, stderr) = cnn(&["gradcheck", "--config", "seed", "--conv", conv]);
        assert!(ok, "--conv {conv}:\n{stdout}\n{stderr}");
        assert!(
            stdout.contains("conv2d") && stdout.contains("all gradients agree"),
            "{stdout}"
        );
    }
}

#[test]
fn bench_prints_the_path_each_conv_layer_took() {
    let direct = if direct_runs_here() {
        "direct"
    } else {
        "im2col"
    };
    for (conv, expected) in [("im2col", "im2col"), ("direct", direct), ("auto", direct)] {
        let (ok, stdout, stderr) = cnn(&[
            "bench",
            "--conv",
            conv,
            "--batch",
            "4",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--eval-images",
            "8",
        ]);
        assert!(ok, "--conv {conv}:\n{stderr}");
        for layer in ["conv1", "conv2"] {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(layer))
                .unwrap_or_else(|| panic!("no {layer} row:\n{stdout}"));
            assert!(
                line.contains(&format!("conv2d/{expected} ")),
                "--conv {conv}: {line}"
            );
        }
    }
}

#[test]
fn an_unknown_algorithm_is_refused_with_the_choices() {
    let (ok, _, stderr) = cnn(&["gradcheck", "--conv", "fft"]);
    assert!(!ok);
    assert!(
        stderr.contains("`fft` is not a convolution algorithm (auto, im2col, direct)"),
        "{stderr}"
    );
}
