//! `cargo bench -p trainer --bench step`: the plain training step against
//! the data-parallel one, on the seed network and batches of random images
//! (the work does not depend on the pixels). Rounds alternate the two; each
//! line is the median milliseconds per step of one round. Set
//! `RAYON_NUM_THREADS` for the thread count.
//!
//! A plain harness (`harness = false`), as `im2col`'s benchmarks.

use std::time::Instant;

use mnist_io::{batches, epoch_order, Dataset};
use optim::Optimizer;
use trainer::batch::DatasetBatch;
use trainer::config::TrainConfig;
use trainer::parallel::DataParallel;
use trainer::step::step;

const STEPS: usize = 100;
const ROUNDS: usize = 3;

fn main() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut byte = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 56) as u8
    };
    let n = 2000;
    let pixels = (0..n * 784).map(|_| byte()).collect();
    let labels = (0..n).map(|_| byte() % 10).collect();
    let data = Dataset::from_parts(pixels, labels, 28, 28).expect("a valid data set");
    let config = TrainConfig::load("seed").expect("the built-in config");
    let t = &config.training;
    let order = epoch_order(n, t.seed, 0);
    let all: Vec<&[usize]> = batches(&order, t.batch).map(|(_, b)| b).collect();
    println!(
        "seed network, batch {}, micro-batches of {}, {} threads",
        t.batch,
        t.micro_batch,
        rayon::current_num_threads()
    );
    for round in 1..=ROUNDS {
        for parallel in [false, true] {
            let mut net = config.build_network().expect("the seed network");
            let mut optimizer = Optimizer::new(config.optimizer.clone());
            let mut dp = DataParallel::new(t.micro_batch);
            let mut times: Vec<f64> = (0..STEPS)
                .map(|s| {
                    let batch = DatasetBatch {
                        data: &data,
                        indices: all[s % all.len()],
                        normalize: None,
                        augment: None,
                    };
                    let (loss, key) = (config.loss_fn(), s as u64);
                    let start = Instant::now();
                    let r = match parallel {
                        false => step(&mut net, &loss, &batch, t.micro_batch, key, &mut optimizer),
                        true => dp.step(&mut net, &loss, &batch, key, &mut optimizer),
                    };
                    r.expect("a step");
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let name = if parallel { "data-parallel" } else { "plain" };
            println!(
                "round {round} {name:<14} median {:.3} ms per step",
                times[STEPS / 2]
            );
        }
    }
}
