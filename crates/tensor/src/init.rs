use serde::{Deserialize, Serialize};

use crate::{Rng, Tensor};

/// How a weight tensor is first filled.
///
/// `fan_in` is the number of inputs of one output unit (in_channels x kh x kw
/// for a convolution, in_features for a linear layer) and `fan_out` the
/// number of outputs one input feeds (out_channels x kh x kw, out_features).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Init {
    /// All zeros (biases).
    Zeros,
    /// N(0, std²): the seed experiment's initialiser.
    Normal {
        /// Standard deviation.
        std: f32,
    },
    /// U(-limit, limit).
    Uniform {
        /// Half-width of the interval.
        limit: f32,
    },
    /// Glorot & Bengio: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).
    XavierUniform,
    /// Glorot & Bengio: N(0, 2 / (fan_in + fan_out)).
    XavierNormal,
    /// He et al., for ReLU networks: N(0, 2 / fan_in).
    HeNormal,
    /// He et al.: U(-a, a) with a = sqrt(6 / fan_in).
    HeUniform,
}

impl Init {
    /// The largest `std` or `limit` accepted: weights beyond it overflow the
    /// products of a forward pass long before they train.
    pub const MAX_SCALE: f32 = 100.0;

    /// Checks the initialiser's number before any weight is drawn: `std`
    /// and `limit` finite, in `[0, MAX_SCALE]`. The error names the key.
    pub fn check(&self) -> Result<(), String> {
        let (key, v) = match *self {
            Init::Normal { std } => ("std", std),
            Init::Uniform { limit } => ("limit", limit),
            _ => return Ok(()),
        };
        match (0.0..=Self::MAX_SCALE).contains(&v) {
            true => Ok(()),
            false => Err(format!(
                "{key} must be a number from 0 to {}, got {v}",
                Self::MAX_SCALE
            )),
        }
    }

    /// Fills `out` in order, drawing from `rng`.
    pub fn fill(&self, rng: &mut Rng, fan_in: usize, fan_out: usize, out: &mut [f32]) {
        let fan_in = fan_in.max(1) as f64;
        let fan_out = fan_out.max(1) as f64;
        let normal = |rng: &mut Rng, std: f64, out: &mut [f32]| {
            out.iter_mut()
                .for_each(|x| *x = (rng.normal() * std) as f32)
        };
        let uniform = |rng: &mut Rng, a: f64, out: &mut [f32]| {
            out.iter_mut().for_each(|x| *x = rng.uniform(-a, a) as f32)
        };
        match *self {
            Init::Zeros => out.fill(0.0),
            Init::Normal { std } => normal(rng, std as f64, out),
            Init::Uniform { limit } => uniform(rng, limit as f64, out),
            Init::XavierUniform => uniform(rng, (6.0 / (fan_in + fan_out)).sqrt(), out),
            Init::XavierNormal => normal(rng, (2.0 / (fan_in + fan_out)).sqrt(), out),
            Init::HeNormal => normal(rng, (2.0 / fan_in).sqrt(), out),
            Init::HeUniform => uniform(rng, (6.0 / fan_in).sqrt(), out),
        }
    }

    /// A new tensor of `shape`, filled by [`Init::fill`].
    pub fn tensor(&self, rng: &mut Rng, shape: &[usize], fan_in: usize, fan_out: usize) -> Tensor {
        let mut t = Tensor::zeros(shape);
        let slice = t.as_slice_mut().expect("a new array is contiguous");
        self.fill(rng, fan_in, fan_out, slice);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_of(xs: &[f32]) -> f64 {
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        (xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
    }

    #[test]
    fn standard_deviations_match_their_formulas() {
        let mut rng = Rng::seed_from_u64(11);
        let mut buf = vec![0f32; 100_000];
        let cases = [
            (Init::Normal { std: 0.1 }, 0.1),
            (Init::HeNormal, (2.0f64 / 72.0).sqrt()),
            (Init::XavierNormal, (2.0f64 / (72.0 + 144.0)).sqrt()),
            // Uniform(-a, a) has std a / sqrt(3).
            (Init::HeUniform, (6.0f64 / 72.0).sqrt() / 3f64.sqrt()),
            (Init::XavierUniform, (6.0f64 / 216.0).sqrt() / 3f64.sqrt()),
        ];
        for (init, expected) in cases {
            init.fill(&mut rng, 72, 144, &mut buf);
            let got = std_of(&buf);
            assert!(
                (got / expected - 1.0).abs() < 0.02,
                "{init:?}: std {got}, expected {expected}"
            );
        }
        Init::Zeros.fill(&mut rng, 1, 1, &mut buf);
        assert!(buf.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn uniform_stays_in_bounds() {
        let mut rng = Rng::seed_from_u64(5);
        let mut buf = vec![0f32; 10_000];
        Init::Uniform { limit: 0.5 }.fill(&mut rng, 1, 1, &mut buf);
        assert!(buf.iter().all(|x| x.abs() <= 0.5));
    }

    #[test]
    fn initialisers_with_impossible_scales_are_refused_naming_the_key() {
        for (init, key) in [
            (Init::Normal { std: f32::NAN }, "std"),
            (Init::Normal { std: -0.1 }, "std"),
            (
                Init::Uniform {
                    limit: f32::INFINITY,
                },
                "limit",
            ),
            (Init::Uniform { limit: 1e9 }, "limit"),
        ] {
            assert!(init.check().unwrap_err().starts_with(key), "{init:?}");
        }
        Init::Normal { std: 0.1 }.check().unwrap();
        Init::HeNormal.check().unwrap();
    }
}
