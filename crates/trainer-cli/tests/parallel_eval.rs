//! `evaluate` runs its batches in parallel on copies of the network;
//! `evaluate_each` runs them one after another on the network itself. For
//! every built-in config, with every parameter and running statistic moved
//! away from its initial value (so that a copy missing one would show), the
//! two give the same figures to the bit, on 1 and 2 threads.

use mnist_io::{Dataset, Split};
use trainer::config::{TrainConfig, BUILTIN};
use trainer::eval::{evaluate, evaluate_each};

mod common;

#[test]
fn parallel_evaluation_gives_the_bits_of_the_sequential_one() {
    let dir = tempfile::tempdir().unwrap();
    common::made_up_mnist(dir.path(), 40, 230);
    let train = Dataset::load(dir.path(), Split::Train).unwrap();
    let test = Dataset::load(dir.path(), Split::Test).unwrap();
    for (name, _) in BUILTIN {
        let config = TrainConfig::load(name).unwrap();
        let mut net = config.build_network().unwrap();
        let mut tensors = net.state_dict();
        for (k, (name, t)) in tensors.iter_mut().enumerate() {
            // A count stays a whole number (a fraction is refused on loading).
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            for (i, v) in t.as_slice_mut().unwrap().iter_mut().enumerate() {
                *v = *v * 1.1 + 0.01 * (1 + (i + k) % 7) as f32;
            }
        }
        net.load_state_dict(&tensors).unwrap();
        let norm = config.normalize(&train).unwrap();
        let sequential = evaluate_each(&mut net, &test, 25, norm, &mut |_| {}).unwrap();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let parallel = pool.install(|| evaluate(&net, &test, 25, norm)).unwrap();
            assert_eq!(
                parallel.loss.to_bits(),
                sequential.loss.to_bits(),
                "{name}, {threads} threads: loss {} against {}",
                parallel.loss,
                sequential.loss
            );
            assert_eq!(parallel, sequential, "{name}, {threads} threads");
        }
    }
}
