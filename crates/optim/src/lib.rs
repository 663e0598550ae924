//! Optimizers over a network's named parameters, and learning-rate schedules.
//!
//! * SGD with momentum and weight decay, exactly as the seed experiment
//!   defines it, per parameter (weights and biases alike):
//!   `d ← μ·d + (g + λ·W)`, then `W ← W − η·d`, with `d` starting at zero.
//! * Nesterov momentum (PyTorch's form): the same `d`, then
//!   `W ← W − η·(g + λ·W + μ·d)`.
//! * Adam (Kingma & Ba), with L2 weight decay added to the gradient.
//!
//! An optimizer sees parameters only as a list of [`layers::Param`] (value,
//! gradient, name): it knows no layer type. Its state (momentum buffers,
//! Adam moments, step count) is keyed by parameter name and serialisable,
//! so a checkpoint can carry it and a resumed run continues exactly.
//!
//! ```
//! use layers::{LinearConfig, Layer};
//! use optim::{Optimizer, OptimizerConfig};
//! use tensor::{Rng, Tensor};
//!
//! let mut fc = LinearConfig::new(3, 2).build("fc1", &mut Rng::seed_from_u64(0));
//! let x = Tensor::ones(vec![4, 3]);
//! fc.forward(&x).unwrap();
//! fc.backward(&Tensor::ones(vec![4, 2])).unwrap();
//! let before = fc.bias.value.clone();
//!
//! let mut sgd = Optimizer::new(OptimizerConfig::sgd(0.1, 0.9, 1e-4)); // learning rate 0.1
//! sgd.step(fc.params_mut());
//! // The bias gradient is 4 per unit (sum over the batch): b ← b − 0.1·(4 + 1e-4·b).
//! assert!((fc.bias.value[0] - (before[0] - 0.4)).abs() < 1e-6);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

use layers::Param;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.999
}
fn default_eps() -> f32 {
    1e-8
}

/// Which optimizer, with its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent with (optionally Nesterov) momentum and L2 weight decay.
    Sgd {
        /// Learning rate η (the schedule's base).
        lr: f32,
        /// Momentum μ (0 for plain SGD).
        #[serde(default)]
        momentum: f32,
        /// Weight decay λ, added to the gradient as λ·W.
        #[serde(default)]
        weight_decay: f32,
        /// Nesterov's look-ahead form of momentum.
        #[serde(default)]
        nesterov: bool,
    },
    /// Adam.
    Adam {
        /// Learning rate (the schedule's base).
        lr: f32,
        /// Decay of the first moment.
        #[serde(default = "default_beta1")]
        beta1: f32,
        /// Decay of the second moment.
        #[serde(default = "default_beta2")]
        beta2: f32,
        /// Added to the root of the second moment.
        #[serde(default = "default_eps")]
        eps: f32,
        /// L2 weight decay, added to the gradient.
        #[serde(default)]
        weight_decay: f32,
    },
}

impl OptimizerConfig {
    /// SGD with momentum and weight decay: the seed's optimizer.
    pub fn sgd(lr: f32, momentum: f32, weight_decay: f32) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            weight_decay,
            nesterov: false,
        }
    }

    /// Buffers kept per parameter: SGD's momentum `d`; Adam's moments `m`, `v`.
    fn buffers(&self) -> usize {
        match self {
            OptimizerConfig::Sgd { .. } => 1,
            OptimizerConfig::Adam { .. } => 2,
        }
    }

    /// The base learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => *lr,
        }
    }

    /// Checks the settings before any step: a positive learning rate,
    /// momentum and Adam's betas in [0, 1), a non-negative weight decay, a
    /// positive epsilon. The error names the key.
    pub fn check(&self) -> Result<(), String> {
        let lr = self.lr();
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!("lr must be a positive number, got {lr}"));
        }
        let in_unit = |key: &str, v: f32| match (0.0..1.0).contains(&v) {
            true => Ok(()),
            false => Err(format!("{key} must be in [0, 1), got {v}")),
        };
        let decay = |v: f32| match v >= 0.0 && v.is_finite() {
            true => Ok(()),
            false => Err(format!(
                "weight_decay must be a number of at least 0, got {v}"
            )),
        };
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                weight_decay,
                ..
            } => {
                in_unit("momentum", momentum)?;
                decay(weight_decay)
            }
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                in_unit("beta1", beta1)?;
                in_unit("beta2", beta2)?;
                if !(eps > 0.0 && eps.is_finite()) {
                    return Err(format!("eps must be a positive number, got {eps}"));
                }
                decay(weight_decay)
            }
        }
    }
}

/// How the learning rate changes over epochs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// The base rate throughout (the seed).
    #[default]
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Factor applied at each decay.
        gamma: f32,
    },
    /// Cosine from the base rate at epoch 0 down to `min_lr` at the last epoch.
    Cosine {
        /// The rate reached at the end.
        #[serde(default)]
        min_lr: f32,
    },
}

impl Schedule {
    /// Checks the schedule against the base rate `base` before any step:
    /// `every` at least 1 and `gamma` in (0, 1] for `step`, `min_lr` in
    /// [0, base] for `cosine`, so that the rate stays a finite number of at
    /// least 0 at every epoch. The error names the key.
    pub fn check(&self, base: f32) -> Result<(), String> {
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Step { every, gamma } => {
                if every == 0 {
                    return Err("every must be at least 1 epoch, got 0".into());
                }
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return Err(format!("gamma must be in (0, 1], got {gamma}"));
                }
                Ok(())
            }
            Schedule::Cosine { min_lr } => match min_lr >= 0.0 && min_lr <= base {
                true => Ok(()),
                false => Err(format!(
                    "min_lr must be between 0 and the optimizer's lr ({base}), got {min_lr}"
                )),
            },
        }
    }

    /// The learning rate of epoch `epoch` (0-based) of `epochs`, from base rate `base`.
    pub fn lr(&self, base: f32, epoch: usize, epochs: usize) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Cosine { min_lr } => {
                let t = if epochs <= 1 {
                    0.0
                } else {
                    epoch.min(epochs - 1) as f64 / (epochs - 1) as f64
                };
                (min_lr as f64
                    + (base - min_lr) as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
                    as f32
            }
        }
    }
}

/// What an optimizer remembers between steps, by parameter name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Steps taken.
    pub steps: u64,
    /// Per parameter: the momentum buffer `d` (SGD), or the moments `m` and `v` (Adam).
    pub slots: BTreeMap<String, Vec<Vec<f32>>>,
}

/// A state that does not fit the parameters it is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateError(pub String);

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

/// An optimizer, its learning rate and its state.
///
/// It owns its learning rate: the config's to begin with, then whatever a
/// schedule sets with [`Optimizer::set_lr`] (the trainer does so at the start
/// of every epoch). The rate is not part of the [`OptimizerState`]: a
/// resumed run sets it again from the schedule.
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    lr: f32,
    state: OptimizerState,
}

impl Optimizer {
    /// A fresh optimizer (zero momentum) at the config's learning rate.
    pub fn new(config: OptimizerConfig) -> Self {
        Optimizer {
            lr: config.lr(),
            config,
            state: OptimizerState::default(),
        }
    }

    /// The learning rate the next [`Optimizer::step`] uses.
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// Sets the learning rate of the next steps (a schedule's value for this epoch).
    pub fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    /// Sets SGD's momentum for the next steps, keeping its buffers (the
    /// velocity so far). Returns `false`, changing nothing, for an optimizer
    /// without momentum (Adam).
    pub fn set_momentum(&mut self, momentum: f32) -> bool {
        match &mut self.config {
            OptimizerConfig::Sgd { momentum: m, .. } => {
                *m = momentum;
                true
            }
            _ => false,
        }
    }

    /// Its hyper-parameters.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Its state, for a checkpoint.
    pub fn state(&self) -> &OptimizerState {
        &self.state
    }

    /// Restores a state taken by [`Optimizer::state`], after checking that every
    /// buffer matches one of `params` in name and size.
    pub fn load_state<'p>(
        &mut self,
        state: OptimizerState,
        params: impl IntoIterator<Item = &'p Param>,
    ) -> Result<(), StateError> {
        let slots = self.config.buffers();
        let mut problem = None;
        let mut names = 0;
        for p in params {
            names += 1;
            if let Some(bufs) = state.slots.get(&p.name) {
                if bufs.len() != slots || bufs.iter().any(|b| b.len() != p.value.len()) {
                    problem.get_or_insert(format!(
                        "optimizer state for `{}` has {} buffers of sizes {:?}; expected {slots} of {}",
                        p.name,
                        bufs.len(),
                        bufs.iter().map(Vec::len).collect::<Vec<_>>(),
                        p.value.len()
                    ));
                }
            } else if state.steps > 0 {
                problem.get_or_insert(format!("optimizer state has no buffer for `{}`", p.name));
            }
        }
        if problem.is_none() && state.slots.len() > names {
            problem = Some(format!(
                "optimizer state has {} buffers for {names} parameters",
                state.slots.len()
            ));
        }
        match problem {
            Some(p) => Err(StateError(p)),
            None => {
                self.state = state;
                Ok(())
            }
        }
    }

    /// One update of every parameter from its gradient, at the optimizer's
    /// learning rate. It only updates: a NaN or an infinity is the caller's
    /// to look for (the trainer checks every parameter after each step).
    pub fn step<'p>(&mut self, params: impl IntoIterator<Item = &'p mut Param>) {
        self.state.steps += 1;
        let (t, lr) = (self.state.steps, self.lr);
        for p in params {
            // Look up before inserting: `entry` would clone the name every step.
            if !self.state.slots.contains_key(&p.name) {
                let zeros = vec![vec![0.0; p.value.len()]; self.config.buffers()];
                self.state.slots.insert(p.name.clone(), zeros);
            }
            let slots = self.state.slots.get_mut(&p.name).expect("inserted above");
            let w = p.value.as_slice_mut().expect("parameters are contiguous");
            let g = p.grad.as_slice().expect("gradients are contiguous");
            match self.config {
                OptimizerConfig::Sgd {
                    momentum: mu,
                    weight_decay: lambda,
                    nesterov,
                    ..
                } => {
                    let d = &mut slots[0];
                    pieces(w, g, d).for_each(|((w, g), d)| {
                        for ((w, &g), d) in w.iter_mut().zip(g).zip(d) {
                            // The post's rule: d = mu*d + (g + lambda*W); W -= lr*d.
                            let g = g + lambda * *w;
                            *d = mu * *d + g;
                            *w -= lr * if nesterov { g + mu * *d } else { *d };
                        }
                    });
                }
                OptimizerConfig::Adam {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    ..
                } => {
                    let (m, v) = slots.split_at_mut(1);
                    let c1 = 1.0 - beta1.powi(t as i32);
                    let c2 = 1.0 - beta2.powi(t as i32);
                    let v = v[0].par_chunks_mut(PIECE);
                    pieces(w, g, &mut m[0]).zip(v).for_each(|(((w, g), m), v)| {
                        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
                            let g = g + weight_decay * *w;
                            *m = beta1 * *m + (1.0 - beta1) * g;
                            *v = beta2 * *v + (1.0 - beta2) * g * g;
                            *w -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                        }
                    });
                }
            }
        }
    }
}

/// Elements per parallel task of an update (fc1's 200k weights: 13 tasks).
/// The update is elementwise, so how the pieces are spread over threads
/// changes no bits.
const PIECE: usize = 1 << 14;

/// A parameter's values, gradient and first buffer, cut into pieces of
/// [`PIECE`] elements, to update in parallel.
fn pieces<'a>(
    w: &'a mut [f32],
    g: &'a [f32],
    d: &'a mut [f32],
) -> impl IndexedParallelIterator<Item = ((&'a mut [f32], &'a [f32]), &'a mut [f32])> {
    w.par_chunks_mut(PIECE)
        .zip(g.par_chunks(PIECE))
        .zip(d.par_chunks_mut(PIECE))
}

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;

/// `docs/05-sgd.md`, whose code blocks run as doctests so the book cannot drift from the code.
#[doc = include_str!("../../../docs/05-sgd.md")]
#[cfg(doctest)]
pub struct ChapterSgd;

#[cfg(test)]
mod schedule_checks {
    use super::Schedule;

    #[test]
    fn schedules_that_could_drive_the_rate_negative_or_non_finite_are_refused() {
        let base = 0.1;
        for (s, key) in [
            (
                Schedule::Step {
                    every: 0,
                    gamma: 0.5,
                },
                "every",
            ),
            (
                Schedule::Step {
                    every: 3,
                    gamma: -0.5,
                },
                "gamma",
            ),
            (
                Schedule::Step {
                    every: 3,
                    gamma: f32::NAN,
                },
                "gamma",
            ),
            (
                Schedule::Step {
                    every: 3,
                    gamma: 1e30,
                },
                "gamma",
            ),
            (Schedule::Cosine { min_lr: -0.1 }, "min_lr"),
            (Schedule::Cosine { min_lr: 0.2 }, "min_lr"),
            (Schedule::Cosine { min_lr: f32::NAN }, "min_lr"),
        ] {
            let err = s.check(base).unwrap_err();
            assert!(err.starts_with(key), "{s:?}: {err}");
        }
        for s in [
            Schedule::Constant,
            Schedule::Step {
                every: 1,
                gamma: 1.0,
            },
            Schedule::Cosine { min_lr: 0.1 },
        ] {
            s.check(base).unwrap();
            assert!((0..50).all(|e| s.lr(base, e, 50) >= 0.0));
        }
    }
}
