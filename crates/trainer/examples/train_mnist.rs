//! Trains the post's network (config `seed`) on MNIST with the trainer as a
//! library: the data, the network, the step and the optimizer, in a loop.
//!
//!     cargo run --release -p trainer --example train_mnist -- data/mnist [IMAGES] [EPOCHS]
//!
//! Each step here is the plain one, `trainer::step::step`: the batch's
//! micro-batches one after another on one network. `cnn train` runs the same
//! step on both cores with `trainer::parallel::DataParallel`, which gives the
//! same bits, and adds checkpoints, metrics and resuming.
use mnist_io::{batches, epoch_order};
use optim::Optimizer;
use trainer::batch::DatasetBatch;
use trainer::config::TrainConfig;
use trainer::data::DataSets;
use trainer::eval::evaluate;
use trainer::step::{first_non_finite, step};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "data/mnist".into());
    let images: usize = args.next().map_or(Ok(60_000), |s| s.parse())?;
    let epochs: u64 = args.next().map_or(Ok(1), |s| s.parse())?;

    let config = TrainConfig::load("seed")?; // the post's network and SGD settings
    let data = DataSets::load(&dir)?;
    let train_set = data
        .train
        .subset(&(0..images.min(data.train.len())).collect::<Vec<_>>());
    let normalize = config.normalize(&train_set)?; // how pixel bytes become inputs
    let mut net = config.build_network()?;
    let mut optimizer = Optimizer::new(config.optimizer.clone()); // its learning rate too
    let loss = config.loss_fn();
    let t = &config.training;

    for epoch in 0..epochs {
        let order = epoch_order(train_set.len(), t.seed, epoch);
        for (b, indices) in batches(&order, t.batch) {
            let batch = DatasetBatch {
                data: &train_set,
                indices,
                normalize,
                augment: None, // the seed config moves no image
            };
            // The step's key seeds its random streams (dropout; the seed network has none).
            let key = epoch << 32 | b as u64;
            step(&mut net, &loss, &batch, t.micro_batch, key, &mut optimizer)?;
            if let Some(name) = first_non_finite(&net) {
                anyhow::bail!(
                    "epoch {} batch {b}: `{name}` is no longer finite",
                    epoch + 1
                );
            }
        }
        let test = evaluate(&net, &data.test, 1000, normalize)?;
        println!(
            "epoch {}: test accuracy {:.2}%",
            epoch + 1,
            100.0 * test.accuracy
        );
    }
    Ok(())
}
