//! Before the first step: would any micro-batch of any epoch leave a
//! batch-norm layer fewer than two values per channel to take a variance
//! of? The sizes are fixed by the data set, `batch` and `micro_batch`, so
//! the answer is known before training, not at the last batch of an epoch.

use anyhow::{bail, Result};
use layers::Network;

use crate::config::TrainConfig;
use crate::step::micro_batches;

/// The sizes of the micro-batches an epoch of `n` examples is cut into:
/// those of a full batch, and those of the shorter last batch if any.
pub(crate) fn micro_batch_sizes(n: usize, batch: usize, micro_batch: usize) -> Vec<usize> {
    let batch = batch.max(1);
    let mut sizes: Vec<usize> = Vec::new();
    for b in [n.min(batch), n % batch] {
        sizes.extend(micro_batches(b, micro_batch).map(|r| r.len()));
    }
    sizes.retain(|&s| s > 0);
    sizes
}

/// The fewest values per channel a batch-norm layer of `net` gets from one
/// example (`H x W` for `batch_norm2d`, 1 for `batch_norm1d`), with its name.
fn batch_norm_values_per_example(net: &Network) -> Option<(usize, String)> {
    let inputs =
        std::iter::once(net.config().input.clone()).chain(net.output_shapes().iter().cloned());
    net.layers()
        .iter()
        .zip(inputs)
        .filter(|(layer, _)| layer.kind().starts_with("batch_norm"))
        .map(|(layer, shape)| {
            (
                shape.iter().skip(1).product::<usize>(),
                layer.name().to_string(),
            )
        })
        .min_by_key(|(values, _)| *values)
}

/// Refuses a run in which some micro-batch would be too small for batch
/// norm, naming the sizes and the fix.
pub(crate) fn check_micro_batches(config: &TrainConfig, net: &Network, n: usize) -> Result<()> {
    let Some((per_example, layer)) = batch_norm_values_per_example(net) else {
        return Ok(());
    };
    let t = &config.training;
    let Some(&smallest) = micro_batch_sizes(n, t.batch, t.micro_batch).iter().min() else {
        return Ok(());
    };
    if smallest * per_example >= 2 {
        return Ok(());
    }
    let last = n % t.batch.max(1);
    bail!(
        "training.batch = {} and training.micro_batch = {} cut the {n} training images into micro-batches as small as {smallest} example (the last batch of each epoch has {last}); batch norm layer `{layer}` needs at least 2 values per channel, {per_example} per example: choose a batch (and micro_batch) that leaves no micro-batch of 1, e.g. batch = {}, or a --train-subset that batch divides",
        t.batch,
        t.micro_batch,
        suggest_batch(n, t.batch, t.micro_batch),
    )
}

/// The batch size nearest `batch` (down, then up) whose micro-batches all have 2 examples or more.
fn suggest_batch(n: usize, batch: usize, micro_batch: usize) -> usize {
    let ok = |b: usize| micro_batch_sizes(n, b, micro_batch).iter().all(|&s| s >= 2);
    (1..=batch.max(2))
        .rev()
        .chain(batch + 1..=n.max(batch + 1))
        .find(|&b| b >= 2 && ok(b))
        .unwrap_or(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_those_of_a_full_and_the_last_batch() {
        assert_eq!(micro_batch_sizes(10, 4, 4), vec![4, 2]);
        assert_eq!(micro_batch_sizes(9, 4, 3), vec![3, 1, 1]);
        assert_eq!(micro_batch_sizes(8, 4, 4), vec![4]);
        assert_eq!(micro_batch_sizes(3, 8, 2), vec![2, 1, 2, 1]);
        assert_eq!(suggest_batch(9, 4, 4), 3);
    }

    #[test]
    fn a_micro_batch_of_one_before_batch_norm_1d_is_refused_with_the_fix() {
        let mut config = TrainConfig::load("modern").unwrap();
        let net = config.build_network().unwrap();
        assert!(net.layers().iter().any(|l| l.kind() == "batch_norm1d"));
        config.training.batch = 4;
        config.training.micro_batch = 4;
        check_micro_batches(&config, &net, 8).unwrap();
        let err = check_micro_batches(&config, &net, 9)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("training.batch = 4")
                && err.contains("9 training images")
                && err.contains("batch = 3"),
            "{err}"
        );
    }
}
