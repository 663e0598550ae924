//! Optimizer steps computed by hand.

use layers::Param;
use optim::{Optimizer, OptimizerConfig, Schedule};
use tensor::Tensor;

/// One scalar parameter whose gradient the test sets before each step.
struct Scalar(Param);

fn scalar(w: f32) -> Scalar {
    Scalar(Param::new("w".into(), Tensor::from_elem(vec![1], w)))
}

fn run(opt: &mut Optimizer, p: &mut Scalar, grads: &[f32], lr: f32) -> Vec<f32> {
    grads
        .iter()
        .map(|&g| {
            p.0.grad[0] = g;
            opt.set_lr(lr);
            opt.step([&mut p.0]);
            p.0.value[0]
        })
        .collect()
}

#[test]
fn sgd_momentum_weight_decay_three_steps() {
    // η = 0.1, μ = 0.9, λ = 0.01, W₀ = 1, gradients 0.5, −0.2, 0.1:
    // d₁ = 0.5 + 0.01·1            = 0.51        W₁ = 1 − 0.051               = 0.949
    // d₂ = 0.9·0.51 + (−0.2 + 0.00949) = 0.26849  W₂ = 0.949 − 0.026849        = 0.922151
    // d₃ = 0.9·0.26849 + (0.1 + 0.00922151) = 0.35086251
    //                                             W₃ = 0.922151 − 0.035086251  = 0.887064749
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1, 0.9, 0.01));
    let mut p = scalar(1.0);
    let ws = run(&mut opt, &mut p, &[0.5, -0.2, 0.1], 0.1);
    for (w, e) in ws.iter().zip([0.949, 0.922151, 0.887_064_75]) {
        assert!((w - e).abs() < 1e-6, "{ws:?}");
    }
    assert!((opt.state().slots["w"][0][0] - 0.350_862_5).abs() < 1e-6);
    assert_eq!(opt.state().steps, 3);
}

#[test]
fn momentum_changed_between_steps_keeps_the_velocity() {
    // η = 0.1, λ = 0, W₀ = 1, gradients 1, 1; μ = 0.9 for the first step, 0.5 after:
    // d₁ = 1                  W₁ = 1 − 0.1     = 0.9
    // d₂ = 0.5·1 + 1 = 1.5    W₂ = 0.9 − 0.15  = 0.75
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1, 0.9, 0.0));
    let mut p = scalar(1.0);
    run(&mut opt, &mut p, &[1.0], 0.1);
    assert!(opt.set_momentum(0.5));
    let ws = run(&mut opt, &mut p, &[1.0], 0.1);
    assert!((ws[0] - 0.75).abs() < 1e-6, "{ws:?}");
    assert!((opt.state().slots["w"][0][0] - 1.5).abs() < 1e-6);
    let mut adam = Optimizer::new(OptimizerConfig::Adam {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    });
    assert!(!adam.set_momentum(0.5), "Adam has no momentum to set");
}

#[test]
fn nesterov_two_steps() {
    // η = 0.1, μ = 0.5, λ = 0, W₀ = 1, gradients 1, 1:
    // d₁ = 1,   W₁ = 1 − 0.1·(1 + 0.5·1)   = 0.85
    // d₂ = 1.5, W₂ = 0.85 − 0.1·(1 + 0.75) = 0.675
    let mut opt = Optimizer::new(OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.5,
        weight_decay: 0.0,
        nesterov: true,
    });
    let ws = run(&mut opt, &mut scalar(1.0), &[1.0, 1.0], 0.1);
    assert!(
        (ws[0] - 0.85).abs() < 1e-6 && (ws[1] - 0.675).abs() < 1e-6,
        "{ws:?}"
    );
}

#[test]
fn adam_first_steps_move_by_about_lr() {
    // With bias correction, Adam's first step is lr·g/(|g| + ε): exactly −lr·sign(g) up to ε.
    // Second step with the same gradient: m̂ = g, v̂ = g², the same move again.
    let mut opt = Optimizer::new(OptimizerConfig::Adam {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    });
    let ws = run(&mut opt, &mut scalar(1.0), &[3.0, 3.0], 0.01);
    assert!(
        (ws[0] - 0.99).abs() < 1e-6 && (ws[1] - 0.98).abs() < 1e-6,
        "{ws:?}"
    );
}

#[test]
fn schedules() {
    assert_eq!(Schedule::Constant.lr(0.01, 50, 100), 0.01);
    let step = Schedule::Step {
        every: 10,
        gamma: 0.5,
    };
    assert_eq!(
        [
            step.lr(1.0, 9, 100),
            step.lr(1.0, 10, 100),
            step.lr(1.0, 25, 100)
        ],
        [1.0, 0.5, 0.25]
    );
    let cos = Schedule::Cosine { min_lr: 0.0 };
    assert_eq!(cos.lr(1.0, 0, 11), 1.0);
    assert!((cos.lr(1.0, 5, 11) - 0.5).abs() < 1e-6);
    assert!(cos.lr(1.0, 10, 11).abs() < 1e-6);
}

#[test]
fn state_round_trip_and_mismatch() {
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1, 0.9, 0.0));
    let mut p = scalar(1.0);
    run(&mut opt, &mut p, &[1.0], 0.1);
    let saved = opt.state().clone();

    // A resumed optimizer continues exactly like the original.
    let mut resumed = Optimizer::new(opt.config().clone());
    let mut q = Scalar(p.0.clone());
    resumed.load_state(saved.clone(), [&q.0]).unwrap();
    assert_eq!(
        run(&mut opt, &mut p, &[0.3], 0.1),
        run(&mut resumed, &mut q, &[0.3], 0.1)
    );

    // A state for a parameter of another size is refused, naming it.
    let wide = Scalar(Param::new("w".into(), Tensor::zeros(vec![3])));
    let err = Optimizer::new(opt.config().clone())
        .load_state(saved, [&wide.0])
        .unwrap_err();
    assert!(err.to_string().contains("`w`"), "{err}");
}
