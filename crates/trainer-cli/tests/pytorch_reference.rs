//! Our forward and backward pass against PyTorch's, on the committed fixture
//! `tests/fixtures/pytorch_seed.safetensors` (written by
//! `xtask/pytorch/reference.py` for the reduced seed network of
//! `tests/fixtures/pytorch_small.toml`: same layer kinds, final ReLU
//! included, 4 real MNIST test images, PyTorch in double precision).
//!
//! The weights go through `cnn import`'s code (a safetensors file laid out as
//! PyTorch's `state_dict`, then a checkpoint), so this also proves the
//! names and layouts match PyTorch's.
//!
//! The same for `tests/fixtures/pytorch_modern.safetensors`, the reduced
//! modern network of `tests/fixtures/pytorch_modern_small.toml` (batch norm 2d
//! and 1d, dropout), in training mode as the training step runs it: dropout's
//! masks from the fixture's `noise_seed` (the script draws them with our
//! generator), batch norm on the batch's statistics. Then the running
//! statistics after that pass, and the logits in evaluation mode.
//!
//! Metric, per tensor: max |ours − PyTorch| / max |PyTorch| (the error
//! relative to the tensor's largest magnitude), required ≤ 1e-4. A gradient
//! that is zero in exact arithmetic (a bias right before batch norm: the
//! normalisation removes any shift), which PyTorch in double precision gives
//! as values below 10⁻⁹ of the largest gradient, is measured against that
//! largest gradient instead: ours must be rounding noise too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use layers::one_hot_into;
use tensor::{Rng, Tensor};
use trainer::checkpoint::Checkpoint;
use trainer::config::TrainConfig;
use trainer::safetensors_io;

const TOLERANCE: f64 = 1e-4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// max |a − b| / max |b| (0 when both are all zero).
fn rel_error(ours: &Tensor, want: &Tensor) -> f64 {
    rel_error_floor(ours, want, 0.0)
}

/// max |a − b| / max(max |b|, floor).
fn rel_error_floor(ours: &Tensor, want: &Tensor, floor: f64) -> f64 {
    assert_eq!(ours.shape(), want.shape());
    let scale = want.iter().fold(floor, |m, &v| m.max(f64::from(v).abs()));
    let diff = ours.iter().zip(want.iter()).fold(0f64, |m, (&a, &b)| {
        m.max((f64::from(a) - f64::from(b)).abs())
    });
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

fn check(fixture: &Path, config: &Path) {
    let file = safetensors_io::read(fixture).unwrap();
    let t = &file.tensors;
    let config_str = config.to_str().unwrap();
    let cfg = TrainConfig::load(config_str).unwrap();

    // The weights (and running statistics) only, through `cnn import`.
    let param_names: Vec<String> = cfg
        .build_network()
        .unwrap()
        .state_dict()
        .into_keys()
        .collect();
    let weights: BTreeMap<String, Tensor> = param_names
        .iter()
        .map(|n| (n.clone(), t[n].clone()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("weights.safetensors");
    let ckpt_path = dir.path().join("imported.ckpt");
    safetensors_io::write(&st, &weights, &BTreeMap::new()).unwrap();
    let n = safetensors_io::import(config_str, &st, &ckpt_path, false).unwrap();
    assert_eq!(n, param_names.len());
    let ckpt = Checkpoint::load(&ckpt_path).unwrap();
    assert_eq!(ckpt.body.epochs_done, 0);
    assert!(ckpt.body.history.is_empty());
    let mut net = ckpt.network().unwrap();

    // And the same network through `load_model` straight from the safetensors file.
    let (net2, _) = safetensors_io::load_model(&st, Some(config_str)).unwrap();
    assert_eq!(net2.state_dict(), weights);

    let input = &t["input"];
    let labels: Vec<usize> = t["labels"].iter().map(|&v| v as usize).collect();
    let classes = net.outputs();
    // Training mode when the fixture says which random stream the masks came from.
    let noise_seed: Option<u64> = file.metadata.get("noise_seed").map(|s| s.parse().unwrap());
    let logits = match noise_seed {
        Some(seed) => net
            .forward_train_with_noise(input, &mut Rng::seed_from_u64(seed))
            .unwrap()
            .clone(),
        None => net.forward(input).unwrap().clone(),
    };
    let mut target = Tensor::zeros(vec![0]);
    one_hot_into(&labels, classes, &mut target);
    let mut grad = Tensor::zeros(vec![0]);
    let loss = cfg
        .loss_fn()
        .forward_backward(&logits, &target, &mut grad)
        .unwrap();
    net.backward(&grad).unwrap();

    let want_logits = &t["logits"];
    let final_relu = matches!(
        cfg.network.layers.last(),
        Some(layers::LayerConfig::Relu(_))
    );
    if final_relu {
        let zeros = want_logits.iter().filter(|&&v| v == 0.0).count();
        let positive = want_logits.iter().filter(|&&v| v > 0.0).count();
        assert!(
            zeros > 0 && positive > 0,
            "the fixture's logits must mix zeros ({zeros}) and positive values ({positive}) to test the final ReLU"
        );
        // The final ReLU's mask is the same: zero where PyTorch has zero.
        for (a, b) in logits.iter().zip(want_logits.iter()) {
            assert_eq!(*a == 0.0, *b == 0.0, "logit {a} vs PyTorch {b}");
        }
    }

    let mut report = vec![("logits".to_string(), rel_error(&logits, want_logits))];
    let want_loss = f64::from(t["loss"][[0]]);
    report.push((
        "loss".to_string(),
        (loss - want_loss).abs() / want_loss.abs(),
    ));
    let mut grads = BTreeMap::new();
    for p in net.params() {
        grads.insert(p.name.clone(), p.grad.clone());
    }
    assert_eq!(grads.len() + net.buffers().len(), param_names.len());
    let want_grad = |name: &str| {
        t.get(&format!("grad.{name}"))
            .unwrap_or_else(|| panic!("fixture has no grad.{name}"))
    };
    let largest = grads.keys().fold(0f64, |m, name| {
        want_grad(name)
            .iter()
            .fold(m, |m, &v| m.max(f64::from(v).abs()))
    });
    for (name, g) in &grads {
        let want = want_grad(name);
        let zero = want.iter().all(|&v| f64::from(v).abs() < 1e-9 * largest);
        let e = rel_error_floor(g, want, if zero { largest } else { 0.0 });
        report.push((format!("grad.{name}"), e));
    }
    if noise_seed.is_some() {
        // The running statistics the training pass left, then evaluation with them.
        let buffers = net.buffers();
        assert!(
            !buffers.is_empty(),
            "a training-mode fixture of a network without batch norm"
        );
        for b in buffers {
            let want = t
                .get(&format!("after.{}", b.name))
                .unwrap_or_else(|| panic!("fixture has no after.{}", b.name));
            report.push((format!("after.{}", b.name), rel_error(&b.value, want)));
        }
        let eval = net.forward(input).unwrap().clone();
        report.push((
            "logits_eval".to_string(),
            rel_error(&eval, &t["logits_eval"]),
        ));
    }
    println!(
        "{} against PyTorch (max |ours - torch| / max |torch|):",
        fixture.display()
    );
    for (name, e) in &report {
        println!("  {name:<32} {e:.2e}");
    }
    let worst = report.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert!(
        worst.1 <= TOLERANCE,
        "{} differs from PyTorch by {:.2e} (relative) > {TOLERANCE:e}",
        worst.0,
        worst.1
    );
}

#[test]
fn reduced_seed_network_matches_pytorch() {
    let dir = fixtures();
    check(
        &dir.join("pytorch_seed.safetensors"),
        &dir.join("pytorch_small.toml"),
    );
}

#[test]
fn reduced_modern_network_matches_pytorch_in_training_mode() {
    let dir = fixtures();
    check(
        &dir.join("pytorch_modern.safetensors"),
        &dir.join("pytorch_modern_small.toml"),
    );
}

/// The full seed network, when a fixture for it was generated locally:
/// `python3 xtask/pytorch/reference.py --data data/mnist --out /tmp/pytorch_seed_full.safetensors`
/// then `PYTORCH_SEED_FULL=/tmp/pytorch_seed_full.safetensors cargo test -p trainer-cli --test pytorch_reference`.
#[test]
fn full_seed_network_matches_pytorch_when_a_fixture_is_given() {
    let Some(path) = std::env::var_os("PYTORCH_SEED_FULL") else {
        println!("skipping: PYTORCH_SEED_FULL names no full seed-network fixture");
        return;
    };
    let seed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../trainer/configs/seed.toml");
    check(Path::new(&path), &seed);
}

#[test]
fn the_fixture_loads_as_a_pytorch_state_dict_would() {
    // Every tensor the network needs, with PyTorch's names and shapes.
    let file = safetensors_io::read(&fixtures().join("pytorch_seed.safetensors")).unwrap();
    let shapes: BTreeMap<&str, Vec<usize>> = file
        .tensors
        .iter()
        .map(|(k, v)| (k.as_str(), v.shape().to_vec()))
        .collect();
    assert_eq!(shapes["conv1.weight"], vec![4, 1, 3, 3]);
    assert_eq!(shapes["conv2.weight"], vec![8, 4, 3, 3]);
    assert_eq!(shapes["fc1.weight"], vec![32, 392]);
    assert_eq!(shapes["fc2.bias"], vec![10]);
    assert_eq!(file.metadata.get("format").map(String::as_str), Some("pt"));
}
