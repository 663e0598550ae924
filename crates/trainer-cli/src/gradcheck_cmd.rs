//! `cnn gradcheck`: every layer of a configured network against central differences.

use anyhow::{anyhow, Result};
use layers::gradcheck::{check_layer, check_loss, well_spaced, GradCheck, GradCheckOptions};
use tensor::{Rng, Tensor};

use trainer::config::TrainConfig;

/// One layer's worst relative errors.
pub struct LayerReport {
    /// Layer position and name, e.g. `3 conv2`.
    pub(crate) layer: String,
    /// Kind, e.g. `conv2d`.
    pub(crate) kind: String,
    /// One line per checked tensor.
    pub(crate) checks: Vec<GradCheck>,
}

/// Checks each layer alone, on a random batch of its input shape, and the loss.
pub fn run(config: &TrainConfig, batch: usize, seed: u64) -> Result<Vec<LayerReport>> {
    let mut rng = Rng::seed_from_u64(seed);
    let net = config.network.build(&mut rng).map_err(|e| anyhow!("{e}"))?;
    let mut shape = config.network.input.to_vec();
    let mut reports = Vec::new();
    let mut layers_built: Vec<Box<dyn layers::Layer>> = config
        .network
        .layers
        .iter()
        .zip(config.network.layer_names())
        .map(|(c, n)| c.build(&n, &mut Rng::seed_from_u64(seed)))
        .collect();
    for (i, layer) in layers_built.iter_mut().enumerate() {
        // 1-d batch norm on a batch of at least 256: with two examples its
        // output does not depend on its input (x̂ = ±1), nothing to check,
        // and with few the rounding of the difference is coarse.
        let batch = if layer.kind() == "batch_norm1d" {
            batch.max(256)
        } else {
            batch
        };
        let mut full = vec![batch];
        full.extend_from_slice(&shape);
        let x = Tensor::from_shape_vec(full.clone(), well_spaced(full.iter().product(), &mut rng))
            .expect("shape matches");
        let opts = GradCheckOptions::for_layer(layer.kind(), x.shape());
        let checks = check_layer(layer.as_mut(), &x, &mut rng, opts).map_err(|e| anyhow!("{e}"))?;
        reports.push(LayerReport {
            layer: format!("{} {}", i + 1, layer.name()),
            kind: layer.kind().to_string(),
            checks,
        });
        shape = net.output_shapes()[i].clone();
    }
    let classes = net.outputs();
    let logits = Tensor::from_shape_fn(vec![batch, classes], |_| rng.uniform(-3.0, 3.0) as f32);
    let labels: Vec<usize> = (0..batch)
        .map(|_| rng.below(classes as u64) as usize)
        .collect();
    let mut target = Tensor::zeros(vec![0]);
    layers::one_hot_into(&labels, classes, &mut target);
    let check = check_loss(config.loss_fn(), &logits, &target, 1e-3).map_err(|e| anyhow!("{e}"))?;
    reports.push(LayerReport {
        layer: "loss".into(),
        kind: config.loss_fn().name().into(),
        checks: vec![check],
    });
    Ok(reports)
}

/// The reports as a table, and whether every tensor passed: its largest error
/// below `tolerance`, and at most one sampled component in ten skipped as near
/// a kink (more would mean the check saw too little of the tensor to vouch for it).
pub fn table(reports: &[LayerReport], tolerance: f64) -> (String, bool) {
    let mut s = format!(
        "{:<14} {:<24} {:<14} {:>8} {:>9} {:>12}\n",
        "layer", "kind", "tensor", "checked", "near kink", "max rel err"
    );
    let mut ok = true;
    for r in reports {
        for c in &r.checks {
            let flag = if c.checked == 0 || 10 * c.skipped > c.checked + c.skipped {
                "  <-- FAIL: too many components near a kink"
            } else if c.max_rel_error >= tolerance {
                "  <-- FAIL"
            } else {
                ""
            };
            ok &= flag.is_empty();
            s.push_str(&format!(
                "{:<14} {:<24} {:<14} {:>8} {:>9} {:>12.2e}{flag}\n",
                r.layer, r.kind, c.tensor, c.checked, c.skipped, c.max_rel_error
            ));
        }
    }
    (s, ok)
}
