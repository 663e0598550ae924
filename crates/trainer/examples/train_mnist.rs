//! Trains the post's network (config `seed`) on MNIST with the trainer as a
//! library: the data, the network, the step and the optimizer, in a loop.
//!
//!     cargo run --release -p trainer --example train_mnist -- data/mnist [IMAGES] [EPOCHS]
//!
//! `cnn train` does the same, with checkpoints, metrics and resuming.
use mnist_io::{batches, epoch_order};
use optim::Optimizer;
use trainer::config::TrainConfig;
use trainer::data::{DataSets, DatasetBatch};
use trainer::eval::evaluate;
use trainer::step::DataParallel;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "data/mnist".into());
    let images: usize = args.next().map_or(Ok(60_000), |s| s.parse())?;
    let epochs: u64 = args.next().map_or(Ok(1), |s| s.parse())?;

    let config = TrainConfig::load("seed")?; // the post's network and SGD settings
    let data = DataSets::load(dir.as_ref())?;
    let train_set = data
        .train
        .subset(&(0..images.min(data.train.len())).collect::<Vec<_>>());
    let norm = config.input_norm(&train_set); // how pixel bytes become inputs
    let mut net = config.build_network()?;
    let mut optimizer = Optimizer::new(config.optimizer.clone());
    let mut step = DataParallel::new(config.training.micro_batch);
    let (loss, lr) = (config.loss_fn(), config.optimizer.lr());

    for epoch in 0..epochs {
        let order = epoch_order(train_set.len(), config.training.seed, epoch);
        for (b, indices) in batches(&order, config.training.batch) {
            let batch = DatasetBatch {
                data: &train_set,
                indices,
                norm,
                augment: None, // the seed config moves no image
            };
            // The step's key: it seeds dropout's masks (the seed network has none).
            let key = epoch << 32 | b as u64;
            step.step(&mut net, &loss, &batch, &mut optimizer, lr, key)?;
        }
        let test = evaluate(&net, &data.test, 1000, norm)?;
        println!(
            "epoch {}: test accuracy {:.2}%",
            epoch + 1,
            100.0 * test.accuracy
        );
    }
    Ok(())
}
