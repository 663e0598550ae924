//! The blocked, parallel update: every block of every parameter is updated
//! exactly once, at the right offset, with the same bits on any thread count.

use layers::Param;
use optim::{Optimizer, OptimizerConfig, Params, BLOCK};
use proptest::prelude::*;
use rayon::prelude::*;
use tensor::{Rng, Tensor};

/// Parameters of the given lengths, with random values and gradients.
struct Model(Vec<Param>);

impl Params for Model {
    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.0.iter_mut().collect()
    }
}

fn model(lengths: &[usize], seed: u64) -> Model {
    let mut rng = Rng::seed_from_u64(seed);
    Model(
        lengths
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let v = (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
                let mut p =
                    Param::new(format!("p{i}"), Tensor::from_shape_vec(vec![n], v).unwrap());
                for g in p.grad.iter_mut() {
                    *g = rng.uniform(-1.0, 1.0) as f32;
                }
                p
            })
            .collect(),
    )
}

fn values(m: &Model) -> Vec<Vec<u32>> {
    m.0.iter()
        .map(|p| p.value.iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// The update of one element, written out: SGD as the seed defines it.
fn sgd_by_hand(w: f32, g: f32, d: f32, lr: f32, mu: f32, wd: f32) -> (f32, f32) {
    let d = mu * d + (g + wd * w);
    (w - lr * d, d)
}

fn configs() -> Vec<OptimizerConfig> {
    vec![
        OptimizerConfig::sgd(0.1, 0.9, 1e-3),
        OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-3,
            nesterov: true,
        },
        OptimizerConfig::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-4,
        },
    ]
}

/// Lengths around the block size, so that parameters end mid-block.
const LENGTHS: [usize; 4] = [3, BLOCK + 5, 2 * BLOCK, 1];

#[test]
fn two_sgd_steps_match_the_formula_elementwise() {
    let (lr, mu, wd) = (0.1, 0.9, 1e-3);
    let mut m = model(&LENGTHS, 1);
    let start: Vec<Vec<f32>> =
        m.0.iter()
            .map(|p| p.value.iter().copied().collect())
            .collect();
    let grads: Vec<Vec<f32>> =
        m.0.iter()
            .map(|p| p.grad.iter().copied().collect())
            .collect();
    let mut opt = Optimizer::new(OptimizerConfig::sgd(lr, mu, wd));
    assert_eq!(opt.step(&mut m, lr), None);
    assert_eq!(opt.step(&mut m, lr), None);
    for ((p, w0), g) in m.0.iter().zip(&start).zip(&grads) {
        for ((&got, &w), &g) in p.value.iter().zip(w0).zip(g) {
            let (w, d) = sgd_by_hand(w, g, 0.0, lr, mu, wd);
            let (w, _) = sgd_by_hand(w, g, d, lr, mu, wd);
            assert_eq!(got.to_bits(), w.to_bits(), "{} got {got} want {w}", p.name);
        }
    }
}

#[test]
fn step_on_writes_each_block_once_at_its_offset() {
    for config in configs() {
        // Reference: gradients set beforehand, then a plain step.
        let mut plain = model(&LENGTHS, 2);
        let wanted: Vec<Vec<f32>> = plain
            .0
            .iter()
            .map(|p| p.grad.iter().copied().collect())
            .collect();
        let mut a = Optimizer::new(config.clone());
        a.step(&mut plain, 0.05);

        // The same gradients, written block by block by the closure.
        let mut written = model(&LENGTHS, 2);
        for p in &mut written.0 {
            p.grad.fill(f32::NAN);
        }
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let mut b = Optimizer::new(config.clone());
        let bad = b.step_on(
            &mut written,
            0.05,
            |j, at, grad| {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                assert!(grad.len() <= BLOCK && at % BLOCK == 0);
                grad.copy_from_slice(&wanted[j][at..at + grad.len()]);
            },
            &|n, task| (0..n).into_par_iter().for_each(task),
        );
        assert_eq!(bad, None);
        let blocks: usize = LENGTHS.iter().map(|n| n.div_ceil(BLOCK)).sum();
        assert_eq!(calls.into_inner(), blocks);
        assert_eq!(values(&plain), values(&written), "{config:?}");
        assert_eq!(a.state(), b.state());
    }
}

#[test]
fn a_parameter_that_becomes_nan_is_named() {
    let mut m = model(&LENGTHS, 3);
    m.0[2].grad[BLOCK + 7] = f32::INFINITY;
    m.0[3].grad[0] = f32::NAN;
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1, 0.0, 0.0));
    assert_eq!(opt.step(&mut m, 0.1).as_deref(), Some("p2"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Threads share the blocks out however they like; the bits do not change.
    #[test]
    fn same_bits_on_one_and_three_threads(
        lengths in prop::collection::vec(1usize..3 * BLOCK, 1..5),
        seed in 0u64..1000,
        which in 0usize..3,
    ) {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut m = model(&lengths, seed);
                let mut opt = Optimizer::new(configs()[which].clone());
                for _ in 0..3 {
                    opt.step(&mut m, 0.1);
                }
                (values(&m), opt.state().clone())
            })
        };
        prop_assert_eq!(run(1), run(3));
    }
}

/// `step_on` with the caller's own executor (here: one thread, blocks in
/// reverse order) gives the bits of the rayon-driven `step`.
#[test]
fn step_on_any_executor_gives_the_same_bits() {
    for config in configs() {
        let mut a = model(&LENGTHS, 4);
        let mut b = model(&LENGTHS, 4);
        let mut oa = Optimizer::new(config.clone());
        let mut ob = Optimizer::new(config.clone());
        let blocks = std::sync::atomic::AtomicUsize::new(0);
        for _ in 0..2 {
            oa.step(&mut a, 0.1);
            ob.step_on(&mut b, 0.1, |_, _, _| {}, &|n, task| {
                blocks.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                (0..n).rev().for_each(task)
            });
        }
        assert_eq!(values(&a), values(&b), "{config:?}");
        let per_step: usize = LENGTHS.iter().map(|n| n.div_ceil(BLOCK)).sum();
        assert_eq!(blocks.into_inner(), 2 * per_step);
    }
}

/// A prepared update: blocks belong to their parameters in order, values
/// read between blocks (`with_block_values`) are those of the blocks updated so far, and blocks
/// updated in any order, one at a time, give the bits and state of `step`.
#[test]
fn a_prepared_update_block_by_block() {
    for config in configs() {
        let mut a = model(&LENGTHS, 5);
        let mut oa = Optimizer::new(config.clone());
        oa.step(&mut a, 0.1);
        let after = values(&a);

        let mut b = model(&LENGTHS, 5);
        let before = values(&b);
        let mut ob = Optimizer::new(config.clone());
        let update = ob.prepare(&mut b, 0.1);
        let owners: Vec<usize> = (0..update.blocks()).map(|i| update.param_of(i)).collect();
        let expected: Vec<usize> = LENGTHS
            .iter()
            .enumerate()
            .flat_map(|(j, n)| std::iter::repeat_n(j, n.div_ceil(BLOCK)))
            .collect();
        assert_eq!(owners, expected);

        // Parameter j's current values, from its blocks.
        let read = |j: usize| {
            let mut v = vec![0u32; LENGTHS[j]];
            for i in (0..update.blocks()).filter(|&i| update.param_of(i) == j) {
                update.with_block_values(i, &mut |_, at, w| {
                    for (k, x) in w.iter().enumerate() {
                        v[at + k] = x.to_bits();
                    }
                });
            }
            v
        };
        // Parameter 2's two blocks, last first: its values change a block at a time.
        let (second, first) = (expected.len() - 2, expected.len() - 3);
        assert_eq!(read(2), before[2]);
        update.update_block(second, &|_, _, _| {});
        assert_eq!(read(2)[..BLOCK], before[2][..BLOCK]);
        assert_eq!(read(2)[BLOCK..], after[2][BLOCK..]);
        update.update_block(first, &|_, _, _| {});
        assert_eq!(read(2), after[2]);
        // The rest, in reverse order.
        for i in (0..expected.len())
            .rev()
            .filter(|&i| i != first && i != second)
        {
            update.update_block(i, &|_, _, _| {});
        }
        assert_eq!(update.finish(), None);
        assert_eq!(values(&b), after, "{config:?}");
        assert_eq!(oa.state(), ob.state());
    }
}

#[test]
fn a_prepared_update_names_a_parameter_that_becomes_nan() {
    let mut m = model(&LENGTHS, 6);
    m.0[1].grad[BLOCK + 1] = f32::NAN;
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1, 0.9, 0.0));
    let update = opt.prepare(&mut m, 0.1);
    for i in (0..update.blocks()).rev() {
        update.update_block(i, &|_, _, _| {});
    }
    assert_eq!(update.finish().as_deref(), Some("p1"));
}

/// Three steps on one prepared update (`next_step` between them) give the
/// bits and state of three `step`s, with each step's own gradients written
/// in by the blocks; `with_block_values` shows each block's new values; a
/// NaN is reported by the step that made it.
#[test]
fn next_step_goes_on_like_separate_steps() {
    for config in configs() {
        let grads = |step: usize, j: usize, at: usize, g: &mut [f32]| {
            for (k, g) in g.iter_mut().enumerate() {
                *g = ((step * 7 + j * 3 + at + k) % 11) as f32 / 11.0 - 0.4;
            }
        };
        let mut a = model(&LENGTHS, 8);
        let mut oa = Optimizer::new(config.clone());
        let mut expected = Vec::new();
        for step in 0..3 {
            for (j, p) in a.0.iter_mut().enumerate() {
                grads(step, j, 0, p.grad.as_slice_mut().unwrap());
            }
            oa.step(&mut a, 0.05);
            expected.push(values(&a));
        }

        let mut b = model(&LENGTHS, 8);
        let mut ob = Optimizer::new(config.clone());
        let update = ob.prepare(&mut b, 0.05);
        for (step, want) in expected.iter().enumerate() {
            if step > 0 {
                assert_eq!(update.non_finite(), None);
                update.next_step();
            }
            let mut seen: Vec<Vec<u32>> = LENGTHS.iter().map(|&n| vec![0; n]).collect();
            for i in (0..update.blocks()).rev() {
                update.update_block(i, &|j, at, g| grads(step, j, at, g));
                update.with_block_values(i, &mut |j, at, v| {
                    for (k, x) in v.iter().enumerate() {
                        seen[j][at + k] = x.to_bits();
                    }
                });
            }
            assert_eq!(&seen, want, "{config:?} step {step}");
        }
        assert_eq!(update.finish(), None);
        assert_eq!(values(&b), expected[2], "{config:?}");
        assert_eq!(oa.state(), ob.state(), "{config:?}");
    }

    let mut m = model(&LENGTHS, 9);
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1, 0.9, 0.0));
    let update = opt.prepare(&mut m, 0.1);
    let nan_in_step_1 = |step: usize| {
        move |j: usize, _: usize, g: &mut [f32]| {
            g.fill(if step == 1 && j == 3 { f32::NAN } else { 0.0 })
        }
    };
    for step in 0..3 {
        if step > 0 {
            let bad = update.non_finite();
            assert_eq!(bad.as_deref(), (step == 2).then_some("p3"), "step {step}");
            update.next_step();
        }
        for i in 0..update.blocks() {
            update.update_block(i, &nan_in_step_1(step));
        }
    }
    // The NaN stays in p3, so the third step reports it too.
    assert_eq!(update.finish().as_deref(), Some("p3"));
    assert_eq!(opt.state().steps, 3);
}
