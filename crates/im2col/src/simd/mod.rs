//! Every line of `unsafe` in the crate: CPU-feature detection, the x86-64
//! kernels behind safe wrappers that check the CPU and every bound first,
//! and the one call into `matrixmultiply::sgemm` ([`sgemm`]).
//!
//! The kernels know nothing of convolutions. Two matrix products whose
//! operand rows start at arbitrary offsets into one slice:
//!
//! ```text
//! shifted_gemm  out[r][q] = Σ_k a[k·MR + r] · src[offsets[k] + q]     r < MR, q < q8
//! shifted_dot   part[r][k] = Σ_n Σ_q dy[n][r][q] · x[n][offsets[k] + q]
//! ```
//!
//! (the direct convolution and the fully connected layer are both written
//! with them), an f64 sum of f32 values, and a masked copy (a ReLU's
//! backward pass). Each has a portable order that the vector versions keep,
//! so the result is the same bits whichever runs.

mod gemm;
pub mod peak;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use gemm::{sgemm, MatLayout};

use portable::masked_copy_portable;
pub(crate) use portable::{LANES, MR};

/// Whether the CPU runs the matrix micro-kernels: x86-64 with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn has_avx2_fma() -> bool {
    false
}

/// Whether the CPU has AVX-512F, for the 16-lane blocks of `shifted_gemm`.
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

/// `acc[i] += chunk[i]` (in f64) for every chunk of 16 values of `values`,
/// whose length is a multiple of 16.
pub(crate) fn add_chunks_f64(values: &[f32], acc: &mut [f64; 16]) {
    assert!(
        values.len().is_multiple_of(16),
        "add_chunks_f64: whole chunks"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX.
        unsafe { x86::add_chunks_f64(values, acc) };
        return;
    }
    for chunk in values.chunks_exact(16) {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v as f64;
        }
    }
}

/// `dst = src` where `mask > 0`, else 0: the ReLU's backward pass.
pub(crate) fn masked_copy(dst: &mut [f32], src: &[f32], mask: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2.
        return unsafe { x86::masked_copy(dst, src, mask) };
    }
    masked_copy_portable(dst, src, mask)
}

/// `out[r][q] = Σ_k a[k·MR + r] · src[offsets[k] + q]` for r < MR, q < q8
/// (`out` is MR rows of q8). `src` must hold every such read.
pub(crate) fn shifted_gemm(a: &[f32], src: &[f32], offsets: &[usize], q8: usize, out: &mut [f32]) {
    shifted_gemm_on(has_avx512(), a, src, offsets, q8, out)
}

/// [`shifted_gemm`], with 16-lane AVX-512 blocks or without. Each output is
/// the same chain of fused multiply-adds in the same order either way, so
/// the two give the same bits (a test holds them to it).
fn shifted_gemm_on(
    avx512: bool,
    a: &[f32],
    src: &[f32],
    offsets: &[usize],
    q8: usize,
    out: &mut [f32],
) {
    assert!(q8.is_multiple_of(LANES), "shifted_gemm: q8");
    assert!(a.len() >= offsets.len() * MR, "shifted_gemm: packed rows");
    assert!(out.len() >= MR * q8, "shifted_gemm: output tile");
    let last = offsets.iter().max().map_or(0, |m| m + q8);
    assert!(last <= src.len(), "shifted_gemm: reads past the source");
    #[cfg(target_arch = "x86_64")]
    {
        assert!(has_avx2_fma(), "shifted_gemm needs AVX2 and FMA");
        let (a, src, out) = (a.as_ptr(), src.as_ptr(), out.as_mut_ptr());
        if avx512 {
            assert!(has_avx512(), "the 16-lane blocks need AVX-512F");
            // SAFETY: as below, and the CPU has AVX-512F.
            unsafe { x86::shifted_gemm_avx512(a, src, offsets, q8, out) }
        } else {
            // SAFETY: the CPU has AVX2 and FMA (checked above); every read is
            // inside `a` and `src` and every write inside `out` (asserted above).
            unsafe { x86::shifted_gemm(a, src, offsets, q8, out) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = avx512;
        unreachable!("direct convolution is only available on x86-64")
    }
}

/// Adds `Σ_n Σ_q dy[n][r][q] · xs[n][offsets[k] + q]` into `part[r][k]`
/// (overwriting it) for r < rows4, k < K: the weight gradient of a run of
/// images. `xs` holds the images' padded inputs (stride `x_stride`) and `dys`
/// their wide output gradients (rows4 x q8 each).
pub(crate) fn shifted_dot(
    xs: &[f32],
    x_stride: usize,
    dys: &[f32],
    rows4: usize,
    q8: usize,
    offsets: &[usize],
    part: &mut [f32],
) {
    shifted_dot_on(has_avx512(), xs, x_stride, dys, rows4, q8, offsets, part)
}

/// [`shifted_dot`] with or without AVX-512. The AVX-512 block keeps two
/// taps' 8-lane sums in the two halves of each register, each half summed
/// exactly as the AVX2 block sums it, so both give the same bits.
fn shifted_dot_on(
    avx512: bool,
    xs: &[f32],
    x_stride: usize,
    dys: &[f32],
    rows4: usize,
    q8: usize,
    offsets: &[usize],
    part: &mut [f32],
) {
    let images = xs.len() / x_stride;
    assert_eq!(xs.len(), images * x_stride, "shifted_dot: inputs");
    assert_eq!(dys.len(), images * rows4 * q8, "shifted_dot: gradients");
    assert_eq!(part.len(), rows4 * offsets.len(), "shifted_dot: output");
    assert!(
        q8.is_multiple_of(LANES) && rows4.is_multiple_of(MR),
        "shifted_dot: sizes"
    );
    let last = offsets.iter().max().map_or(0, |m| m + q8);
    assert!(last <= x_stride, "shifted_dot: reads past an image");
    #[cfg(target_arch = "x86_64")]
    {
        assert!(has_avx2_fma(), "shifted_dot needs AVX2 and FMA");
        // SAFETY: AVX2 and FMA are present; reads stay inside each image's
        // block of `xs` and `dys`, writes inside `part` (asserted above).
        unsafe {
            x86::shifted_dot(
                avx512 && has_avx512(),
                xs.as_ptr(),
                x_stride,
                dys.as_ptr(),
                images,
                rows4,
                q8,
                offsets,
                part.as_mut_ptr(),
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = avx512;
        unreachable!("direct convolution is only available on x86-64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX-512 blocks give the bits of the AVX2 ones, for widths that
    /// use every kind of block (64, 16 and 8 pixels). On a CPU without
    /// AVX-512 there is nothing to compare.
    #[test]
    fn avx512_blocks_give_the_avx2_bits() {
        if !(has_avx2_fma() && has_avx512()) {
            return;
        }
        let value = |i: usize| ((i * 7919 % 2003) as f32 - 1001.0) / 1001.0;
        for q8 in [8, 16, 24, 64, 72, 88, 224, 840] {
            for k in [1, 9, 72] {
                let a: Vec<f32> = (0..k * MR).map(value).collect();
                let offsets: Vec<usize> = (0..k).map(|j| j * 3).collect();
                let src: Vec<f32> = (0..3 * k + q8).map(|i| value(i + 5)).collect();
                let run = |avx512| {
                    let mut out = vec![f32::NAN; MR * q8];
                    shifted_gemm_on(avx512, &a, &src, &offsets, q8, &mut out);
                    out.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
                };
                assert_eq!(run(true), run(false), "q8 {q8}, k {k}");
            }
        }
    }

    /// The same for the dot-product kernel, over several images and tap
    /// counts that leave 0 to 7 taps for the AVX2 blocks.
    #[test]
    fn avx512_dot_blocks_give_the_avx2_bits() {
        if !(has_avx2_fma() && has_avx512()) {
            return;
        }
        let value = |i: usize| ((i * 7919 % 2003) as f32 - 1001.0) / 1001.0;
        for (q8, k, images, rows4) in [
            (8, 8, 1, 4),
            (24, 9, 3, 8),
            (224, 72, 5, 16),
            (16, 15, 2, 4),
        ] {
            let offsets: Vec<usize> = (0..k).map(|j| j * 3).collect();
            let x_stride = 3 * k + q8;
            let xs: Vec<f32> = (0..images * x_stride).map(|i| value(i + 3)).collect();
            let dys: Vec<f32> = (0..images * rows4 * q8).map(|i| value(i + 11)).collect();
            let run = |avx512| {
                let mut part = vec![f32::NAN; rows4 * k];
                shifted_dot_on(avx512, &xs, x_stride, &dys, rows4, q8, &offsets, &mut part);
                part.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
            };
            assert_eq!(run(true), run(false), "q8 {q8}, k {k}");
        }
    }
}
