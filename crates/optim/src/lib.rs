//! Optimizers over a network's named parameters, and learning-rate schedules.
//!
//! * SGD with momentum and weight decay, exactly as the seed experiment
//!   defines it, per parameter (weights and biases alike):
//!   `d ← μ·d + (g + λ·W)`, then `W ← W − η·d`, with `d` starting at zero.
//! * Nesterov momentum (PyTorch's form): the same `d`, then
//!   `W ← W − η·(g + λ·W + μ·d)`.
//! * Adam (Kingma & Ba), with L2 weight decay added to the gradient.
//!
//! An optimizer sees parameters only through [`Params`], a list of
//! [`layers::Param`] (value, gradient, name): it knows no layer type. Its
//! state (momentum buffers, Adam moments, step count) is keyed by parameter
//! name and serialisable, so a checkpoint can carry it and a resumed run
//! continues exactly.
//!
//! A step updates every parameter in blocks of [`BLOCK`] elements, all
//! blocks of all parameters in one parallel loop, and reports a parameter
//! that became NaN or infinite. [`Optimizer::step_on`] lets the caller
//! write each block's gradient just before its update (a data-parallel step
//! sums its replicas' gradients there), and [`Optimizer::prepare`] hands the
//! blocks to the caller, to update each when its gradient is ready.
//!
//! ```
//! use layers::{LinearConfig, Layer};
//! use optim::{Optimizer, OptimizerConfig};
//! use tensor::{Rng, Tensor};
//!
//! let mut fc = LinearConfig::new(3, 2).init("fc1", &mut Rng::seed_from_u64(0));
//! let x = Tensor::ones(vec![4, 3]);
//! fc.forward(&x).unwrap();
//! fc.backward(&Tensor::ones(vec![4, 2])).unwrap();
//! let before = fc.bias.value.clone();
//!
//! let mut sgd = Optimizer::new(OptimizerConfig::sgd(0.1, 0.9, 1e-4));
//! sgd.step(&mut fc as &mut dyn Layer, 0.1);
//! // The bias gradient is 4 per unit (sum over the batch): b ← b − 0.1·(4 + 1e-4·b).
//! assert!((fc.bias.value[0] - (before[0] - 0.4)).abs() < 1e-6);
//! ```
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use layers::{Layer, Network, Param};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Parameter updates are split in blocks this long across rayon's threads:
/// fc1's 200k weights make 13 tasks, a bias one.
pub const BLOCK: usize = 1 << 14;

/// A parallel for-loop supplied by the caller of [`Optimizer::step_on`]:
/// `for_each(n, task)` runs `task(i)` once for every `i` in `0..n`, in any
/// order and on any threads, and returns when all have returned.
pub type ForEach<'a> = &'a dyn Fn(usize, &(dyn Fn(usize) + Sync));

/// Anything whose parameters can be listed: a [`Network`] or a single [`Layer`].
pub trait Params {
    /// Every parameter, mutably, in a fixed order.
    fn params_mut(&mut self) -> Vec<&mut Param>;
}

impl Params for Network {
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Network::params_mut(self)
    }
}

impl Params for dyn Layer {
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Layer::params_mut(self)
    }
}

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

    /// The base learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => *lr,
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

/// An optimizer and its state.
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    state: OptimizerState,
}

impl Optimizer {
    /// A fresh optimizer (zero momentum).
    pub fn new(config: OptimizerConfig) -> Self {
        Optimizer {
            config,
            state: OptimizerState::default(),
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
    /// buffer matches a parameter of `model` in name and size.
    pub fn load_state<P: Params + ?Sized>(
        &mut self,
        state: OptimizerState,
        model: &mut P,
    ) -> Result<(), StateError> {
        let slots = match self.config {
            OptimizerConfig::Sgd { .. } => 1,
            OptimizerConfig::Adam { .. } => 2,
        };
        let mut problem = None;
        let mut names = 0;
        for p in model.params_mut() {
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

    /// One update of every parameter from its gradient, at learning rate `lr`
    /// (the schedule's value for this epoch). Returns the name of the first
    /// parameter that holds a NaN or an infinity after the update, if any.
    pub fn step<P: Params + ?Sized>(&mut self, model: &mut P, lr: f32) -> Option<String> {
        self.step_on(model, lr, |_, _, _| {}, &|n, task| {
            (0..n).into_par_iter().with_max_len(1).for_each(task)
        })
    }

    /// [`Optimizer::step`], where `gradient(j, at, grad)` first writes the
    /// gradient of parameter `j` (in [`Params::params_mut`] order) from
    /// element `at` on into `grad`, that parameter's own gradient, one block
    /// of at most [`BLOCK`] elements at a time. A caller that sums gradients
    /// from several places (the replicas of a data-parallel step) thus sums
    /// and updates each block in one pass over memory, while it is in cache,
    /// on the caller's threads: `for_each` (see [`ForEach`]) runs one task
    /// per block. The update is elementwise, so how the blocks are spread
    /// over threads changes no bits.
    pub fn step_on<P, G>(
        &mut self,
        model: &mut P,
        lr: f32,
        gradient: G,
        for_each: ForEach<'_>,
    ) -> Option<String>
    where
        P: Params + ?Sized,
        G: Fn(usize, usize, &mut [f32]) + Sync,
    {
        let update = self.prepare(model, lr);
        for_each(update.blocks(), &|i| update.update_block(i, &gradient));
        update.finish()
    }

    /// One update of every parameter at learning rate `lr`, cut into blocks
    /// that the caller updates one by one ([`Update::update_block`]), in any
    /// order, on any threads, at any time before [`Update::finish`]. Between
    /// blocks the caller may read a block's current values
    /// ([`Update::with_block_values`], as soon as it is updated, say), and
    /// go on to the next step
    /// on the same parameters ([`Update::next_step`]). Why: a data-parallel
    /// trainer updates the last layers, whose gradients back-propagation
    /// finishes first, while the first layers' gradients are still being
    /// computed, and its replicas take the new weights block by block.
    /// [`Optimizer::step_on`] is this with every block in one parallel loop.
    pub fn prepare<'a, P: Params + ?Sized>(&'a mut self, model: &'a mut P, lr: f32) -> Update<'a> {
        self.state.steps += 1;
        let t = self.state.steps;
        let config = self.config.clone();
        let OptimizerState { steps, slots } = &mut self.state;
        let buffers = match config {
            OptimizerConfig::Sgd { .. } => 1,
            OptimizerConfig::Adam { .. } => 2,
        };
        let params = model.params_mut();
        for p in &params {
            // Look up before inserting: `entry` would clone the name every step.
            if !slots.contains_key(&p.name) {
                slots.insert(p.name.clone(), vec![vec![0.0; p.value.len()]; buffers]);
            }
        }
        // Each parameter's buffers, in parameter order.
        let mut by_name: Vec<(&String, Option<&mut Vec<Vec<f32>>>)> = slots
            .iter_mut()
            .map(|(name, bufs)| (name, Some(bufs)))
            .collect();
        let mut names = Vec::with_capacity(params.len());
        let mut first_block = Vec::with_capacity(params.len() + 1);
        let mut blocks = Vec::new();
        for (j, p) in params.into_iter().enumerate() {
            let Param {
                name, value, grad, ..
            } = p;
            let i = by_name
                .binary_search_by(|(n, _)| n.as_str().cmp(name))
                .expect("inserted above");
            let bufs = by_name[i].1.take().expect("parameter names are unique");
            let (first, second) = bufs.split_at_mut(1);
            let w = value.as_slice_mut().expect("parameters are contiguous");
            let g = grad.as_slice_mut().expect("gradients are contiguous");
            let mut second = second.first_mut().map(|b| b.chunks_mut(BLOCK));
            names.push(name.as_str());
            first_block.push(blocks.len());
            for (c, ((w, g), a)) in w
                .chunks_mut(BLOCK)
                .zip(g.chunks_mut(BLOCK))
                .zip(first[0].chunks_mut(BLOCK))
                .enumerate()
            {
                let b = second.as_mut().map(|s| s.next().expect("same length"));
                blocks.push(Mutex::new(Block {
                    param: j,
                    at: c * BLOCK,
                    w,
                    g,
                    a,
                    b,
                }));
            }
        }
        first_block.push(blocks.len());
        Update {
            config,
            steps,
            t: AtomicU64::new(t),
            lr,
            names,
            first_block,
            blocks,
            first_bad: AtomicUsize::new(usize::MAX),
        }
    }
}

/// One update of a model's parameters, in blocks: see [`Optimizer::prepare`].
/// Each block has its own lock, which is never contended when each block is
/// updated once and values are read only where no update runs.
pub struct Update<'a> {
    config: OptimizerConfig,
    /// The optimizer's step count, set to `t` when the update is dropped.
    steps: &'a mut u64,
    /// This step's number (from 1).
    t: AtomicU64,
    lr: f32,
    /// Each parameter's name, in [`Params::params_mut`] order.
    names: Vec<&'a str>,
    /// Parameter `j`'s blocks are `first_block[j]..first_block[j + 1]`.
    first_block: Vec<usize>,
    blocks: Vec<Mutex<Block<'a>>>,
    first_bad: AtomicUsize,
}

impl Update<'_> {
    /// How many blocks there are.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The parameter (by its index in [`Params::params_mut`] order) that
    /// block `i` belongs to. Blocks are numbered parameter by parameter.
    pub fn param_of(&self, i: usize) -> usize {
        self.first_block.partition_point(|&b| b <= i) - 1
    }

    /// Updates block `i`: `gradient(j, at, grad)` first writes parameter
    /// `j`'s gradient from element `at` on into `grad` (as in
    /// [`Optimizer::step_on`]). Each block must be updated once.
    pub fn update_block(&self, i: usize, gradient: &(dyn Fn(usize, usize, &mut [f32]) + Sync)) {
        let mut block = self.blocks[i].lock().expect("no update panicked");
        let Block {
            param,
            at,
            w,
            g,
            a,
            b,
        } = &mut *block;
        gradient(*param, *at, g);
        let t = self.t.load(Ordering::Relaxed);
        update(&self.config, t, self.lr, w, g, a, b.as_deref_mut());
        if w.iter().any(|v| !v.is_finite()) {
            self.first_bad.fetch_min(*param, Ordering::Relaxed);
        }
    }

    /// Calls `f(j, at, values)` with block `i`'s parameter `j`, the
    /// block's first element `at` in it, and its current values: a caller
    /// can copy the new weights out while the block is in cache.
    pub fn with_block_values(&self, i: usize, f: &mut dyn FnMut(usize, usize, &[f32])) {
        let block = self.blocks[i].lock().expect("no update panicked");
        f(block.param, block.at, block.w);
    }

    /// Ends this step's update and starts the next one, on the same
    /// parameters at the same learning rate, without gathering the
    /// parameters again: for a caller that runs many steps in a row (the
    /// trainer's epoch). Every block of the step just ended must have been
    /// updated, and none of the next may have started; read
    /// [`Update::non_finite`] first to learn whether the step just ended
    /// made a NaN.
    pub fn next_step(&self) {
        self.first_bad.store(usize::MAX, Ordering::Relaxed);
        self.t.fetch_add(1, Ordering::Relaxed);
    }

    /// The name of the first parameter (in [`Params::params_mut`] order)
    /// that holds a NaN or an infinity after this step's update of its
    /// blocks so far, if any.
    pub fn non_finite(&self) -> Option<String> {
        let first_bad = self.first_bad.load(Ordering::Relaxed);
        (first_bad != usize::MAX).then(|| self.names[first_bad].to_string())
    }

    /// Ends the update: [`Update::non_finite`] once every block is updated.
    pub fn finish(self) -> Option<String> {
        self.non_finite()
    }
}

impl Drop for Update<'_> {
    /// Records the steps taken (one, and one more per [`Update::next_step`]).
    fn drop(&mut self) {
        *self.steps = *self.t.get_mut();
    }
}

/// One block of one parameter: its weights, gradient and optimizer buffers.
struct Block<'a> {
    param: usize,
    at: usize,
    w: &'a mut [f32],
    g: &'a mut [f32],
    /// SGD's momentum `d`, or Adam's first moment.
    a: &'a mut [f32],
    /// Adam's second moment.
    b: Option<&'a mut [f32]>,
}

/// The update of one block, elementwise; `t` is the step count (for Adam).
fn update(
    config: &OptimizerConfig,
    t: u64,
    lr: f32,
    w: &mut [f32],
    g: &[f32],
    a: &mut [f32],
    b: Option<&mut [f32]>,
) {
    match *config {
        OptimizerConfig::Sgd {
            momentum,
            weight_decay,
            nesterov,
            ..
        } => {
            for ((w, &g), d) in w.iter_mut().zip(g).zip(a.iter_mut()) {
                let grad = g + weight_decay * *w;
                *d = momentum * *d + grad;
                *w -= lr * if nesterov { grad + momentum * *d } else { *d };
            }
        }
        OptimizerConfig::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } => {
            let v = b.expect("Adam keeps two buffers");
            let c1 = 1.0 - beta1.powi(t as i32);
            let c2 = 1.0 - beta2.powi(t as i32);
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(a.iter_mut()).zip(v.iter_mut()) {
                let grad = g + weight_decay * *w;
                *m = beta1 * *m + (1.0 - beta1) * grad;
                *v = beta2 * *v + (1.0 - beta2) * grad * grad;
                *w -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
            }
        }
    }
}

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;

/// `docs/05-sgd.md`, whose code blocks run as doctests so the book cannot drift from the code.
#[doc = include_str!("../../../docs/05-sgd.md")]
#[cfg(doctest)]
pub struct ChapterSgd;
