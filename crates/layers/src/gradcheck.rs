//! Numerical gradient checks by central differences.
//!
//! For a layer f, draw a random projection R of its output and define the
//! scalar `L(x, θ) = Σ R ⊙ f(x; θ)`. Backward with `dy = R` gives ∂L/∂x and
//! ∂L/∂θ analytically; each is compared with
//! `(L(v + ε) − L(v − ε)) / 2ε`, whose error is O(ε²) (a one-sided
//! difference would be O(ε)).
//!
//! The layers compute in f32. L is summed in f64, and outputs that a
//! perturbation does not touch cancel exactly, so the rounding error of the
//! difference is about `|R·y|·2⁻²⁴/ε` per touched output: with ε = 10⁻³ and
//! values of order one, about 10⁻⁴ of a gradient of order one. The check
//! reports `|a − n| / max(|a|, |n|, 10⁻³·max|a|)` (the floor keeps a near-zero
//! component from turning rounding noise into a huge ratio) and the tests
//! accept 10⁻². A wrong factor or a transposed index gives errors of order one.
//!
//! Convolution, linear, average pooling and flatten are linear in each input
//! and each parameter taken alone, so for them the central difference is
//! exact up to rounding for any ε: [`GradCheckOptions::for_kind`] gives them
//! ε = 0.05, which divides the rounding error by 50.
//!
//! ReLU and max pooling are not differentiable at their kinks, so inputs are
//! drawn from [`well_spaced`]: a shuffled grid whose values are further than
//! 2ε from zero and from each other, so no perturbation crosses a kink.

use tensor::{Rng, Tensor};

use crate::{Layer, LayerError, Loss};

/// The worst disagreement found for one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheck {
    /// `input` or the parameter's name (`conv1.weight`).
    pub tensor: String,
    /// The largest relative error over the checked components.
    pub max_rel_error: f64,
    /// How many components were checked.
    pub checked: usize,
}

/// Settings of a check.
#[derive(Clone, Copy, Debug)]
pub struct GradCheckOptions {
    /// Step ε of the central difference.
    pub eps: f32,
    /// At most this many components per tensor are checked (chosen at random, without repetition).
    pub max_components: usize,
}

impl Default for GradCheckOptions {
    fn default() -> Self {
        GradCheckOptions {
            eps: 1e-3,
            max_components: 400,
        }
    }
}

impl GradCheckOptions {
    /// The options suited to a layer kind: a large ε where the layer is linear
    /// in each value (the difference is then exact), a small one elsewhere.
    pub fn for_kind(kind: &str) -> Self {
        let eps = match kind {
            "conv2d" | "linear" | "avg_pool2d" | "flatten" => 0.05,
            _ => 1e-3,
        };
        GradCheckOptions {
            eps,
            ..Self::default()
        }
    }
}

/// `n` values in (−1, 1), a shuffled grid with spacing 2/n and none nearer to 0 than 1/(2n).
///
/// For n ≤ 250 with ε = 10⁻³, no central difference crosses a ReLU kink or changes a max.
pub fn well_spaced(n: usize, rng: &mut Rng) -> Vec<f32> {
    // For odd n the middle point would be 0: shift the grid by half a step.
    let shift = if n % 2 == 1 { 0.5 / n as f64 } else { 0.0 };
    let mut v: Vec<f32> = (0..n)
        .map(|i| ((2 * i + 1) as f64 / n as f64 - 1.0 + shift) as f32)
        .collect();
    rng.shuffle(&mut v);
    v
}

fn rel_errors(analytic: &[f64], numeric: &[f64]) -> f64 {
    let scale = analytic.iter().fold(0f64, |m, a| m.max(a.abs()));
    let floor = (1e-3 * scale).max(1e-12);
    analytic
        .iter()
        .zip(numeric)
        .map(|(a, n)| (a - n).abs() / a.abs().max(n.abs()).max(floor))
        .fold(0.0, f64::max)
}

fn pick(len: usize, max: usize, rng: &mut Rng) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..len).collect();
    if len > max {
        rng.shuffle(&mut idx);
        idx.truncate(max);
    }
    idx
}

fn projected(layer: &mut dyn Layer, x: &Tensor, r: &Tensor) -> Result<f64, LayerError> {
    let y = layer.forward(x)?;
    Ok(y.iter()
        .zip(r.iter())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum())
}

/// Checks ∂L/∂input and ∂L/∂θ of every parameter of `layer` at `input`.
///
/// The layer must have been told its input gradient is needed (the default).
pub fn check_layer(
    layer: &mut dyn Layer,
    input: &Tensor,
    rng: &mut Rng,
    opts: GradCheckOptions,
) -> Result<Vec<GradCheck>, LayerError> {
    let eps = opts.eps;
    let y_shape = layer.forward(input)?.shape().to_vec();
    // Not a symmetric grid: a zero-sum projection would make the bias gradient vanish.
    let r = Tensor::from_shape_fn(y_shape, |_| rng.uniform(-1.0, 1.0) as f32);
    layer.forward(input)?;
    let grad_input = layer.backward(&r)?.clone();
    let param_grads: Vec<(String, Tensor)> = layer
        .params()
        .into_iter()
        .map(|p| (p.name.clone(), p.grad.clone()))
        .collect();

    let mut out = Vec::new();
    // Input gradient.
    let mut x = input.clone();
    let idx = pick(x.len(), opts.max_components, rng);
    let (mut a, mut n) = (Vec::new(), Vec::new());
    for &i in &idx {
        let v = x.as_slice().expect("contiguous")[i];
        x.as_slice_mut().expect("contiguous")[i] = v + eps;
        let plus = projected(layer, &x, &r)?;
        x.as_slice_mut().expect("contiguous")[i] = v - eps;
        let minus = projected(layer, &x, &r)?;
        x.as_slice_mut().expect("contiguous")[i] = v;
        a.push(grad_input.as_slice().expect("contiguous")[i] as f64);
        // The step actually taken, after rounding v ± ε to f32.
        n.push((plus - minus) / ((v + eps) as f64 - (v - eps) as f64));
    }
    out.push(GradCheck {
        tensor: "input".into(),
        max_rel_error: rel_errors(&a, &n),
        checked: idx.len(),
    });

    // Parameter gradients, one parameter at a time.
    for (k, (name, grad)) in param_grads.iter().enumerate() {
        let idx = pick(grad.len(), opts.max_components, rng);
        let (mut a, mut n) = (Vec::new(), Vec::new());
        for &i in &idx {
            let nudge = |delta: f32, layer: &mut dyn Layer| -> f32 {
                let mut params = layer.params_mut();
                let s = params[k].value.as_slice_mut().expect("contiguous");
                let old = s[i];
                s[i] += delta;
                old
            };
            let v = nudge(eps, layer);
            let plus = projected(layer, input, &r)?;
            nudge(-2.0 * eps, layer);
            let minus = projected(layer, input, &r)?;
            nudge(eps, layer);
            // Restore exactly (v + ε − 2ε + ε need not round back to v).
            layer.params_mut()[k]
                .value
                .as_slice_mut()
                .expect("contiguous")[i] = v;
            a.push(grad.as_slice().expect("contiguous")[i] as f64);
            n.push((plus - minus) / ((v + eps) as f64 - (v - eps) as f64));
        }
        out.push(GradCheck {
            tensor: name.clone(),
            max_rel_error: rel_errors(&a, &n),
            checked: idx.len(),
        });
    }
    Ok(out)
}

/// Checks ∂loss/∂output of `loss` at `output` for `target`.
pub fn check_loss(
    loss: Loss,
    output: &Tensor,
    target: &Tensor,
    eps: f32,
) -> Result<GradCheck, LayerError> {
    let mut grad = Tensor::zeros(output.shape());
    loss.forward_backward(output, target, &mut grad)?;
    let mut x = output.clone();
    let (mut a, mut n) = (Vec::new(), Vec::new());
    for i in 0..x.len() {
        let v = x.as_slice().expect("contiguous")[i];
        x.as_slice_mut().expect("contiguous")[i] = v + eps;
        let plus = loss.forward(&x, target)?;
        x.as_slice_mut().expect("contiguous")[i] = v - eps;
        let minus = loss.forward(&x, target)?;
        x.as_slice_mut().expect("contiguous")[i] = v;
        a.push(grad.as_slice().expect("contiguous")[i] as f64);
        n.push((plus - minus) / ((v + eps) as f64 - (v - eps) as f64));
    }
    Ok(GradCheck {
        tensor: "output".into(),
        max_rel_error: rel_errors(&a, &n),
        checked: x.len(),
    })
}
