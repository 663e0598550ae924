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
//! Metric, per tensor: max |ours − PyTorch| / max |PyTorch| (the error
//! relative to the tensor's largest magnitude), required ≤ 1e-4.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use layers::one_hot_into;
use tensor::Tensor;
use trainer::checkpoint::Checkpoint;
use trainer::config::TrainConfig;
use trainer::safetensors_io;

const TOLERANCE: f64 = 1e-4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// max |a − b| / max |b| (0 when both are all zero).
fn rel_error(ours: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(ours.shape(), want.shape());
    let scale = want.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
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

    // The weights only, through `cnn import`.
    let param_names: Vec<String> = cfg
        .build_network()
        .unwrap()
        .named_params()
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
    let n = safetensors_io::import(config_str, &st, &ckpt_path).unwrap();
    assert_eq!(n, param_names.len());
    let ckpt = Checkpoint::load(&ckpt_path).unwrap();
    assert_eq!(ckpt.body.epochs_done, 0);
    assert!(ckpt.body.history.is_empty());
    let mut net = ckpt.network().unwrap();

    // And the same network through `load_model` straight from the safetensors file.
    let (net2, _) = safetensors_io::load_model(&st, Some(config_str)).unwrap();
    assert_eq!(net2.named_params(), weights);

    let input = &t["input"];
    let labels: Vec<usize> = t["labels"].iter().map(|&v| v as usize).collect();
    let classes = net.outputs();
    let logits = net.forward(input).unwrap().clone();
    let mut target = Tensor::zeros(vec![0]);
    one_hot_into(&labels, classes, &mut target);
    let mut grad = Tensor::zeros(vec![0]);
    let loss = cfg
        .loss_fn()
        .forward_backward(&logits, &target, &mut grad)
        .unwrap();
    net.backward(&grad).unwrap();

    let want_logits = &t["logits"];
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
    assert_eq!(grads.len(), param_names.len());
    for (name, g) in &grads {
        let want = t
            .get(&format!("grad.{name}"))
            .unwrap_or_else(|| panic!("fixture has no grad.{name}"));
        report.push((format!("grad.{name}"), rel_error(g, want)));
    }
    println!(
        "{} against PyTorch (max |ours - torch| / max |torch|):",
        fixture.display()
    );
    for (name, e) in &report {
        println!("  {name:<20} {e:.2e}");
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

/// The full seed network, when a fixture for it was generated locally:
/// `python3 xtask/pytorch/reference.py --data data/mnist --out /tmp/pytorch_seed_full.safetensors`
/// then `PYTORCH_SEED_FULL=/tmp/pytorch_seed_full.safetensors cargo test -p trainer-cli --test pytorch_reference`.
#[test]
fn full_seed_network_matches_pytorch_when_a_fixture_is_given() {
    let Some(path) = std::env::var_os("PYTORCH_SEED_FULL") else {
        println!("skipping: PYTORCH_SEED_FULL names no full seed-network fixture");
        return;
    };
    let seed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/seed.toml");
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
