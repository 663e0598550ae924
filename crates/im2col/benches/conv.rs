//! `cargo bench -p im2col`: the convolution and pooling kernels at the seed
//! network's shapes (batch 100), against the nested-loop reference.
//!
//! A plain harness (`harness = false`), not criterion: criterion's dependency
//! tree would be the biggest part of this workspace's build for a table of
//! medians. Each kernel runs a few warm-up calls, then `REPS` timed calls;
//! the table gives the median and the fastest call, and GFLOP/s of the median.
//! `--quick` (or `QUICK=1`) runs fewer repetitions; any other argument
//! selects the rows whose name contains it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use im2col::{
    pool, reference, Activation, ConvAlgorithm, ConvGeometry, ConvGrads, Convolution, PoolGeometry,
};

const BATCH: usize = 100;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

struct Bench {
    reps: usize,
    filter: Vec<String>,
}

impl Bench {
    fn run(&self, name: &str, flops: f64, reps: usize, mut f: impl FnMut()) {
        if !self.filter.is_empty() && !self.filter.iter().any(|p| name.contains(p.as_str())) {
            return;
        }
        let reps = reps.min(self.reps).max(1);
        for _ in 0..reps.min(3) {
            f();
        }
        let mut times: Vec<Duration> = (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect();
        times.sort();
        let median = times[times.len() / 2];
        let gflops = if flops > 0.0 {
            format!("{:8.2}", flops / median.as_secs_f64() / 1e9)
        } else {
            format!("{:>8}", "")
        };
        println!(
            "{name:<50} {:>10.1} {:>10.1} {gflops}",
            median.as_secs_f64() * 1e6,
            times[0].as_secs_f64() * 1e6
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let quick = args.iter().any(|a| a == "--quick") || std::env::var_os("QUICK").is_some();
    let bench = Bench {
        reps: if quick { 10 } else { 200 },
        filter: args.into_iter().filter(|a| !a.starts_with("--")).collect(),
    };
    println!(
        "{:<50} {:>10} {:>10} {:>8}",
        "kernel (batch 100)", "median us", "min us", "GFLOP/s"
    );
    let convs = [
        (
            "conv1 1->8 28x28",
            ConvGeometry::builder(1, 8, 3)
                .input(28, 28)
                .pad(1)
                .build()
                .unwrap(),
        ),
        (
            "conv2 8->16 14x14",
            ConvGeometry::builder(8, 16, 3)
                .input(14, 14)
                .pad(1)
                .build()
                .unwrap(),
        ),
    ];
    for (name, g) in convs {
        let x = values(BATCH * g.in_size(), 1);
        let w = values(g.weight_len(), 2);
        let b = values(g.out_channels, 3);
        let dy = values(BATCH * g.out_size(), 4);
        let mut y = vec![0.0; dy.len()];
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
        let f = (g.forward_flops() * BATCH as u64) as f64;
        for algorithm in [ConvAlgorithm::Im2col, ConvAlgorithm::Direct] {
            if algorithm.resolve(&g) != algorithm {
                continue; // Direct needs AVX2 and FMA
            }
            let name = format!("{name} {algorithm:?}");
            let mut conv = Convolution::new(algorithm);
            bench.run(&format!("{name} forward"), f, 200, || {
                let cache = conv.forward(&g, BATCH, &x, &w, &b, Activation::Identity, &mut y);
                conv.recycle(cache); // no backward pass: the next forward reuses the buffers
                black_box(&y);
            });
            bench.run(
                &format!("{name} forward + backward (dW, db)"),
                2.0 * f,
                200,
                || {
                    let cache = conv.forward(&g, BATCH, &x, &w, &b, Activation::Identity, &mut y);
                    let grads = ConvGrads {
                        input: None,
                        weight: &mut dw,
                        bias: &mut db,
                    };
                    conv.backward(cache, &w, None, &dy, grads);
                    black_box(&dw);
                },
            );
            bench.run(
                &format!("{name} forward + backward (dx, dW, db)"),
                3.0 * f,
                200,
                || {
                    let cache = conv.forward(&g, BATCH, &x, &w, &b, Activation::Identity, &mut y);
                    let grads = ConvGrads {
                        input: Some(&mut dx),
                        weight: &mut dw,
                        bias: &mut db,
                    };
                    conv.backward(cache, &w, None, &dy, grads);
                    black_box(&dx);
                },
            );
        }
        bench.run(&format!("{name} reference forward"), f, 5, || {
            black_box(reference::conv2d_forward(&g, BATCH, &x, &w, &b));
        });
        bench.run(&format!("{name} reference backward"), 2.0 * f, 5, || {
            black_box(reference::conv2d_backward(&g, BATCH, &x, &w, &dy));
        });
    }
    // fc1: 784 -> 256, batch 100.
    let (n, i, o) = (BATCH, 784, 256);
    if im2col::dense_available(i, o) {
        let x = values(n * i, 5);
        let w = values(o * i, 6);
        let b = values(o, 7);
        let dy = values(n * o, 8);
        let (mut y, mut dx, mut dw) = (vec![0.0; n * o], vec![0.0; n * i], vec![0.0; o * i]);
        let mut s = im2col::DenseScratch::default();
        let f = 2.0 * (n * i * o) as f64;
        bench.run("fc1 784->256 dense forward", f, 200, || {
            im2col::dense_forward(n, i, o, &x, &w, &b, &mut y, &mut s);
            black_box(&y);
        });
        bench.run("fc1 784->256 dense backward (dx, dW)", 2.0 * f, 200, || {
            im2col::dense_backward(n, i, o, &x, &w, &dy, Some(&mut dx), &mut dw, &mut s);
            black_box(&dw);
        });
        bench.run("fc1 784->256 reference forward", f, 5, || {
            black_box(reference::dense_forward(n, i, o, &x, &w, &b));
        });
    }
    let pools = [
        (
            "pool1 8x28x28",
            PoolGeometry::new(8, 28, 28, 2, 2, 0).unwrap(),
        ),
        (
            "pool2 16x14x14",
            PoolGeometry::new(16, 14, 14, 2, 2, 0).unwrap(),
        ),
    ];
    for (name, p) in pools {
        let x = values(BATCH * p.in_size(), 5);
        let dy = values(BATCH * p.out_size(), 6);
        let mut y = vec![0.0; dy.len()];
        let mut dx = vec![0.0; x.len()];
        bench.run(&format!("{name} avg forward"), 0.0, 500, || {
            pool::avg_pool_forward(&p, BATCH, &x, &mut y);
            black_box(&y);
        });
        bench.run(&format!("{name} avg backward"), 0.0, 500, || {
            pool::avg_pool_backward(&p, BATCH, &dy, &mut dx);
            black_box(&dx);
        });
        bench.run(&format!("{name} reference avg forward"), 0.0, 20, || {
            black_box(reference::avg_pool_forward(&p, BATCH, &x));
        });
    }
}
