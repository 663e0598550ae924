//! The x86-64 kernels. The two matrix micro-kernels each keep a block of
//! 4 output rows' sums in registers (at most 16 of them) and walk the inner
//! dimension once, in order. Every function here is reached only through the checked
//! wrappers in `simd/mod.rs`, which test the CPU and the slice bounds first.
use super::portable::{masked_copy_portable, LANES, MR};
use std::arch::x86_64::*;

/// See [`super::shifted_gemm`].
///
/// # Safety
/// AVX2 and FMA present; `a` readable for `offsets.len()·MR` floats;
/// `src` readable at `offsets[k] + q` for q < q8; `out` writable for MR·q8.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn shifted_gemm(
    a: *const f32,
    src: *const f32,
    offsets: &[usize],
    q8: usize,
    out: *mut f32,
) {
    // SAFETY: the caller upholds the contract under `# Safety`.
    unsafe {
        let mut q = 0;
        while q + 2 * LANES <= q8 {
            gemm_block::<2>(a, src, offsets, q, q8, out);
            q += 2 * LANES;
        }
        while q < q8 {
            gemm_block::<1>(a, src, offsets, q, q8, out);
            q += LANES;
        }
    }
}

/// [`shifted_gemm`] with 64- and 16-pixel blocks in AVX-512 registers
/// first, and the AVX2 8-pixel block for what is left.
///
/// # Safety
/// As [`shifted_gemm`], and the CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn shifted_gemm_avx512(
    a: *const f32,
    src: *const f32,
    offsets: &[usize],
    q8: usize,
    out: *mut f32,
) {
    // SAFETY: the caller upholds the contract under `# Safety`.
    unsafe {
        const W: usize = 16;
        let mut q = 0;
        while q + 4 * W <= q8 {
            gemm_block_512::<4>(a, src, offsets, q, q8, out);
            q += 4 * W;
        }
        while q + W <= q8 {
            gemm_block_512::<1>(a, src, offsets, q, q8, out);
            q += W;
        }
        while q < q8 {
            gemm_block::<1>(a, src, offsets, q, q8, out);
            q += LANES;
        }
    }
}

/// Pixels `q..q + 16·V` of [`shifted_gemm_avx512`]'s MR output rows.
///
/// # Safety
/// As [`shifted_gemm_avx512`], for this block of pixels.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn gemm_block_512<const V: usize>(
    a: *const f32,
    src: *const f32,
    offsets: &[usize],
    q: usize,
    ld: usize,
    out: *mut f32,
) {
    // SAFETY: the caller upholds the contract under `# Safety`.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; MR];
        for (k, &off) in offsets.iter().enumerate() {
            let s = src.add(off + q);
            let mut b = [_mm512_setzero_ps(); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = _mm512_loadu_ps(s.add(v * 16));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm512_set1_ps(*a.add(k * MR + r));
                for (v, acc) in row.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(ar, b[v], *acc);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, acc) in row.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * ld + q + v * 16), *acc);
            }
        }
    }
}

/// Pixels `q..q + 8·V` of [`shifted_gemm`]'s MR output rows.
///
/// # Safety
/// As [`shifted_gemm`], for this block of pixels.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_block<const V: usize>(
    a: *const f32,
    src: *const f32,
    offsets: &[usize],
    q: usize,
    ld: usize,
    out: *mut f32,
) {
    // SAFETY: the caller upholds the contract under `# Safety`.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); V]; MR];
        for (k, &off) in offsets.iter().enumerate() {
            let s = src.add(off + q);
            let mut b = [_mm256_setzero_ps(); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = _mm256_loadu_ps(s.add(v * LANES));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm256_broadcast_ss(&*a.add(k * MR + r));
                for (v, acc) in row.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(ar, b[v], *acc);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, acc) in row.iter().enumerate() {
                _mm256_storeu_ps(out.add(r * ld + q + v * LANES), *acc);
            }
        }
    }
}

/// See [`super::shifted_dot`].
///
/// # Safety
/// As asserted by the caller: AVX2 and FMA present, `xs` readable for
/// `images·x_stride`, every `offsets[k] + q8 ≤ x_stride`, `dys` readable
/// for `images·rows4·q8`, `part` writable for `rows4·offsets.len()`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn shifted_dot(
    avx512: bool,
    xs: *const f32,
    x_stride: usize,
    dys: *const f32,
    images: usize,
    rows4: usize,
    q8: usize,
    offsets: &[usize],
    part: *mut f32,
) {
    // SAFETY: the caller upholds the contract under `# Safety`.
    unsafe {
        let k = offsets.len();
        for block in 0..rows4 / MR {
            let mut kk = 0;
            if avx512 {
                while kk + 8 <= k {
                    dot_block_512(
                        xs,
                        x_stride,
                        dys,
                        images,
                        rows4,
                        q8,
                        block,
                        &offsets[kk..kk + 8],
                        part.add(block * MR * k + kk),
                        k,
                    );
                    kk += 8;
                }
            }
            while kk + 2 <= k {
                dot_block::<2>(
                    xs,
                    x_stride,
                    dys,
                    images,
                    rows4,
                    q8,
                    block,
                    &offsets[kk..kk + 2],
                    part.add(block * MR * k + kk),
                    k,
                );
                kk += 2;
            }
            while kk < k {
                dot_block::<1>(
                    xs,
                    x_stride,
                    dys,
                    images,
                    rows4,
                    q8,
                    block,
                    &offsets[kk..kk + 1],
                    part.add(block * MR * k + kk),
                    k,
                );
                kk += 1;
            }
        }
    }
}

/// Taps `offsets` (V of them) of output rows `block·MR..block·MR + MR` of
/// [`shifted_dot`], written at `out` with row stride `ld`.
///
/// # Safety
/// As [`shifted_dot`], and `out` writable at `r·ld + v` for r < MR, v < V.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_block<const V: usize>(
    xs: *const f32,
    x_stride: usize,
    dys: *const f32,
    images: usize,
    rows4: usize,
    q8: usize,
    block: usize,
    offsets: &[usize],
    out: *mut f32,
    ld: usize,
) {
    // SAFETY: the caller upholds the contract under `# Safety`.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); V]; MR];
        for n in 0..images {
            let x = xs.add(n * x_stride);
            let dy = dys.add((n * rows4 + block * MR) * q8);
            let mut q = 0;
            while q < q8 {
                let mut b = [_mm256_setzero_ps(); V];
                for (v, bv) in b.iter_mut().enumerate() {
                    *bv = _mm256_loadu_ps(x.add(offsets[v] + q));
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let d = _mm256_loadu_ps(dy.add(r * q8 + q));
                    for (v, acc) in row.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(d, b[v], *acc);
                    }
                }
                q += LANES;
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, acc) in row.iter().enumerate() {
                *out.add(r * ld + v) = horizontal_sum(*acc);
            }
        }
    }
}

/// [`dot_block`] for 8 taps at once: register `p` of row `r` holds the
/// 8-lane sums of taps 2p (low half) and 2p + 1 (high half), each half
/// updated by the same fused multiply-adds in the same order as the AVX2
/// block's register for that tap, and summed by the same
/// [`horizontal_sum`].
///
/// # Safety
/// As [`dot_block`] with V = 8, and the CPU has AVX-512F.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dot_block_512(
    xs: *const f32,
    x_stride: usize,
    dys: *const f32,
    images: usize,
    rows4: usize,
    q8: usize,
    block: usize,
    offsets: &[usize],
    out: *mut f32,
    ld: usize,
) {
    // SAFETY: the caller upholds the contract under `# Safety`.
    unsafe {
        const P: usize = 4;
        let pair = |lo: __m256, hi: __m256| {
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                _mm512_castps_pd(_mm512_castps256_ps512(lo)),
                _mm256_castps_pd(hi),
            ))
        };
        let mut acc = [[_mm512_setzero_ps(); P]; MR];
        for n in 0..images {
            let x = xs.add(n * x_stride);
            let dy = dys.add((n * rows4 + block * MR) * q8);
            let mut q = 0;
            while q < q8 {
                let mut b = [_mm512_setzero_ps(); P];
                for (p, bp) in b.iter_mut().enumerate() {
                    *bp = pair(
                        _mm256_loadu_ps(x.add(offsets[2 * p] + q)),
                        _mm256_loadu_ps(x.add(offsets[2 * p + 1] + q)),
                    );
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let d8 = _mm256_loadu_ps(dy.add(r * q8 + q));
                    let d = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(d8)));
                    for (p, acc) in row.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(d, b[p], *acc);
                    }
                }
                q += LANES;
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (p, acc) in row.iter().enumerate() {
                let (lo, hi) = horizontal_sums_512(*acc);
                *out.add(r * ld + 2 * p) = lo;
                *out.add(r * ld + 2 * p + 1) = hi;
            }
        }
    }
}

/// The two 8-lane halves of `v`, each summed as [`horizontal_sum`] sums
/// its lanes, by the same additions in 512-bit registers. Casting a half to
/// 256 bits instead would hand the register itself to 256-bit (VEX)
/// instructions, which reach only zmm0-15; the block's 16 sums would then
/// no longer fit in registers, and the compiler would keep some of them on
/// the stack inside the loop.
#[inline]
#[target_feature(enable = "avx512f")]
fn horizontal_sums_512(v: __m512) -> (f32, f32) {
    // Lane j + (j + 4) of each half: swap neighbouring 128-bit blocks.
    let quad = _mm512_add_ps(v, _mm512_shuffle_f32x4::<0b10_11_00_01>(v, v));
    let pair = _mm512_add_ps(quad, _mm512_permute_ps::<0b11_10_11_10>(quad));
    let single = _mm512_add_ps(pair, _mm512_permute_ps::<0b01>(pair));
    (
        _mm512_cvtss_f32(single),
        _mm_cvtss_f32(_mm512_extractf32x4_ps::<2>(single)),
    )
}

/// Lanes summed as ((0+4)+(2+6)) + ((1+5)+(3+7)): a fixed order.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn horizontal_sum(v: __m256) -> f32 {
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    let single = _mm_add_ss(pair, _mm_shuffle_ps::<0b01>(pair, pair));
    _mm_cvtss_f32(single)
}

/// `acc[i] += chunk[i]` in f64 for every 16-value chunk of `values` (a
/// remainder is ignored), four lanes per instruction: the additions of the
/// portable loop, in its order.
///
/// # Safety
/// The CPU has AVX.
#[target_feature(enable = "avx")]
pub(super) unsafe fn add_chunks_f64(values: &[f32], acc: &mut [f64; 16]) {
    let p = acc.as_mut_ptr();
    // SAFETY: `p` points at 16 f64 and every load/store below covers
    // `p + 4j .. p + 4j + 4` for j < 4; each chunk holds 16 floats, read as
    // four groups of four.
    unsafe {
        let mut a = [0, 4, 8, 12].map(|i| _mm256_loadu_pd(p.add(i)));
        for chunk in values.chunks_exact(16) {
            for (j, a) in a.iter_mut().enumerate() {
                let v = _mm256_cvtps_pd(_mm_loadu_ps(chunk.as_ptr().add(4 * j)));
                *a = _mm256_add_pd(*a, v);
            }
        }
        for (j, a) in a.iter().enumerate() {
            _mm256_storeu_pd(p.add(4 * j), *a);
        }
    }
}

/// The portable masked copy compiled for AVX2: the compiler vectorises the
/// same selects, so the bits are the same.
#[target_feature(enable = "avx2")]
pub(super) fn masked_copy(dst: &mut [f32], src: &[f32], mask: &[f32]) {
    masked_copy_portable(dst, src, mask)
}
