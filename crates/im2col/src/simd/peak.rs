//! The machine's FMA peak: how many multiply-adds per second one thread can
//! issue when nothing but FMAs run, in the widest vectors the CPU has.
//! `cnn bench` divides the training step's FLOP rate by it, so that a figure
//! says how much of the cores the step uses, on any CPU.
//!
//! Twelve independent accumulator chains: an FMA's latency (4 cycles) times
//! its two ports needs at least eight in flight, and twelve leave room.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Independent accumulator chains per thread.
const CHAINS: usize = 12;

/// One thread's FMA probe: the vector width it used, and its rate.
#[derive(Clone, Copy, Debug)]
pub struct FmaPeak {
    /// The instructions timed: `"AVX-512"`, `"AVX2+FMA"` or `"portable"`.
    pub isa: &'static str,
    /// f32 lanes per FMA.
    pub lanes: usize,
    /// FLOP/s (a multiply-add counts 2) of one thread.
    pub flops_per_second: f64,
}

/// The widest FMA this CPU runs, and its name.
fn widest_fma() -> (&'static str, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return ("AVX-512", 16);
        }
        if super::has_avx2_fma() {
            return ("AVX2+FMA", 8);
        }
    }
    ("portable", 8)
}

/// Times rounds of twelve FMA chains on the calling thread, best of
/// three runs of at least `min_time` each, and returns its FLOP/s.
pub fn fma_peak_one_thread(min_time: Duration) -> FmaPeak {
    let (isa, lanes) = widest_fma();
    let mut best = 0.0f64;
    for _ in 0..3 {
        let mut rounds = 1u64 << 16;
        loop {
            let started = Instant::now();
            black_box(fma_chains(black_box(rounds), lanes));
            let took = started.elapsed();
            if took >= min_time {
                let flops = (rounds * (CHAINS * lanes) as u64 * 2) as f64;
                best = best.max(flops / took.as_secs_f64());
                break;
            }
            rounds *= 2;
        }
    }
    FmaPeak {
        isa,
        lanes,
        flops_per_second: best,
    }
}

/// `rounds` rounds of one FMA on each of [`CHAINS`] accumulators of `lanes` f32.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn fma_chains(rounds: u64, lanes: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if lanes == 16 {
            // SAFETY: `widest_fma` chose 16 lanes only where AVX-512F is present.
            return unsafe { x86_fma::chains_avx512(rounds) };
        }
        if super::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { x86_fma::chains_avx2(rounds) };
        }
    }
    portable_chains::<8>(rounds)
}

/// The same chains in plain Rust, `L` lanes each.
fn portable_chains<const L: usize>(rounds: u64) -> f32 {
    let mut acc = [[0.0f32; L]; CHAINS];
    for _ in 0..rounds {
        for chain in acc.iter_mut() {
            for v in chain.iter_mut() {
                *v = v.mul_add(0.999_999, 1e-7);
            }
        }
    }
    acc.iter().flatten().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86_fma {
    use super::CHAINS;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn chains_avx512(rounds: u64) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..rounds {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn chains_avx2(rounds: u64) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..rounds {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut lanes = [0.0f32; 8];
        let mut total = 0.0;
        for v in acc {
            // SAFETY: `lanes` holds the 8 f32 written.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            total += lanes.iter().sum::<f32>();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_counts_its_flops_and_uses_the_widest_vectors() {
        let peak = fma_peak_one_thread(Duration::from_millis(2));
        assert!(peak.flops_per_second.is_finite() && peak.flops_per_second > 0.0);
        assert_eq!((peak.isa, peak.lanes), widest_fma());
    }

    #[test]
    fn every_path_computes_the_same_chains() {
        // The vector chains and the portable ones do the same arithmetic.
        let (_, lanes) = widest_fma();
        let total = fma_chains(100, lanes);
        let expected = portable_chains::<1>(100) / CHAINS as f32 * (CHAINS * lanes) as f32;
        assert!(
            (total - expected).abs() <= expected * 1e-5,
            "{total} vs {expected}"
        );
    }
}
