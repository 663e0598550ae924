use serde::{Deserialize, Serialize};

/// xoshiro256\*\* (Blackman & Vigna), seeded through SplitMix64.
///
/// Small, fast, statistically sound for initialisation and shuffling, and
/// fully described by four words, so a checkpoint can carry it. The stream a
/// seed gives is part of this project's results: do not change it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
}

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny generator whose whole
/// state is one `u64`. It expands a seed into [`Rng`]'s four words, and it
/// is the generator of the data sets' example orders (`mnist-io`), whose
/// streams are stable forever like [`Rng`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The step added to the state before each output (the golden ratio's
    /// 64-bit fraction).
    pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// A generator starting from `state`.
    pub fn new(state: u64) -> Self {
        SplitMix64 { state }
    }

    /// SplitMix64's output function: a bijective 64-bit mixer, also a good
    /// hash of a key.
    pub fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GAMMA);
        Self::mix(self.state)
    }

    /// Uniform integer in `0..n`, unbiased (as [`Rng::below`]). `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        below(n, || self.next_u64())
    }
}

/// Uniform integer in `0..n` from a stream of 64-bit words: Lemire's
/// multiply-shift, rejecting the few low products that would bias it.
fn below(n: u64, mut next_u64: impl FnMut() -> u64) -> u64 {
    assert!(n > 0, "below(0)");
    loop {
        let m = (next_u64() as u128) * (n as u128);
        if m as u64 >= n.wrapping_neg() % n {
            return (m >> 64) as u64;
        }
    }
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = SplitMix64::new(seed);
        let s = [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()];
        Rng { s }
    }

    /// A generator for one independent stream named by a path of keys, e.g.
    /// `[seed, DROPOUT, step, micro_batch]`: each key is folded into a
    /// 64-bit hash by one SplitMix64 step, which then seeds the generator.
    /// Streams named by different paths do not overlap in practice, and a
    /// stream depends on its keys only, never on which thread asks for it or when.
    pub fn from_keys(keys: &[u64]) -> Self {
        let mut hash = 0x6A09_E667_F3BC_C908; // any odd constant
        for &key in keys {
            hash = SplitMix64::new(hash ^ key).next_u64();
        }
        Rng::seed_from_u64(hash)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform_f64()
    }

    /// Standard normal, by the Box–Muller transform (one draw per call, so
    /// the stream does not depend on a cached second value).
    pub fn normal(&mut self) -> f64 {
        // 1 - u is in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.uniform_f64();
        let u2 = self.uniform_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Uniform integer in `0..n` (Lemire's multiply-shift with rejection, unbiased). `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        below(n, || self.next_u64())
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // Reference output of SplitMix64 seeded with 0 (as in Vigna's splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(r.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut r = SplitMix64::new(7);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let x = r.below(7);
            assert!(x < 7);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn seed_fixes_stream_and_seeds_differ() {
        let a: Vec<u64> = {
            let mut r = Rng::seed_from_u64(7);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = Rng::seed_from_u64(7);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        let mut other = Rng::seed_from_u64(8);
        assert_ne!(a[0], other.next_u64());
    }

    #[test]
    fn keyed_streams_depend_on_every_key_and_its_place() {
        let first = |keys: &[u64]| Rng::from_keys(keys).next_u64();
        assert_eq!(first(&[5, 1, 2]), first(&[5, 1, 2]));
        let others = [
            first(&[5, 1, 3]),
            first(&[5, 2, 1]),
            first(&[6, 1, 2]),
            first(&[5, 1]),
        ];
        for o in others {
            assert_ne!(o, first(&[5, 1, 2]));
        }
    }

    #[test]
    fn reference_vector_of_xoshiro256starstar() {
        // State (1, 2, 3, 4): first outputs of the reference C implementation.
        let mut r = Rng { s: [1, 2, 3, 4] };
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(got, vec![11520, 0, 1509978240]);
    }

    #[test]
    fn normal_moments() {
        let mut r = Rng::seed_from_u64(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
    }

    #[test]
    fn below_is_in_range_and_shuffle_is_permutation() {
        let mut r = Rng::seed_from_u64(3);
        assert!((0..1000).all(|_| r.below(7) < 7));
        let mut v: Vec<usize> = (0..100).collect();
        r.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }
}
