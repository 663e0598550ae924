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
//! Layers are checked in training mode ([`Layer::forward_train`]), each pass
//! with a fresh random stream of the same seed: dropout keeps one mask for
//! every perturbed pass, and batch norm is checked with the batch's own
//! statistics, the function it trains by.
//!
//! Convolution, linear, average pooling, flatten and dropout are linear in each input
//! and each parameter taken alone, so for them the central difference is
//! exact up to rounding for any ε: [`GradCheckOptions::for_layer`] gives them
//! ε = 0.05, which divides the rounding error by 50. Batch norm gets 10⁻² for
//! fewer than 64 values per channel and 0.05 from there: each input moves
//! every output of its channel through μ and σ², so the rounding noise of L
//! grows with their number M, while the curvature in one input shrinks as 1/M.
//!
//! ReLU and max pooling are not differentiable at their kinks: where a
//! perturbation crosses one (an input within ε of zero, two values of a
//! pooling window within 2ε of each other), the central difference is no
//! derivative. Such components are found from the forward passes alone (the
//! two one-sided differences disagree; [`GradCheck::skipped`]) and replaced by
//! others, so the check is right at any size: a 12,544-value activation holds
//! values closer together than ε, and a few of 400 sampled components would
//! otherwise straddle a kink. Small test inputs are drawn from
//! [`well_spaced`], a shuffled grid whose values are further than 2ε from
//! zero and from each other, where nothing needs skipping.

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
    /// How many sampled components were left out because L has a kink within
    /// ε of them (a ReLU input near zero, two near-equal values in a max-pool
    /// window): the one-sided differences `(L(v + ε) − L(v)) / ε` and
    /// `(L(v) − L(v − ε)) / ε` disagree there, and the central difference is
    /// no derivative. Forward passes alone decide this, so a wrong backward
    /// pass cannot hide behind it.
    pub skipped: usize,
}

/// Components whose one-sided differences disagree by more than this
/// (relative) are skipped. A kink that passes moves the central difference
/// by at most half of it, well inside the 10⁻² the checks accept; a smooth
/// layer's one-sided differences differ by about ε·|L''|, far less.
pub(crate) const KINK_TOLERANCE: f64 = 1e-2;

/// Settings of a check.
#[derive(Clone, Copy, Debug)]
pub struct GradCheckOptions {
    /// Step ε of the central difference.
    pub eps: f32,
    /// At most this many components per tensor are checked (chosen at random, without repetition).
    pub max_components: usize,
    /// Whether to look for kinks and skip the components near one
    /// ([`GradCheck::skipped`]). Off for the layers linear in each value,
    /// which have none (where their gradient is near zero, rounding alone can
    /// make the one-sided differences disagree), and for batch norm, which
    /// has none but is curved in every input: its one-sided differences
    /// differ by ε·L'' (L'' of order 1/√M), which the central difference cancels.
    pub skip_kinks: bool,
    /// A gradient component smaller than this share of the tensor's largest
    /// is compared as if it were that large: its central difference carries
    /// the rounding of L as much as a large component's does.
    pub floor: f64,
}

impl Default for GradCheckOptions {
    fn default() -> Self {
        GradCheckOptions {
            eps: 1e-3,
            max_components: 400,
            skip_kinks: true,
            floor: 1e-3,
        }
    }
}

impl GradCheckOptions {
    /// The options suited to a layer of `kind` taking a batch of shape
    /// `input`: a large ε where the layer is linear in each value (the
    /// difference is then exact), a small one elsewhere. Batch norm's ε grows
    /// with the values per channel M: each input moves all M outputs of its
    /// channel (through μ and σ²), so the rounding noise of L grows with M,
    /// while the curvature in one input shrinks as 1/M.
    pub fn for_layer(kind: &str, input: &[usize]) -> Self {
        // Linear in each value: no kink to skip, and a disagreement of the
        // one-sided differences there is rounding, not a kink.
        let linear = matches!(
            kind,
            "conv2d" | "linear" | "avg_pool2d" | "flatten" | "dropout"
        );
        let eps = match kind {
            _ if linear => 0.05,
            "batch_norm2d" | "batch_norm1d" => {
                let per_channel =
                    input.first().copied().unwrap_or(1) * input.iter().skip(2).product::<usize>();
                if per_channel >= 64 {
                    0.05
                } else {
                    1e-2
                }
            }
            _ => 1e-3,
        };
        // Batch norm's L sums the f32 rounding of every output of a channel,
        // so its small components are compared on a floor ten times higher.
        let batch_norm = kind.starts_with("batch_norm");
        GradCheckOptions {
            eps,
            skip_kinks: !linear && !batch_norm,
            floor: if batch_norm { 1e-2 } else { 1e-3 },
            ..Self::default()
        }
    }
}

/// `n` values in (−1, 1), a shuffled grid with spacing 2/n and none nearer to 0 than 1/(2n).
///
/// For n ≤ 250 with ε = 10⁻³, no central difference crosses a ReLU kink or
/// changes a max; for larger n the grid is finer than 2ε and [`check_layer`]
/// skips the components that do.
pub fn well_spaced(n: usize, rng: &mut Rng) -> Vec<f32> {
    // For odd n the middle point would be 0: shift the grid by half a step.
    let shift = if n % 2 == 1 { 0.5 / n as f64 } else { 0.0 };
    let mut v: Vec<f32> = (0..n)
        .map(|i| ((2 * i + 1) as f64 / n as f64 - 1.0 + shift) as f32)
        .collect();
    rng.shuffle(&mut v);
    v
}

fn rel_errors(analytic: &[f64], numeric: &[f64], floor: f64) -> f64 {
    let scale = analytic.iter().fold(0f64, |m, a| m.max(a.abs()));
    let floor = (floor * scale).max(1e-12);
    analytic
        .iter()
        .zip(numeric)
        .map(|(a, n)| (a - n).abs() / a.abs().max(n.abs()).max(floor))
        .fold(0.0, f64::max)
}

/// The seed of `noise`, the random stream of every training-mode pass of a check.
const NOISE_SEED: u64 = 0x6772_6164;

fn projected(layer: &mut dyn Layer, x: &Tensor, r: &Tensor) -> Result<f64, LayerError> {
    let y = layer.forward_train(x, &mut Rng::seed_from_u64(NOISE_SEED))?;
    Ok(y.iter()
        .zip(r.iter())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum())
}

/// Checks ∂L/∂input and ∂L/∂θ of every parameter of `layer` at `input`.
///
/// The layer must have been told its input gradient is needed (the default).
/// Components with a kink or a tie within ε (see [`GradCheck::skipped`]) are
/// replaced by others, up to `max_components` checked per tensor.
pub fn check_layer(
    layer: &mut dyn Layer,
    input: &Tensor,
    rng: &mut Rng,
    opts: GradCheckOptions,
) -> Result<Vec<GradCheck>, LayerError> {
    let y_shape = layer
        .forward_train(input, &mut Rng::seed_from_u64(NOISE_SEED))?
        .shape()
        .to_vec();
    // Not a symmetric grid: a zero-sum projection would make the bias gradient vanish.
    let r = Tensor::from_shape_fn(y_shape, |_| rng.uniform(-1.0, 1.0) as f32);
    let l0 = projected(layer, input, &r)?;
    let grad_input = layer.backward(&r)?.clone();
    let param_grads: Vec<(String, Tensor)> = layer
        .params()
        .into_iter()
        .map(|p| (p.name.clone(), p.grad.clone()))
        .collect();

    let mut out = Vec::new();
    // Input gradient.
    let mut x = input.clone();
    let values = input.as_slice().expect("contiguous").to_vec();
    out.push(check_tensor(
        "input",
        &values,
        grad_input.as_slice().expect("contiguous"),
        l0,
        opts,
        rng,
        |i, v| {
            let old = std::mem::replace(&mut x.as_slice_mut().expect("contiguous")[i], v);
            let l = projected(layer, &x, &r);
            x.as_slice_mut().expect("contiguous")[i] = old;
            l
        },
    )?);

    // Parameter gradients, one parameter at a time.
    for (k, (name, grad)) in param_grads.iter().enumerate() {
        let values = layer.params()[k]
            .value
            .as_slice()
            .expect("contiguous")
            .to_vec();
        let set = |layer: &mut dyn Layer, i: usize, v: f32| {
            let mut params = layer.params_mut();
            std::mem::replace(
                &mut params[k].value.as_slice_mut().expect("contiguous")[i],
                v,
            )
        };
        out.push(check_tensor(
            name,
            &values,
            grad.as_slice().expect("contiguous"),
            l0,
            opts,
            rng,
            |i, v| {
                // Restored exactly afterwards: the old value is put back, not v − ε + ε.
                let old = set(layer, i, v);
                let l = projected(layer, input, &r);
                set(layer, i, old);
                l
            },
        )?);
    }
    Ok(out)
}

/// Compares `analytic` with central differences on a random sample of
/// components. `l_at(i, v)` is L with component `i` set to `v` (and put back).
fn check_tensor(
    name: &str,
    values: &[f32],
    analytic: &[f32],
    l0: f64,
    opts: GradCheckOptions,
    rng: &mut Rng,
    mut l_at: impl FnMut(usize, f32) -> Result<f64, LayerError>,
) -> Result<GradCheck, LayerError> {
    let eps = opts.eps;
    let mut order: Vec<usize> = (0..values.len()).collect();
    if values.len() > opts.max_components {
        rng.shuffle(&mut order);
    }
    // A slope this far below the largest gradient counts as zero.
    let scale = analytic.iter().fold(0f32, |m, g| m.max(g.abs())) as f64;
    let floor = (1e-3 * scale).max(1e-12);
    let (mut a, mut n) = (Vec::new(), Vec::new());
    let mut skipped = 0;
    // Near-kink components are rare; the bound keeps a layer that is kinked
    // everywhere from costing a pass over every component.
    for &i in order.iter().take(4 * opts.max_components) {
        if a.len() == opts.max_components {
            break;
        }
        let v = values[i];
        let (up, down) = (v + eps, v - eps);
        let plus = l_at(i, up)?;
        let minus = l_at(i, down)?;
        // The steps actually taken, after rounding v ± ε to f32.
        let (h_up, h_down) = (up as f64 - v as f64, v as f64 - down as f64);
        let (slope_up, slope_down) = ((plus - l0) / h_up, (l0 - minus) / h_down);
        let disagreement = (slope_up - slope_down).abs();
        if opts.skip_kinks
            && disagreement > KINK_TOLERANCE * slope_up.abs().max(slope_down.abs()).max(floor)
        {
            skipped += 1;
            continue;
        }
        a.push(analytic[i] as f64);
        n.push((plus - minus) / (h_up + h_down));
    }
    Ok(GradCheck {
        tensor: name.into(),
        max_rel_error: rel_errors(&a, &n, opts.floor),
        checked: a.len(),
        skipped,
    })
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
        max_rel_error: rel_errors(&a, &n, GradCheckOptions::default().floor),
        checked: x.len(),
        skipped: 0,
    })
}
